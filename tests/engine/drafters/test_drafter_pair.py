"""Loading a drafter pair: a refusal says whether drafter 1 or the VP drafter is at fault."""
from __future__ import annotations

import json

import pytest

from engine.drafters import DrafterMismatch
from engine.drafters.pair import load_pair
from tests.engine.drafters.drafter_helpers import save_pair_for


@pytest.mark.parametrize("which, role", [("block", "Drafter 1"), ("vp", "The VP drafter")])
def test_a_refused_drafter_is_named_by_its_role(tiny_gguf, tmp_path, which, role):
    block, vp = save_pair_for(tiny_gguf, tmp_path)
    config = tmp_path / which / "config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "block_size": 1_000_000}))
    with pytest.raises(DrafterMismatch, match=f"^{role} \\({tmp_path / which}\\): .*block_size is 1000000"):
        load_pair(tiny_gguf, block, vp)


def test_a_good_pair_loads(tiny_gguf, tmp_path):
    d1, d2 = load_pair(tiny_gguf, *save_pair_for(tiny_gguf, tmp_path))
    assert d1.config.block_size == d2.config.block_size == 8
