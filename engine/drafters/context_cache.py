"""Per-layer keys/values of the committed context, grown in place.

Each cycle appends only a few positions, so buffers grow by doubling rather than being
re-concatenated (which would copy the whole cache every cycle).
"""
from __future__ import annotations

import torch

from engine.drafters.model import LayerKV


class ContextCache:
    def __init__(self, n_layers: int, kv_heads: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype, capacity: int = 256) -> None:
        shape = (kv_heads, capacity, head_dim)
        self._keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self._values = [torch.empty(shape, device=device, dtype=dtype) for _ in range(n_layers)]
        self.length = 0

    @property
    def capacity(self) -> int:
        return self._keys[0].shape[1]

    def append(self, kv: list[LayerKV]) -> None:
        n_new = kv[0][0].shape[1]
        end = self.length + n_new
        if end > self.capacity:
            self._grow(max(end, 2 * self.capacity))
        for buf_k, buf_v, (k, v) in zip(self._keys, self._values, kv):
            buf_k[:, self.length:end] = k
            buf_v[:, self.length:end] = v
        self.length = end

    def truncate(self, n: int) -> None:
        if not 0 <= n <= self.length:
            raise ValueError(f"cannot keep {n} context positions, only {self.length} are held")
        self.length = n

    def views(self) -> list[LayerKV]:
        return [(k[:, :self.length], v[:, :self.length]) for k, v in zip(self._keys, self._values)]

    def _grow(self, capacity: int) -> None:
        def grown(buf: torch.Tensor) -> torch.Tensor:
            new = buf.new_empty((buf.shape[0], capacity, buf.shape[2]))
            new[:, :self.length] = buf[:, :self.length]
            return new

        self._keys = [grown(k) for k in self._keys]
        self._values = [grown(v) for v in self._values]
