"""A file-hash memo, so a multi-GB GGUF is hashed once rather than at every start, and atomic writes."""
from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from engine.paths import cache_dir


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered by absolute path, size and mtime (a changed file is rehashed)."""
    path = Path(path).resolve()
    st = path.stat()
    memo_file = cache_dir() / "file_sha256.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    entry = memo.get(str(path))
    if entry and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        return entry["sha256"]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
    memo[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": h.hexdigest()}
    with atomic_write(memo_file) as tmp:
        tmp.write_text(json.dumps(memo, indent=1))
    return h.hexdigest()


@contextmanager
def atomic_write(path: Path) -> Iterator[Path]:
    """Yield a sibling temp path to write; it takes `path`'s name only if the block succeeds,
    so readers never see a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.partial")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
