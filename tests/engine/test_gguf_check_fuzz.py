"""Fuzzing engine.gguf_check with mutations of a real header (the tiny model's): every input ends in
ModelFileError or a valid GGUFInfo within 2 s."""
import pytest
from gguf import GGUFReader
from hypothesis import given, strategies as st

from engine.gguf_check import GGUFInfo, ModelFileError, inspect
from tests.fuzzing import COUNTS, fuzz_settings

N = 3000
EDGES = [0, 1, 2, 3, 4, 8, 31, 32, 33, 63, 64, 255, 256, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62,
         2**63 - 1, 2**63, 2**64 - 1]
# (what, where: a fraction of the header in 1/2^16 steps, bytes for "bytes"/"splice", a number for "u32"/"u64")
EDITS = st.lists(st.tuples(st.sampled_from(["bytes", "u64", "u32", "truncate", "splice"]), st.integers(0, 65535),
                           st.binary(min_size=1, max_size=16), st.sampled_from(EDGES) | st.integers(0, 2**64 - 1)),
                 min_size=1, max_size=3)


def mutate(data: bytes, header_len: int, edits) -> bytes:
    """Most edits land in the header, where every byte is a count, a type, a length or an offset."""
    out = bytearray(data)
    for kind, where, payload, value in edits:
        pos = 4 + where * (min(header_len, len(out)) - 4) // 65536
        if kind == "bytes":
            out[pos:pos + len(payload[:4])] = payload[:4]
        elif kind == "u64":
            out[pos:pos + 8] = value.to_bytes(8, "little")
        elif kind == "u32":
            out[pos:pos + 4] = (value % 2**32).to_bytes(4, "little")
        elif kind == "truncate":
            del out[max(4, where * len(out) // 65536):]
        else:
            out[pos:pos] = payload
    return bytes(out)


@pytest.mark.timeout(300)
def test_mutated_headers_end_in_a_model_file_error_or_a_valid_info(tiny_gguf, tmp_path):
    data = tiny_gguf.read_bytes()
    header_len = GGUFReader(tiny_gguf).data_offset
    path = tmp_path / "mutant.gguf"

    @fuzz_settings(N)
    @given(EDITS)
    def check(edits):
        COUNTS["gguf"] += 1
        path.write_bytes(mutate(data, header_len, edits))
        try:
            info = inspect(path)
        except ModelFileError as e:
            assert str(e) and "\n" not in str(e)
            return
        assert isinstance(info, GGUFInfo) and info.n_vocab > 0 and min(info.n_layer, info.n_embd) > 0

    check()
    assert COUNTS["gguf"] >= N
