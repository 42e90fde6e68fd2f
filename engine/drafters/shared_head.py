"""The target's token embedding and output head, shared (frozen) by both drafters.

Dequantised once per target file and cached as safetensors under the user cache folder, named by
the GGUF's sha256. Device copies are made on demand and shared by every drafter on that device.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file

from engine.drafters.cache import atomic_write, file_sha256
from engine.drafters.gguf_head import HeadArrays, TargetInfo, read_gguf_head
from engine.paths import cache_dir

HeadWeights = tuple[torch.Tensor, torch.Tensor]  # embedding, output head: [n_vocab, n_embd] each


class SharedHead:
    """Embedding and output head of one target, plus the target metadata drafters must match.

    Holds either a cache file (read again for each new device/dtype, so no host copy lingers
    beside the device copy) or in-memory tensors (tests, training).
    """

    def __init__(self, info: TargetInfo, *, file: Path | None = None,
                 tensors: dict[str, torch.Tensor] | None = None) -> None:
        self.info = info
        self._file = file
        self._tensors = tensors
        self._on_device: dict[tuple[torch.device, torch.dtype], HeadWeights] = {}

    @classmethod
    def from_gguf(cls, gguf_path: Path) -> "SharedHead":
        """The head of a target GGUF, dequantised on first use and cached by the file's sha256."""
        cached = cache_dir() / "shared_head" / f"{file_sha256(Path(gguf_path))}.safetensors"
        if not cached.is_file():
            head = read_gguf_head(Path(gguf_path))
            with atomic_write(cached) as tmp:
                _save(head, tmp)
        with safe_open(str(cached), framework="pt") as f:
            info = TargetInfo(**json.loads(f.metadata()["target"]))
        return cls(info, file=cached)

    @classmethod
    def from_tensors(cls, embedding: torch.Tensor | np.ndarray, output: torch.Tensor | np.ndarray | None = None,
                     *, n_layer: int, architecture: str = "test") -> "SharedHead":
        emb = torch.as_tensor(embedding)
        tensors = {"embedding": emb}
        if output is not None:
            tensors["output"] = torch.as_tensor(output)
        info = TargetInfo(architecture, n_embd=emb.shape[1], n_layer=n_layer, n_vocab=emb.shape[0])
        return cls(info, tensors=tensors)

    @property
    def tied(self) -> bool:
        return "output" not in self._host_names()

    def weights(self, device: torch.device, dtype: torch.dtype) -> HeadWeights:
        """(embedding, output head) on device in dtype; the same tensor twice when tied."""
        key = (torch.device(device), dtype)
        if key not in self._on_device:
            host = self._host_tensors()
            emb = host["embedding"].to(device=device, dtype=dtype)
            out = host["output"].to(device=device, dtype=dtype) if "output" in host else emb
            self._on_device[key] = (emb, out)
        return self._on_device[key]

    def _host_names(self) -> set[str]:
        if self._tensors is not None:
            return set(self._tensors)
        with safe_open(str(self._file), framework="pt") as f:
            return set(f.keys())

    def _host_tensors(self) -> dict[str, torch.Tensor]:
        if self._tensors is not None:
            return self._tensors
        with safe_open(str(self._file), framework="pt") as f:
            return {name: f.get_tensor(name) for name in f.keys()}


def _save(head: HeadArrays, path: Path) -> None:
    arrays = {"embedding": head.embedding}
    if head.output is not None:
        arrays["output"] = head.output
    save_file(arrays, str(path), metadata={"target": json.dumps(asdict(head.info))})
