"""The one gate every foreign file name (from a catalog or a Hub listing) passes before touching disk."""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath

from engine.store.errors import UnsafeFilenameError


def safe_relpath(name: str) -> PurePosixPath:
    """Validate a repo-relative file name ("sub/dir/file.gguf") and return it as a relative path.

    Names come from catalogs and Hub listings, i.e. from strangers: anything that could point outside
    the folder we put it in, or be read differently on Windows, is refused rather than cleaned up.
    """
    if not name or "\x00" in name:
        raise UnsafeFilenameError(f"Refusing empty or NUL-containing file name {name!r}.")
    if "\\" in name:
        raise UnsafeFilenameError(f"Refusing file name {name!r}: backslashes are not allowed.")
    if name.startswith("/") or (len(name) >= 2 and name[1] == ":"):
        raise UnsafeFilenameError(f"Refusing file name {name!r}: absolute paths are not allowed.")
    parts = name.split("/")
    if any(part in ("", ".", "..") for part in parts):
        raise UnsafeFilenameError(f"Refusing file name {name!r}: it must not contain '..', '.' or empty parts.")
    if any(part != part.strip() or part.endswith(".") for part in parts):
        # Windows silently strips trailing dots and spaces, so two names could map to one file.
        raise UnsafeFilenameError(f"Refusing file name {name!r}: parts must not end with dots or spaces.")
    return PurePosixPath(*parts)


def safe_join(root: Path, name: str) -> Path:
    """root / name, guaranteed to stay inside root (checked again after resolving symlinks)."""
    path = root.joinpath(*safe_relpath(name).parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise UnsafeFilenameError(f"Refusing file name {name!r}: it resolves outside {root}.")
    return path


def aside_path(path: Path) -> Path:
    """A name beside `path` for setting a damaged file aside, `<name>.broken-<time>`, that no earlier one
    holds (two damaged files within a second must not overwrite each other's copy)."""
    stem = f"{path.name}.broken-{time.strftime('%Y%m%d-%H%M%S')}"
    aside, n = path.with_name(stem), 1
    while aside.exists() or aside.with_name(aside.name + "-wal").exists():
        n += 1
        aside = path.with_name(f"{stem}-{n}")
    return aside
