"""Greedy equality under llama.cpp's batch non-invariance: exact up to the first near-tie.

Shapes of the verify batch change the last bits of the logits, so where the target's top-2 logits are
closer than NEAR_TIE a batched pass may legitimately pick the other token; from there the texts are
different contexts and no longer comparable. Anywhere else a mismatch is a bug.
"""
from __future__ import annotations

import numpy as np

from engine.tree import Trie

# Largest |logit difference| measured between batch shapes on the embedded Qwen target was below this
# (see tests/engine/test_target_qwen.py::test_batch_shape_noise for the measurement it prints).
NEAR_TIE = 1.0


def top2_margin(logits: np.ndarray) -> float:
    a, b = np.partition(logits, -2)[-2:]
    return float(abs(b - a))


def greedy_reference(target, prompt: list[int], n: int) -> tuple[list[int], list[float]]:
    """Plain one-token-per-pass greedy decoding with the top-2 margin at each position."""
    anchor, _ = target.prepare(prompt)
    tokens, margins = [], []
    for _ in range(n):
        trie = Trie.rooted(anchor)
        logits, flat = target.decode_tree(trie)
        anchor = int(np.argmax(logits[0]))
        margins.append(top2_margin(logits[0]))
        tokens.append(anchor)
        target.commit(trie, flat, [0])
    return tokens, margins


def first_divergence(ref: list[int], margins: list[float], other: list[int]) -> int | None:
    """Index of the first differing token, None if equal; fails unless that position is a near-tie."""
    n = min(len(ref), len(other))
    for i in range(n):
        if ref[i] != other[i]:
            assert margins[i] < NEAR_TIE, (
                f"token {i} differs ({ref[i]} vs {other[i]}) at a top-2 margin of {margins[i]:.3f} "
                f">= {NEAR_TIE}: not explained by batch-shape noise")
            return i
    assert len(ref) == len(other), f"lengths differ: {len(ref)} vs {len(other)} with equal prefixes"
    return None
