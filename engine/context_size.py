"""The context size a model gets when none is chosen: the context it was trained for, capped by the
memory this machine has free.

The rule, in tokens:

    n_ctx = min(trained, (available - model file - RESERVE) / 2 / per_token), rounded down to a multiple
            of 256, and at least MIN_CONTEXT (or the trained context, when that is smaller)

- trained: the GGUF's `<arch>.context_length`.
- available: the memory free for new allocations (Linux: MemAvailable in /proc/meminfo; elsewhere half
  of the physical memory), read when the model is loaded. A system that says neither gets at most
  FALLBACK (4096) tokens.
- model file: its weights are read into memory as they are used. RESERVE (1.5 GiB) holds the drafters'
  shared head (~0.9 GB for the embedded model), llama.cpp's other buffers and the app.
- / 2: the context takes at most half of what is left, so the machine keeps room for everything else.
- per_token: what llama.cpp allocates per token of context: the KV cache (f16 keys and values, every
  layer: n_layer x n_head_kv x (key_length + value_length) x 2 bytes) plus the attention scores of one
  batch over that token (f32, n_batch x n_head x 4 bytes).

This is host memory: with layers offloaded to a GPU the cache may live there instead, and a user who
knows better sets the size (Settings → Context size, `--ctx`).
"""
from __future__ import annotations

import os
from pathlib import Path

from engine.gguf_check import GGUFInfo, inspect

RESERVE = 3 << 29          # 1.5 GiB
MIN_CONTEXT = 512
FALLBACK = 4096
STEP = 256
KV_BYTES, SCORE_BYTES = 2, 4   # f16 cache, f32 attention scores


def available_memory() -> int | None:
    """Bytes free for new allocations, or None when this system does not say."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, OSError, ValueError):
        return None


def bytes_per_token(info: GGUFInfo, n_batch: int = 512) -> int:
    """llama.cpp's allocation per token of context for this (inspected) model: see the module's rule."""
    kv = info.n_layer * info.n_head_kv * (info.key_length + info.value_length) * KV_BYTES
    return kv + n_batch * info.n_head * SCORE_BYTES


def default_context(path: str | Path, n_batch: int = 512, available: int | None = None) -> int:
    """The context size for `path` by the module's rule; `available`: free bytes (default: measured now).
    A damaged file is one clear ModelFileError, raised before anything else reads it."""
    info = inspect(path)
    free = available_memory() if available is None else available
    if free is None:
        return min(info.n_ctx_train, FALLBACK)
    room = (free - info.path.stat().st_size - RESERVE) // 2
    fits = room // bytes_per_token(info, n_batch) // STEP * STEP
    return min(info.n_ctx_train, max(fits, MIN_CONTEXT))
