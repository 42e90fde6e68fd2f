"""How a target is loaded: importable without llama.cpp, so the app can hold settings before it loads a
model (importing llama.cpp initialises its backend)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetSettings:
    n_ctx: int = 4096
    n_threads: int | None = None       # None: all cores
    n_gpu_layers: int = -1             # -1: every layer when this build can offload, else none
    n_seq_max: int = 64                # most branches one verify pass may hold (llama.cpp's limit checked at load)
    n_batch: int = 512
    capture_layers: tuple[int, ...] = ()  # target layers whose per-token outputs the drafters read
    # True: all sequences share the cells (trie branches need that). False: each sequence has its own
    # n_ctx / n_seq_max cells, so independent sequences decoded side by side (data generation) do not
    # pay attention over each other's tokens.
    kv_unified: bool = True

    def __post_init__(self):
        if self.n_ctx < 16:
            raise ValueError(f"context size must be at least 16 tokens, got {self.n_ctx}")
        if not 1 <= self.n_seq_max <= self.n_ctx:
            raise ValueError(f"n_seq_max must be in 1..{self.n_ctx} for a context of {self.n_ctx} tokens")
