"""Validate a GGUF file in Python before native code sees it: a bad file must give a clear error, not an abort.

The header is walked directly (the `gguf` package supplies the value and tensor type tables): its full
reader builds numpy views for every vocabulary entry and takes ~30 s on a 150k-token vocabulary, while
this walk takes well under a second and checks the same things — every field and tensor extent inside the
file, a tokenizer without duplicate tokens (llama.cpp asserts on those), the metadata a target needs.
"""
from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

GGUF_MAGIC = b"GGUF"
_SCALARS = {
    GGUFValueType.UINT8: "<B", GGUFValueType.INT8: "<b", GGUFValueType.UINT16: "<H",
    GGUFValueType.INT16: "<h", GGUFValueType.UINT32: "<I", GGUFValueType.INT32: "<i",
    GGUFValueType.FLOAT32: "<f", GGUFValueType.BOOL: "<?", GGUFValueType.UINT64: "<Q",
    GGUFValueType.INT64: "<q", GGUFValueType.FLOAT64: "<d",
}
# Arrays whose values are needed; others are only skipped over.
_KEEP_ARRAYS = {"tokenizer.ggml.tokens"}


class ModelFileError(ValueError):
    pass


@dataclass(frozen=True)
class GGUFInfo:
    path: Path
    architecture: str
    name: str
    n_layer: int
    n_embd: int
    n_vocab: int
    n_ctx_train: int
    chat_template: str | None


class _Truncated(Exception):
    pass


class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise _Truncated
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def string(self) -> bytes:
        n = self.unpack("<Q")
        if self.pos + n > len(self.buf):
            raise _Truncated
        s = self.buf[self.pos:self.pos + n]
        self.pos += n
        return s

    def value(self, vtype: int, keep: bool):
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            etype, n = self.unpack("<I"), self.unpack("<Q")
            if etype in _SCALARS and not keep:
                size = struct.calcsize(_SCALARS[etype]) * n
                if self.pos + size > len(self.buf):
                    raise _Truncated
                self.pos += size
                return None
            items = [self.value(etype, keep) for _ in range(n)]
            return items if keep else None
        if vtype not in _SCALARS:
            raise ValueError(f"unknown metadata value type {vtype}")
        return self.unpack(_SCALARS[vtype])


def _read(path: Path) -> tuple[dict, list[tuple[str, int, int, int]], int]:
    """(metadata, [(tensor name, type, element count, offset)], data start) or raises."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        c = _Cursor(mm)
        c.pos = 4
        version = c.unpack("<I")
        if version not in (2, 3):
            raise ValueError(f"unsupported GGUF version {version}")
        n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
        meta = {}
        for _ in range(n_kv):
            key = c.string().decode("utf-8", "replace")
            meta[key] = c.value(c.unpack("<I"), key in _KEEP_ARRAYS)
        tensors = []
        for _ in range(n_tensors):
            name = c.string().decode("utf-8", "replace")
            n_dims = c.unpack("<I")
            if n_dims > 4:
                raise ValueError(f"tensor {name} has {n_dims} dimensions")
            count = 1
            for _ in range(n_dims):
                count *= c.unpack("<Q")
            tensors.append((name, c.unpack("<I"), count, c.unpack("<Q")))
        align = int(meta.get("general.alignment") or 32)
        start = (c.pos + align - 1) // align * align
    return meta, tensors, start


def _text(v) -> str | None:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def inspect(path: str | Path) -> GGUFInfo:
    """Header, metadata and tensor extents checked; raises ModelFileError with one clear sentence."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"model file is empty: {path}")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path.name} is not a GGUF model file (it does not start with the GGUF magic)")
    try:
        meta, tensors, data_start = _read(path)
    except _Truncated:
        raise ModelFileError(f"{path.name} is damaged or truncated: its header runs past the end of the file") from None
    except (ValueError, UnicodeError, OverflowError, MemoryError) as e:
        raise ModelFileError(f"{path.name} is damaged or truncated: its GGUF header cannot be read ({e})") from None
    if not tensors:
        raise ModelFileError(f"{path.name} holds no tensors")
    end = 0
    for name, ttype, count, offset in tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
        except (ValueError, KeyError):
            raise ModelFileError(f"{path.name}: tensor {name} has an unknown type {ttype}") from None
        end = max(end, data_start + offset + count // block * type_size)
    if end > size:
        raise ModelFileError(f"{path.name} is truncated: its tensors need {end} bytes but the file has {size}")
    arch = _text(meta.get("general.architecture"))
    if not arch:
        raise ModelFileError(f"{path.name} has no general.architecture: not a language model GGUF")
    vocab = meta.get("tokenizer.ggml.tokens")
    if not vocab:
        raise ModelFileError(f"{path.name} has no tokenizer: it cannot be used for text generation")
    if len(set(vocab)) != len(vocab):
        raise ModelFileError(f"{path.name} has duplicate tokens in its vocabulary (llama.cpp would abort on it)")

    def num(key: str) -> int:
        v = meta.get(f"{arch}.{key}")
        if v is None:
            raise ModelFileError(f"{path.name} lacks {arch}.{key}")
        return int(v)

    return GGUFInfo(
        path=path,
        architecture=arch,
        name=_text(meta.get("general.name")) or path.stem,
        n_layer=num("block_count"),
        n_embd=num("embedding_length"),
        n_vocab=len(vocab),
        n_ctx_train=num("context_length"),
        chat_template=_text(meta.get("tokenizer.chat_template")),
    )
