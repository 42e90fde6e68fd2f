"""The default context size: the model's training context, capped so the cache takes at most half the
memory left once the model file and a reserve are counted (engine.context_size's rule)."""
import pytest

from engine.context_size import MIN_CONTEXT, RESERVE, available_memory, bytes_per_token, default_context
from engine.gguf_check import ModelFileError, inspect
from tests.tiny_gguf import write_tiny_gguf

GiB = 1 << 30


def test_bytes_per_token_is_the_kv_cache_and_one_batch_of_attention_scores(tiny_gguf):
    # 3 layers x 2 KV heads x (16 + 16) f16 values, then 512 batch rows x 4 heads of f32 scores
    assert bytes_per_token(inspect(tiny_gguf)) == 3 * 2 * 32 * 2 + 512 * 4 * 4


def test_plenty_of_memory_gives_the_trained_context(tiny_gguf):
    assert inspect(tiny_gguf).n_ctx_train == 2048
    assert default_context(tiny_gguf, available=64 * GiB) == 2048


def test_little_memory_caps_it_in_steps_of_256_down_to_a_floor(tiny_gguf):
    per_token = bytes_per_token(inspect(tiny_gguf))
    taken = tiny_gguf.stat().st_size + RESERVE
    # half of what is left must hold the cache: room for 1000 tokens gives 768
    assert default_context(tiny_gguf, available=taken + 2 * 1000 * per_token) == 768
    assert default_context(tiny_gguf, available=taken + 2 * 1024 * per_token) == 1024
    assert default_context(tiny_gguf, available=taken) == MIN_CONTEXT
    assert default_context(tiny_gguf, available=0) == MIN_CONTEXT


def test_a_model_trained_for_less_than_the_floor_keeps_its_own(tmp_path):
    short = write_tiny_gguf(tmp_path / "short.gguf", n_ctx=256)
    assert default_context(short, available=0) == 256
    assert default_context(short, available=64 * GiB) == 256


def test_this_machine_says_how_much_memory_is_free():
    free = available_memory()
    assert free is not None and 0 < free < 1 << 50


def test_a_damaged_file_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + bytes(8))
    with pytest.raises(ModelFileError, match="bad.gguf is damaged: unsupported GGUF version 0"):
        default_context(bad)
