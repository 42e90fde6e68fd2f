"""What a benchmark ran on: hardware, load, versions, the exact model files and command line."""
from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from engine.calibrate import cpu_model
from engine.paths import cache_dir
from engine.store.embedded import sha256_file

PACKAGES = ("llama_cpp_python", "torch", "numpy", "gguf")


def describe(threads: int | None) -> dict:
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "threads": threads or os.cpu_count(),
            "load_average": load_average(), "platform": platform.platform(), "python": platform.python_version(),
            "versions": {p: _version(p) for p in PACKAGES}, "command": sys.argv}


def model_record(path: Path) -> dict:
    return {"path": str(path), "size": path.stat().st_size, "sha256": sha256_cached(path)}


def drafter_record(method) -> dict:
    """The checkpoint files behind a method's drafters ({} for a method without any)."""
    out = {}
    for role, attr in (("block", "drafter"), ("vp", "vp")):
        drafter = getattr(method, attr, None)
        if drafter is not None and drafter.folder is not None:
            out[role] = model_record(drafter.folder / "model.safetensors")
    return out


def sha256_cached(path: Path) -> str:
    """Hashing a 1 GB file takes seconds; the digest is kept per (path, size, mtime)."""
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:24]
    cached = cache_dir() / "sha256" / f"{key}.json"
    if cached.is_file():
        return json.loads(cached.read_text())["sha256"]
    digest = sha256_file(path)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"path": str(path), "sha256": digest}))
    return digest


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
