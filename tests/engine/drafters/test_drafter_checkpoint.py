from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.drafters import Drafter, DrafterConfig, DrafterMismatch, DraftVocab
from tests.engine.drafters.drafter_helpers import (MASK, features, small_config, small_head,
                                                   write_zlab_checkpoint, zlab_config_json, zlab_weights)


def block(mask: int = MASK, gamma: int = 8) -> np.ndarray:
    return np.array([[11] + [mask] * (gamma - 1), [11, 12, 13] + [mask] * (gamma - 3)], dtype=np.int64)


def test_save_then_load_gives_identical_outputs(tmp_path: Path) -> None:
    head = small_head()
    config = small_config()
    original = Drafter.random(config, head, seed=1, std=0.1, vocab=DraftVocab(np.arange(100, 0, -1)))
    original.save(tmp_path / "d")
    loaded = Drafter.load(tmp_path / "d", head)

    assert loaded.config == config
    assert np.array_equal(loaded.vocab.ids, original.vocab.ids)
    for d in (original, loaded):
        d.append_context(features(6, config))
    assert np.array_equal(loaded.forward_block(block()), original.forward_block(block()))
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == [
        "config.json", "draft_vocab.safetensors", "model.safetensors"]


def test_saved_config_is_readable_as_zlab_layout(tmp_path: Path) -> None:
    Drafter.random(small_config(), small_head()).save(tmp_path / "d", dtype=torch.bfloat16)
    raw = json.loads((tmp_path / "d" / "config.json").read_text())
    assert raw["architectures"] == ["DFlashDraftModel"]
    assert raw["dflash_config"] == {"mask_token_id": MASK, "target_layer_ids": [1, 3, 5]}
    assert raw["block_size"] == 8 and raw["num_target_layers"] == 8 and raw["torch_dtype"] == "bfloat16"


def test_public_dflash_checkpoint_loads_unchanged_and_runs(tmp_path: Path) -> None:
    raw = zlab_config_json()
    folder = write_zlab_checkpoint(tmp_path / "zlab", raw, zlab_weights(raw))
    drafter = Drafter.load(folder, small_head())

    assert drafter.config.block_size == 16
    assert drafter.config.mask_token_id == MASK
    assert drafter.config.target_layer_ids == (1, 3, 5)
    drafter.append_context(features(4, drafter.config))
    tokens, conf = drafter.draft(block(gamma=16))
    assert tokens.shape == conf.shape == (2, 16)
    assert (tokens != MASK).all() and (conf > 0).all() and (conf <= 1).all()


def test_newer_zlab_config_with_block_size_inside_dflash_config(tmp_path: Path) -> None:
    raw = zlab_config_json()
    del raw["block_size"], raw["rope_theta"]
    raw["dflash_config"]["block_size"] = 8
    raw["rope_parameters"] = {"rope_theta": 500000.0, "rope_type": "default"}
    config = DrafterConfig.from_hf(raw)
    assert config.block_size == 8 and config.rope_theta == 500000.0


def test_shared_keys_in_checkpoint_are_ignored(tmp_path: Path) -> None:
    raw = zlab_config_json()
    weights = zlab_weights(raw) | {"lm_head.weight": torch.zeros(3, 3), "embed_tokens.weight": torch.zeros(3, 3)}
    Drafter.load(write_zlab_checkpoint(tmp_path / "zlab", raw, weights), small_head())


@pytest.mark.parametrize("change, words", [
    (dict(vocab=512), "vocabulary of 512 tokens"),
    (dict(hidden=48), "hidden size 48"),
    (dict(layer_ids=[1, 3, 8]), "target layers [8]"),
    (dict(mask=300), "mask token id 300"),
    (dict(n_target_layers=36), "trained for a target with 36 layers"),
])
def test_mismatched_checkpoint_is_refused(tmp_path: Path, change: dict, words: str) -> None:
    raw = zlab_config_json(**change)
    folder = write_zlab_checkpoint(tmp_path / "zlab", raw, zlab_weights(raw))
    with pytest.raises(DrafterMismatch, match=words.replace("[", r"\[").replace("]", r"\]")):
        Drafter.load(folder, small_head())


def test_unsupported_variants_and_broken_folders_are_refused(tmp_path: Path) -> None:
    raw = zlab_config_json()
    weights = zlab_weights(raw)
    cases = {
        "arch": ({**raw, "architectures": ["DFlash2DraftModel"]}, weights, "DFlash2DraftModel"),
        "sliding": ({**raw, "use_sliding_window": True}, weights, "sliding-window"),
        "missing": (raw, {k: v for k, v in weights.items() if k != "fc.weight"}, "lacks 1 weights"),
        "extra": (raw, weights | {"layers.0.attention_conv.base_kernel": torch.zeros(2)}, "attention_conv"),
        "shape": ({**raw, "intermediate_size": 64}, weights, "mlp.gate_proj.weight has shape"),
        "no_mask": ({**raw, "dflash_config": {"target_layer_ids": [1, 3, 5]}}, weights, "mask_token_id"),
    }
    for name, (config, tensors, words) in cases.items():
        with pytest.raises(DrafterMismatch, match=words):
            Drafter.load(write_zlab_checkpoint(tmp_path / name, config, tensors), small_head())
    with pytest.raises(DrafterMismatch, match="no config.json"):
        Drafter.load(tmp_path / "absent", small_head())


def test_block_size_and_feature_width_are_enforced() -> None:
    drafter = Drafter.random(small_config(), small_head())
    with pytest.raises(DrafterMismatch, match="block size 8"):
        drafter.forward_block(np.full((1, 9), MASK))
    with pytest.raises(DrafterMismatch, match="3 layers x 32"):
        drafter.append_context(np.zeros((2, 64), dtype=np.float32))
    with pytest.raises(DrafterMismatch, match="block size 1 leaves no position"):
        small_config(block_size=1).validate()
