"""Fuzzing the drafter loaders: config.json documents (a real z-lab layout with fields replaced by any
JSON) and model.safetensors / draft_vocab.safetensors with mutated bytes. Every input ends in
DrafterMismatch or a drafter within its bounds, within 2 s."""
import json

import numpy as np
import pytest
from hypothesis import given, strategies as st

from engine.drafters import Drafter, DrafterConfig, DrafterMismatch, DraftVocab
from engine.drafters.config import LIMITS, MAX_FEATURE_LAYERS
from tests.engine.drafters.drafter_helpers import small_config, small_head, zlab_config_json
from tests.fuzzing import COUNTS, fuzz_settings, json_values

N_CONFIG = 2500
N_WEIGHTS = 1500

JSON = json_values(0, -1, 1, 2, 16, 255, 256, 10**6, 2**31, 2**63, 16.0, 16.5, 1e308, float("nan"))
FIELDS = sorted(set(zlab_config_json()) | {"partial_rotary_factor", "rope_parameters", "is_causal"})
DFLASH_FIELDS = ["mask_token_id", "target_layer_ids", "block_size", "input_embedding_scale", "output_multiplier",
                 "final_logit_softcapping"]


@st.composite
def configs(draw):
    raw = zlab_config_json()
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON)  # now and then not even an object
    for _ in range(draw(st.integers(1, 4))):
        if draw(st.booleans()):
            raw[draw(st.sampled_from(FIELDS))] = draw(JSON)
        elif isinstance(raw.get("dflash_config"), dict):
            raw["dflash_config"][draw(st.sampled_from(DFLASH_FIELDS))] = draw(JSON)
    return raw


@pytest.mark.timeout(300)
def test_config_documents_end_in_drafter_mismatch_or_a_bounded_config():
    @fuzz_settings(N_CONFIG)
    @given(configs())
    def check(raw):
        COUNTS["drafter config"] += 1
        try:
            config = DrafterConfig.from_hf(raw)
        except DrafterMismatch as e:
            assert str(e) and "\n" not in str(e)
            return
        for name, (lo, hi) in LIMITS.items():
            values = getattr(config, name)
            assert all(lo <= v <= hi for v in (values if isinstance(values, tuple) else (values,)) if v is not None)
        assert 1 <= len(config.target_layer_ids) <= MAX_FEATURE_LAYERS
        json.dumps(config.to_hf())  # what a re-save writes

    check()
    assert COUNTS["drafter config"] >= N_CONFIG


EDITS = st.lists(st.tuples(st.sampled_from(["bytes", "u64", "truncate", "splice"]), st.integers(0, 65535),
                           st.binary(min_size=1, max_size=8)), min_size=1, max_size=3)


def mutate(data: bytes, edits) -> bytes:
    """Edits land mostly in the 8-byte length and the JSON header (dtypes, shapes, offsets) before the data."""
    out = bytearray(data)
    header_end = 8 + int.from_bytes(data[:8], "little")
    for kind, where, payload in edits:
        pos = where * min(header_end, len(out)) // 65536
        if kind == "bytes":
            out[pos:pos + len(payload[:2])] = payload[:2]
        elif kind == "u64":
            out[pos:pos + 8] = payload.ljust(8, b"\0")
        elif kind == "truncate":
            del out[where * len(out) // 65536:]
        else:
            out[pos:pos] = payload
    return bytes(out)


@pytest.mark.timeout(300)
def test_mutated_safetensors_end_in_drafter_mismatch_or_a_drafter(tmp_path):
    head = small_head()
    folder = tmp_path / "d"
    Drafter.random(small_config(), head, vocab=DraftVocab(np.arange(100))).save(folder)
    originals = {name: (folder / name).read_bytes() for name in ("model.safetensors", "draft_vocab.safetensors")}

    @fuzz_settings(N_WEIGHTS)
    @given(st.sampled_from(sorted(originals)), EDITS)
    def check(name, edits):
        COUNTS["drafter safetensors"] += 1
        for other, data in originals.items():
            (folder / other).write_bytes(mutate(data, edits) if other == name else data)
        try:
            drafter = Drafter.load(folder, head)
        except DrafterMismatch as e:
            assert str(e) and "\n" not in str(e)
            return
        assert drafter.config == small_config()

    check()
    assert COUNTS["drafter safetensors"] >= N_WEIGHTS
