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

from gguf import GGUFReader

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
    try:
        reader = GGUFReader(gguf_path, "r")
    except (OSError, ValueError) as exc:
        raise InvalidModelError(f"{gguf_path.name} is not a readable GGUF file ({exc}).") from exc
    arch = _scalar(reader, "general.architecture", gguf_path)
    n_layer = _scalar(reader, f"{arch}.block_count", gguf_path)
    hidden = _scalar(reader, f"{arch}.embedding_length", gguf_path)
    if f"{arch}.vocab_size" in reader.fields:
        vocab = _scalar(reader, f"{arch}.vocab_size", gguf_path)
    elif "tokenizer.ggml.tokens" in reader.fields:
        # One entry of field.data per array element: counting them avoids decoding 150k strings.
        vocab = len(reader.fields["tokenizer.ggml.tokens"].data)
    else:
        raise InvalidModelError(f"{gguf_path.name} has no vocabulary size in its GGUF metadata.")
    return TargetShape(arch=str(arch), n_layer=int(n_layer), hidden_size=int(hidden), vocab_size=int(vocab))


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


def _scalar(reader: GGUFReader, key: str, path: Path) -> Any:
    field = reader.fields.get(key)
    if field is None:
        raise InvalidModelError(f"{path.name} lacks GGUF metadata key {key}.")
    return field.contents()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
