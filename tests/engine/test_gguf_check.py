import pytest

from engine.gguf_check import ModelFileError, inspect


def test_tiny_model_metadata(tiny_gguf):
    info = inspect(tiny_gguf)
    assert (info.architecture, info.n_layer, info.n_embd) == ("llama", 3, 64)
    assert info.chat_template and "<|im_start|>" in info.chat_template


@pytest.mark.parametrize("make, message", [
    (lambda p, src: None, "not found"),
    (lambda p, src: p.write_bytes(b""), "empty"),
    (lambda p, src: p.write_text("just some text, renamed to .gguf\n" * 10), "not a GGUF"),
    (lambda p, src: p.write_bytes(src.read_bytes()[: src.stat().st_size // 2]), "truncated"),
    (lambda p, src: p.write_bytes(src.read_bytes()[:64]), "damaged or truncated"),
    (lambda p, src: p.mkdir(), "not a file"),
])
def test_bad_files_get_one_clear_error(tmp_path, tiny_gguf, make, message):
    bad = tmp_path / "model.gguf"
    make(bad, tiny_gguf)
    with pytest.raises(ModelFileError, match=message):
        inspect(bad)
