"""Validate a GGUF file in Python before native code sees it: a bad file must give a clear error, not an abort.

The header is walked directly (the `gguf` package supplies the value and tensor type tables): its full
reader builds numpy views for every vocabulary entry and takes ~30 s on a 150k-token vocabulary, while
this walk takes well under a second. It checks what llama.cpp's gguf reader and model loader check, in
the same terms: every declared count against the bytes left in the file before anything is read (so a
forged count costs nothing), value and tensor types, duplicate keys and tensor names, the alignment,
each tensor's offset (llama.cpp wants the tensors packed in order, each at the aligned end of the one
before), its extent inside the file, a tokenizer without duplicate tokens (llama.cpp asserts on those)
and the metadata a target needs.
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
_INTEGERS = {t for t in _SCALARS if t not in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64, GGUFValueType.BOOL)}
# Arrays whose values are needed (and the element type they must have); others are only skipped over.
_KEEP_ARRAYS = {"tokenizer.ggml.tokens": GGUFValueType.STRING}
GGML_MAX_DIMS = 4
GGML_MAX_NAME = 64
INT64_MAX = (1 << 63) - 1


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
    # the KV cache's shape per layer (engine.context_size): heads, key/value heads and their widths; a
    # file that does not say (or says per layer) gets the widest reading, n_head_kv = n_head
    n_head: int = 1
    n_head_kv: int = 1
    key_length: int = 1
    value_length: int = 1


class _Truncated(Exception):
    pass


class _Bad(Exception):
    """The header breaks a rule llama.cpp enforces; the message says which."""


@dataclass(frozen=True)
class _Tensor:
    name: str
    type: int
    shape: tuple[int, ...]
    offset: int


class _Cursor:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def need(self, n: int) -> None:
        if n > len(self.buf) - self.pos:
            raise _Truncated

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        self.need(size)
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return v

    def string(self) -> bytes:
        n = self.unpack("<Q")
        self.need(n)
        s = self.buf[self.pos:self.pos + n]
        self.pos += n
        return s

    def value(self, vtype: int, key: str):
        if vtype == GGUFValueType.STRING:
            return self.string()
        if vtype == GGUFValueType.ARRAY:
            return self.array(key)
        if vtype not in _SCALARS:
            raise _Bad(f"metadata key {_printable(key)} has an unknown value type {vtype}")
        return self.unpack(_SCALARS[vtype])

    def array(self, key: str):
        etype, n = self.unpack("<I"), self.unpack("<Q")
        keep = _KEEP_ARRAYS.get(key)
        if keep is not None and etype != keep:
            raise _Bad(f"{_printable(key)} is an array of {_type_name(etype)}, not of {_type_name(keep)}")
        if etype == GGUFValueType.ARRAY:
            raise _Bad(f"metadata key {_printable(key)} is an array of arrays, which GGUF readers refuse")
        if etype in _SCALARS:
            self.need(struct.calcsize(_SCALARS[etype]) * n)  # checked before a single element is read
            self.pos += struct.calcsize(_SCALARS[etype]) * n
            return None
        if etype != GGUFValueType.STRING:
            raise _Bad(f"metadata key {_printable(key)} has an unknown element type {etype}")
        self.need(8 * n)  # every string is at least its 8-byte length: a forged count fails here, at once
        items = [self.string() for _ in range(n)]
        return items if keep is not None else None


def _printable(text: str, limit: int = 80) -> str:
    """A key or tensor name fit for a one-line message: a damaged header can hold any bytes there."""
    if text.isprintable() and len(text) <= limit:
        return text
    return "".join(ch if ch.isprintable() else "?" for ch in text[:limit]) + ("..." if len(text) > limit else "")


def _type_name(vtype: int) -> str:
    try:
        return GGUFValueType(vtype).name
    except ValueError:
        return f"type {vtype}"


def _read(path: Path) -> tuple[dict, list[_Tensor], int]:
    """(metadata, tensors, data start) or raises _Truncated / _Bad."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        c = _Cursor(mm)
        c.pos = 4
        version = c.unpack("<I")
        if version not in (2, 3):
            raise _Bad(f"unsupported GGUF version {version}")
        n_tensors, n_kv = c.unpack("<Q"), c.unpack("<Q")
        # The smallest key/value pair is 13 bytes, the smallest tensor entry 24: a forged count stops here.
        c.need(13 * n_kv)
        meta, types = {}, {}
        for _ in range(n_kv):
            key = c.string().decode("utf-8", "replace")
            if key in meta:
                raise _Bad(f"metadata key {_printable(key)} appears twice")
            vtype = c.unpack("<I")
            meta[key], types[key] = c.value(vtype, key), vtype
        c.need(24 * n_tensors)
        tensors, names = [], set()
        for _ in range(n_tensors):
            raw_name = c.string()
            name = raw_name.decode("utf-8", "replace")
            if len(raw_name) >= GGML_MAX_NAME:
                raise _Bad(f"tensor name {_printable(name)!r} is longer than llama.cpp's {GGML_MAX_NAME - 1} bytes")
            if name in names:
                raise _Bad(f"tensor {_printable(name)} appears twice")
            names.add(name)
            n_dims = c.unpack("<I")
            if n_dims > GGML_MAX_DIMS:
                raise _Bad(f"tensor {_printable(name)} has {n_dims} dimensions (at most {GGML_MAX_DIMS})")
            shape = tuple(c.unpack("<Q") for _ in range(n_dims))
            tensors.append(_Tensor(name, c.unpack("<I"), shape, c.unpack("<Q")))
        align = meta.get("general.alignment", 32)
        if "general.alignment" in meta and types["general.alignment"] != GGUFValueType.UINT32:
            raise _Bad(f"general.alignment is a {_type_name(types['general.alignment'])}, not a UINT32")
        if align <= 0 or align & (align - 1):
            raise _Bad(f"general.alignment {align} is not a power of two")
        start = (c.pos + align - 1) // align * align
    _check_values(meta, types)
    return meta, tensors, start


def _check_values(meta: dict, types: dict) -> None:
    """Types of the keys this module reads (a string where a number belongs would fail later, in C)."""
    if types.get("general.architecture", GGUFValueType.STRING) != GGUFValueType.STRING:
        raise _Bad(f"general.architecture is a {_type_name(types['general.architecture'])}, not a string")
    arch = _text(meta.get("general.architecture")) or ""
    for suffix in ("block_count", "embedding_length", "context_length"):
        key = f"{arch}.{suffix}"
        if key in types and types[key] not in _INTEGERS:
            raise _Bad(f"metadata key {_printable(key)} is a {_type_name(types[key])}, not an integer")


def _check_tensors(tensors: list[_Tensor], data_start: int, align: int, size: int) -> None:
    """What llama.cpp's gguf reader and model loader check of each tensor, in their order and terms."""
    expected = 0
    for t in tensors:
        try:
            block, type_size = GGML_QUANT_SIZES[GGMLQuantizationType(t.type)]
        except (ValueError, KeyError):
            raise _Bad(f"tensor {_printable(t.name)} has an unknown type {t.type}") from None
        count = 1
        for n in t.shape:
            if n > INT64_MAX or (n and count > INT64_MAX // n):
                raise _Bad(f"tensor {_printable(t.name)} has a shape {list(t.shape)} whose element count overflows")
            count *= n
        if t.shape and t.shape[0] % block:
            raise _Bad(f"tensor {_printable(t.name)} has {t.shape[0]} elements per row, not a multiple of its type's "
                       f"block of {block}")
        if t.offset != expected:
            raise _Bad(f"tensor {_printable(t.name)} has offset {t.offset}, expected {expected}")
        nbytes = count // block * type_size
        if data_start + t.offset + nbytes > size:
            raise _Truncated(f"tensor {_printable(t.name)} needs bytes up to {data_start + t.offset + nbytes} "
                             f"but the file has {size}")
        expected += (nbytes + align - 1) // align * align


def _text(v) -> str | None:
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


def inspect(path: str | Path) -> GGUFInfo:
    """Header, metadata and tensor extents checked; raises ModelFileError with one clear sentence."""
    path = Path(path)
    try:
        if not path.exists():
            raise ModelFileError(f"model file not found: {path}")
        if not path.is_file():
            raise ModelFileError(f"model path is not a file: {path}")
        size = path.stat().st_size
        if size == 0:
            raise ModelFileError(f"model file is empty: {path}")
        with open(path, "rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise ModelFileError(f"model file {path} cannot be read ({e.strerror or e})") from None
    if magic != GGUF_MAGIC:
        raise ModelFileError(f"{path.name} is not a GGUF model file (it does not start with the GGUF magic)")
    try:
        meta, tensors, data_start = _read(path)
        if not tensors:
            raise ModelFileError(f"{path.name} holds no tensors")
        _check_tensors(tensors, data_start, meta.get("general.alignment", 32), size)
    except _Truncated as e:
        detail = f": {e}" if str(e) else ": its header runs past the end of the file"
        raise ModelFileError(f"{path.name} is damaged or truncated{detail}") from None
    except _Bad as e:
        raise ModelFileError(f"{path.name} is damaged: {e}") from None
    except (OSError, ValueError, MemoryError) as e:  # mmap of an unreadable file, for one
        raise ModelFileError(f"{path.name} cannot be read as a GGUF file ({e})") from None
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
            raise ModelFileError(f"{path.name} lacks {_printable(f'{arch}.{key}')}")
        if v <= 0:
            raise ModelFileError(f"{path.name} has {_printable(f'{arch}.{key}')} = {v}; it must be positive")
        return int(v)

    def optional(key: str, default: int) -> int:
        v = meta.get(f"{arch}.{key}")
        return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default

    n_embd = num("embedding_length")
    n_head = optional("attention.head_count", 1)
    name, template = meta.get("general.name"), meta.get("tokenizer.chat_template")
    return GGUFInfo(
        path=path,
        architecture=arch,
        name=_text(name) if isinstance(name, bytes) and name else path.stem,
        n_layer=num("block_count"),
        n_embd=n_embd,
        n_vocab=len(vocab),
        n_ctx_train=num("context_length"),
        chat_template=_text(template) if isinstance(template, bytes) else None,
        n_head=n_head,
        n_head_kv=optional("attention.head_count_kv", n_head),
        key_length=optional("attention.key_length", max(1, n_embd // n_head)),
        value_length=optional("attention.value_length", max(1, n_embd // n_head)),
    )
