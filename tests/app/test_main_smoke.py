"""`d2sd-desktop --smoke-test MODEL`: what `make package` runs inside a bundle, here from the source tree."""
from app.main import main


def test_smoke_test_loads_a_model_and_generates(tiny_gguf, capsys):
    assert main(["--smoke-test", str(tiny_gguf)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("smoke test: 8 tokens") and "stop: length" in out


def test_smoke_test_on_a_broken_file_fails_with_one_clear_error(tmp_path, capsys):
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 20)
    assert main(["--smoke-test", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("smoke test failed:") and "broken.gguf" in err and err.count("\n") == 1
