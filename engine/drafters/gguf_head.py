"""Reading the target's token embedding, output head and shape metadata out of its GGUF file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGUFReader
from gguf.gguf_reader import ReaderTensor
from gguf.quants import dequantize

from engine.drafters.errors import DrafterMismatch

EMBEDDING = "token_embd.weight"
OUTPUT = "output.weight"
_ROWS_PER_CHUNK = 4096  # bounds the float32 scratch of dequantisation to a few tens of MB


@dataclass(frozen=True)
class TargetInfo:
    """What a drafter must agree with: the target's width, depth and vocabulary size."""
    architecture: str
    n_embd: int
    n_layer: int
    n_vocab: int


@dataclass(frozen=True)
class HeadArrays:
    info: TargetInfo
    embedding: np.ndarray  # float16 [n_vocab, n_embd]
    output: np.ndarray | None  # float16 [n_vocab, n_embd]; None when tied to the embedding


def read_gguf_head(path: Path) -> HeadArrays:
    reader = GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    if EMBEDDING not in tensors:
        raise DrafterMismatch(f"The target GGUF {Path(path).name} has no {EMBEDDING} tensor.")
    arch = _field(reader, "general.architecture")
    n_embd, n_vocab = (int(d) for d in tensors[EMBEDDING].shape[:2])  # ggml order: [n_embd, n_vocab]
    declared = _field(reader, f"{arch}.embedding_length")
    if declared is not None and int(declared) != n_embd:
        raise DrafterMismatch(
            f"The target GGUF declares width {declared} but its embedding is {n_embd} wide.")
    n_layer = _field(reader, f"{arch}.block_count")
    if n_layer is None:
        raise DrafterMismatch(f"The target GGUF lacks {arch}.block_count, so its depth is unknown.")
    info = TargetInfo(str(arch), n_embd, int(n_layer), n_vocab)
    output = _dequantize_rows(tensors[OUTPUT]) if OUTPUT in tensors else None
    return HeadArrays(info, _dequantize_rows(tensors[EMBEDDING]), output)


def _field(reader: GGUFReader, key: str) -> object:
    field = reader.get_field(key)
    return None if field is None else field.contents()


def _dequantize_rows(tensor: ReaderTensor) -> np.ndarray:
    """[rows, n_embd] float16, dequantised a chunk of rows at a time.

    float16 keeps the cache half the size of float32 at an error (2^-11 relative) far below the
    quantisation error the GGUF already carries.
    """
    data = tensor.data
    rows = data.shape[0]
    out = np.empty((rows, int(tensor.shape[0])), dtype=np.float16)
    for start in range(0, rows, _ROWS_PER_CHUNK):
        chunk = np.ascontiguousarray(data[start:start + _ROWS_PER_CHUNK])
        out[start:start + len(chunk)] = dequantize(chunk, tensor.tensor_type)
    return out
