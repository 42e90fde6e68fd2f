"""Can this drafter checkpoint draft for this target GGUF? Checked before a pair is offered.

A DFlash-style drafter reuses the target's embedding and output head and reads the target's hidden
features of chosen layers, so its hidden size and vocabulary must equal the target's, the layers it
taps must exist, and its mask token must be a valid token id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.gguf_check import ModelFileError, inspect
from engine.store.errors import IncompatibleDrafterError, InvalidModelError


@dataclass(frozen=True)
class TargetShape:
    arch: str
    n_layer: int
    hidden_size: int
    vocab_size: int


@dataclass(frozen=True)
class DrafterShape:
    hidden_size: int
    vocab_size: int
    target_layer_ids: tuple[int, ...]
    mask_token_id: int


def read_target_shape(gguf_path: Path) -> TargetShape:
    """The shape a drafter must fit, from a header engine.gguf_check has validated (so a forged count or
    a misaligned tensor is refused here, in the terms llama.cpp would use)."""
    try:
        info = inspect(gguf_path)
    except ModelFileError as exc:
        raise InvalidModelError(f"{exc}.") from None
    return TargetShape(arch=info.architecture, n_layer=info.n_layer, hidden_size=info.n_embd,
                       vocab_size=info.n_vocab)


def read_drafter_shape(folder: Path) -> DrafterShape:
    """Fields from config.json; DFlash keeps layer ids and mask id in a `dflash_config` sub-object."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"Drafter folder {folder} has no readable config.json ({exc}).") from exc
    if not isinstance(config, dict):
        raise InvalidModelError(f"Drafter config {folder / 'config.json'} is not a JSON object.")
    nested = config.get("dflash_config") if isinstance(config.get("dflash_config"), dict) else {}

    def field(key: str) -> Any:
        value = nested.get(key, config.get(key))
        if value is None:
            raise InvalidModelError(f"Drafter config {folder / 'config.json'} lacks {key}.")
        return value

    layer_ids = field("target_layer_ids")
    ints = [field("hidden_size"), field("vocab_size"), field("mask_token_id")]
    if not isinstance(layer_ids, list) or not layer_ids or not all(_is_int(x) for x in [*layer_ids, *ints]):
        raise InvalidModelError(f"Drafter config {folder / 'config.json'} has non-integer shape fields.")
    return DrafterShape(
        hidden_size=ints[0], vocab_size=ints[1], target_layer_ids=tuple(layer_ids), mask_token_id=ints[2]
    )


def drafter_problems(target: TargetShape, drafter: DrafterShape) -> list[str]:
    """Human-readable mismatches; empty means the pair is usable."""
    problems = []
    if drafter.hidden_size != target.hidden_size:
        problems.append(f"hidden size {drafter.hidden_size} differs from the target's {target.hidden_size}")
    if drafter.vocab_size != target.vocab_size:
        problems.append(f"vocabulary size {drafter.vocab_size} differs from the target's {target.vocab_size}")
    bad_layers = [i for i in drafter.target_layer_ids if not 0 <= i < target.n_layer]
    if bad_layers:
        problems.append(f"target layers {bad_layers} do not exist in a {target.n_layer}-layer target")
    if not 0 <= drafter.mask_token_id < target.vocab_size:
        problems.append(f"mask token {drafter.mask_token_id} is outside the vocabulary of {target.vocab_size}")
    return problems


def check_drafter(target_gguf: Path, drafter_dir: Path) -> None:
    problems = drafter_problems(read_target_shape(target_gguf), read_drafter_shape(drafter_dir))
    if problems:
        raise IncompatibleDrafterError(
            f"Drafter {drafter_dir.name} does not fit {target_gguf.name}: {'; '.join(problems)}."
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
