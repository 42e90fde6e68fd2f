"""Damaged GGUF files made from real ones, for the validator's and the store's tests: header fields edited
in place through gguf's own reader (its r+ memmap), so each file differs from a good one in one value."""
from __future__ import annotations

import shutil
from pathlib import Path

from gguf import GGUFReader


def edited(src: Path, dst: Path, change, size: int | None = None) -> Path:
    """A copy of `src` with `change(reader)` applied to its header fields; `size` extends the copy (a
    sparse tail of zeros) so that a check that walks the file shows its cost."""
    shutil.copy(src, dst)
    reader = GGUFReader(dst, "r+")
    change(reader)
    del reader
    if size is not None:
        with dst.open("r+b") as f:
            f.truncate(size)
    return dst


def shift_offset(name: str, by: int = 1):
    """Tensor `name`'s data offset moved by `by` bytes: a middle tensor still lies inside the file."""
    def change(reader):
        next(t for t in reader.tensors if t.name == name).field.parts[-1][0] += by
    return change


def forge_array(key: str, etype, count: int):
    """Array `key` declared as `count` elements of `etype` (its bytes unchanged)."""
    def change(reader):
        parts = reader.fields[key].parts
        parts[3][0], parts[4][0] = etype, count   # [key len, key, ARRAY, element type, count, ...]
    return change
