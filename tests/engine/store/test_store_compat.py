"""Drafter/target compatibility, read from real (tiny) GGUF metadata and drafter config.json files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from store_helpers import write_drafter, write_gguf

from engine.store.compat import check_drafter, read_drafter_shape, read_target_shape
from engine.store.errors import IncompatibleDrafterError, InvalidModelError


def test_target_shape_comes_from_gguf_metadata(tmp_path: Path) -> None:
    shape = read_target_shape(write_gguf(tmp_path / "t.gguf", n_layer=6, hidden=32, vocab=50))
    assert (shape.arch, shape.n_layer, shape.hidden_size, shape.vocab_size) == ("qwen2", 6, 32, 50)


def test_matching_drafter_passes(tmp_path: Path) -> None:
    check_drafter(write_gguf(tmp_path / "t.gguf"), write_drafter(tmp_path / "d", layers=[0, 1, 3], mask=95))


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ({"hidden": 128}, "hidden size 128"),
        ({"vocab": 100}, "vocabulary size 100"),
        ({"layers": [1, 4]}, r"target layers \[4\]"),
        ({"mask": 96}, "mask token 96"),
    ],
)
def test_mismatches_are_named(tmp_path: Path, shape: dict, message: str) -> None:
    target = write_gguf(tmp_path / "t.gguf", n_layer=4, hidden=64, vocab=96)
    with pytest.raises(IncompatibleDrafterError, match=message) as err:
        check_drafter(target, write_drafter(tmp_path / "d", **shape))
    assert "\n" not in str(err.value)


def test_top_level_config_fields_are_accepted_and_missing_ones_refused(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    config = {"hidden_size": 64, "vocab_size": 96, "target_layer_ids": [1], "mask_token_id": 3}
    (folder / "config.json").write_text(json.dumps(config))
    assert read_drafter_shape(folder).target_layer_ids == (1,)
    del config["mask_token_id"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InvalidModelError, match="mask_token_id"):
        read_drafter_shape(folder)


def test_not_a_gguf_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x.gguf").write_bytes(b"not a gguf at all" * 10)
    with pytest.raises(InvalidModelError):
        read_target_shape(tmp_path / "x.gguf")
