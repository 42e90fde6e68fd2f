"""Content hashes: sha256 for catalog pins and LFS files, git blob sha1 for small files the Hub keeps in git."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from engine.store.errors import ChecksumMismatchError

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX40 = re.compile(r"[0-9a-f]{40}")
READ_CHUNK = 4 << 20
# Files above this size are LFS on the Hub, whose ETag is a sha256; below it the ETag is a git blob sha1.
GIT_BLOB_LIMIT = 10 << 20


class FileHasher:
    """Incremental hashes of one file; both digests are cheap next to disk and network I/O."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.size = 0
        self._sha256 = hashlib.sha256()
        self._chunks: list[bytes] | None = []  # kept only while small enough for a git blob hash

    def update(self, data: bytes) -> None:
        self.size += len(data)
        self._sha256.update(data)
        if self._chunks is not None:
            self._chunks.append(data)
            if self.size > GIT_BLOB_LIMIT:
                self._chunks = None

    def update_from_file(self, path: Path, length: int) -> None:
        if length == 0:
            return
        with path.open("rb") as fh:
            remaining = length
            while remaining:
                data = fh.read(min(READ_CHUNK, remaining))
                if not data:
                    break
                self.update(data)
                remaining -= len(data)

    def sha256(self) -> str:
        return self._sha256.hexdigest()

    def git_sha1(self) -> str | None:
        if self._chunks is None:
            return None
        blob = hashlib.sha1(b"blob %d\0" % self.size)
        for chunk in self._chunks:
            blob.update(chunk)
        return blob.hexdigest()


def sha256_file(path: Path) -> str:
    hasher = FileHasher()
    hasher.update_from_file(path, path.stat().st_size)
    return hasher.sha256()


def check_digest(hasher: FileHasher, *, pinned_sha256: str | None, hub_etag: str | None, what: str) -> str:
    """Check against the catalog pin and/or the Hub's ETag; return the file's sha256.

    With neither available (a plain HTTP server without ETags) nothing can be verified, which the
    caller decides about; the Hub always sends an ETag.
    """
    actual = hasher.sha256()
    if pinned_sha256 is not None and actual != pinned_sha256:
        raise ChecksumMismatchError(f"{what} has sha256 {actual}, expected {pinned_sha256}; the file was removed.")
    if hub_etag and _HEX64.fullmatch(hub_etag) and actual != hub_etag:
        raise ChecksumMismatchError(f"{what} has sha256 {actual}, the Hub reports {hub_etag}; the file was removed.")
    if hub_etag and _HEX40.fullmatch(hub_etag):
        git = hasher.git_sha1()
        if git is not None and git != hub_etag:
            raise ChecksumMismatchError(f"{what} has git hash {git}, the Hub reports {hub_etag}; the file was removed.")
    return actual
