from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file as save_numpy

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


@pytest.mark.parametrize("change, words", [
    (dict(block_size=1_000_000), "block_size is 1000000; it must be between 1 and 256"),
    (dict(num_hidden_layers=10_000), "num_hidden_layers is 10000; it must be between 1 and 64"),
    (dict(hidden_size=-32), "hidden_size is -32"),
    (dict(head_dim=1 << 40), "head_dim is 1099511627776"),
    (dict(num_attention_heads=0), "num_attention_heads is 0"),
    (dict(intermediate_size="48"), "intermediate_size is '48', not an integer"),
    (dict(vocab_size=300.5), "vocab_size is 300.5, not an integer"),
    (dict(rms_norm_eps=-1.0), "rms_norm_eps is -1.0; it must be a finite positive number"),
    (dict(rope_theta="big"), "rope_theta is 'big', not a number"),
    (dict(dflash_config={"mask_token_id": 299, "target_layer_ids": [1, 3, 5000]}), "target_layer_ids is 5000"),
    (dict(dflash_config={"mask_token_id": 299, "target_layer_ids": "1,3"}), "target_layer_ids is not a short list"),
    (dict(dflash_config={"mask_token_id": 300, "target_layer_ids": [1]}), "mask token id 300 is outside its vocab"),
    (dict(dflash_config=[1, 2]), "dflash_config is not an object"),
    (dict(rope_scaling="yarn"), "rope_scaling is not an object"),
    (dict(architectures="DFlashDraftModel"), "not a DFlashDraftModel drafter"),
])
def test_config_fields_out_of_bounds_or_of_the_wrong_type_are_refused_before_allocating(change, words) -> None:
    with pytest.raises(DrafterMismatch, match=re.escape(words)):
        DrafterConfig.from_hf({**zlab_config_json(), **change})


@pytest.mark.parametrize("content, words", [
    ("[1, 2, 3]", "holds a JSON array, not an object"),
    ('"a string"', "holds a JSON string, not an object"),
    ("null", "holds a JSON null, not an object"),
    ("[" * 100_000, "is not valid JSON"),
])
def test_a_config_json_that_is_not_an_object_is_refused(tmp_path: Path, content: str, words: str) -> None:
    raw = zlab_config_json()
    folder = write_zlab_checkpoint(tmp_path / "d", raw, zlab_weights(raw))
    (folder / "config.json").write_text(content)
    with pytest.raises(DrafterMismatch, match=re.escape(words)):
        Drafter.load(folder, small_head())


@pytest.mark.parametrize("name", ["model.safetensors", "draft_vocab.safetensors"])
def test_a_truncated_safetensors_file_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    folder = tmp_path / "d"
    Drafter.random(small_config(), small_head(), vocab=DraftVocab(np.arange(100))).save(folder)
    data = (folder / name).read_bytes()
    (folder / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DrafterMismatch, match=f"{re.escape(str(folder / name))} is damaged or not a safetensors") as e:
        Drafter.load(folder, small_head())
    assert "\n" not in str(e.value)


def test_a_draft_vocabulary_of_floats_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    Drafter.random(small_config(), small_head()).save(folder)
    save_numpy({"ids": np.arange(10, dtype=np.float32)}, str(folder / "draft_vocab.safetensors"))
    with pytest.raises(DrafterMismatch, match="holds no integer tensor 'ids'"):
        Drafter.load(folder, small_head())


def test_an_int8_checkpoint_is_half_the_size_and_drafts_as_the_float_one(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from engine.drafters.checkpoint import read_checkpoint, write_checkpoint

    head = small_head(hidden=256)
    config = small_config(hidden_size=256, intermediate_size=512, head_dim=32)
    original = Drafter.random(config, head, seed=1, std=0.1)
    weights = {k: v.half() for k, v in original.model.state_dict().items()}
    write_checkpoint(tmp_path / "f16", config, weights)
    write_checkpoint(tmp_path / "int8", config, weights, int8=True)
    stored = load_file(str(tmp_path / "int8" / "model.safetensors"))
    assert stored["fc.weight"].dtype == torch.int8 and stored["fc.weight.int8_scale"].shape == (256,)
    assert stored["layers.0.input_layernorm.weight"].dtype == torch.float16  # small tensors stay float
    size = {name: (tmp_path / name / "model.safetensors").stat().st_size for name in ("f16", "int8")}
    assert size["int8"] < 0.55 * size["f16"]
    _, back, _ = read_checkpoint(tmp_path / "int8")
    for name, w in weights.items():
        step = w.float().abs().amax(dim=-1, keepdim=True) / 127 if w.dim() == 2 else 0
        assert torch.all((back[name].float() - w.float()).abs() <= step / 2 + 1e-3), name
    drafts = []
    for name in ("f16", "int8"):
        d = Drafter.load(tmp_path / name, head)
        d.append_context(features(6, config))
        drafts.append(d.forward_block(block()))
    # the rounding moves each logit by a small part of their spread (random weights: many near-ties, so
    # agreement of the argmax says little here; the ablation measures acceptance on the real target)
    assert np.abs(drafts[1] - drafts[0]).mean() < 0.03 * drafts[0].std()


@pytest.mark.parametrize("damage, words", [("no scale", "without a scale"), ("lone scale", "without its int8"),
                                           ("short scale", "without a scale")])
def test_a_damaged_int8_checkpoint_is_one_clear_error(tmp_path: Path, damage: str, words: str) -> None:
    from safetensors.torch import load_file, save_file

    from engine.drafters.checkpoint import write_checkpoint

    head = small_head(hidden=256)
    config = small_config(hidden_size=256, intermediate_size=512, head_dim=32)
    weights = {k: v.half() for k, v in Drafter.random(config, head).model.state_dict().items()}
    write_checkpoint(tmp_path / "d", config, weights, int8=True)
    path = tmp_path / "d" / "model.safetensors"
    stored = load_file(str(path))
    if damage == "no scale":
        del stored["fc.weight.int8_scale"]
    elif damage == "lone scale":
        stored["fc.weight"] = stored["fc.weight"].half()
    else:
        stored["fc.weight.int8_scale"] = stored["fc.weight.int8_scale"][:10]
    save_file(stored, str(path))
    with pytest.raises(DrafterMismatch, match=words):
        Drafter.load(tmp_path / "d", head)
