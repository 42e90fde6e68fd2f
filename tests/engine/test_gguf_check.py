import re
import time

import pytest
from gguf import GGMLQuantizationType, GGUFValueType

from engine.gguf_check import ModelFileError, inspect
from tests.fuzzing import PER_INPUT_S
from tests.gguf_edits import edited, forge_array, shift_offset


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


# big enough that a check walking the file element by element takes seconds (the old one took ~6 s at
# this size and 90 s on the real model), sparse so it costs no disk
PADDED = 8 << 20


def test_a_middle_tensor_off_by_one_byte_is_refused_in_llama_cpps_terms(tmp_path, tiny_gguf):
    # a middle tensor: its bytes still lie inside the file, so only its alignment shows the damage
    bad = edited(tiny_gguf, tmp_path / "model.gguf", shift_offset("blk.1.ffn_gate.weight"))
    with pytest.raises(ModelFileError, match=r"tensor blk\.1\.ffn_gate\.weight has offset \d+, expected") as err:
        inspect(bad)
    offset, expected = map(int, re.search(r"offset (\d+), expected (\d+)$", str(err.value)).groups())
    assert offset == expected + 1


@pytest.mark.parametrize("key, etype, words", [
    ("tokenizer.ggml.tokens", GGUFValueType.UINT8, "tokenizer.ggml.tokens is an array of UINT8, not of STRING"),
    ("tokenizer.ggml.tokens", GGUFValueType.STRING, "truncated"),
    ("tokenizer.ggml.scores", GGUFValueType.FLOAT32, "truncated"),
])
def test_a_forged_array_count_is_refused_at_once(tmp_path, tiny_gguf, key, etype, words):
    bad = edited(tiny_gguf, tmp_path / "model.gguf", forge_array(key, etype, 1 << 40), size=PADDED)
    t0 = time.monotonic()
    with pytest.raises(ModelFileError, match=words):
        inspect(bad)
    assert time.monotonic() - t0 < PER_INPUT_S


def _q8_row_of_63(reader):
    parts = reader.tensors[0].field.parts   # [name len, name, n_dims, dims, type, offset]
    parts[3][0], parts[4][0] = 63, GGMLQuantizationType.Q8_0


def _rename_blk1_attn_q_to_blk0(reader):
    name = next(t for t in reader.tensors if t.name == "blk.1.attn_q.weight").field.parts[1]
    name[4] = ord("0")


@pytest.mark.parametrize("change, words", [
    (lambda r: r.fields["llama.block_count"].parts[2].__setitem__(0, GGUFValueType.FLOAT32),
     "llama.block_count is a FLOAT32, not an integer"),
    (lambda r: r.tensors[0].field.parts[4].__setitem__(0, 250), "unknown type 250"),
    (_q8_row_of_63, "63 elements per row, not a multiple of its type's block of 32"),
    (lambda r: r.tensors[0].field.parts[3].__setitem__(0, 1 << 62), "element count overflows"),
    (_rename_blk1_attn_q_to_blk0, r"tensor blk\.0\.attn_q\.weight appears twice"),
])
def test_header_values_llama_cpp_would_refuse_are_refused_first(tmp_path, tiny_gguf, change, words):
    with pytest.raises(ModelFileError, match=words):
        inspect(edited(tiny_gguf, tmp_path / "model.gguf", change))
