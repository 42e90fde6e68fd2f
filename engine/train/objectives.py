"""Training rows for the two drafters, cut from one sample (prompt + the target's own answer).

A row is a block of `gamma` tokens anchored at answer position p: the anchor x_p is real, the
context is the target features of positions 0..p-1, and the labels are x_{p+1} .. x_{p+gamma-1}.
Drafter 1 sees only the anchor. The VP drafter also sees the next l real tokens, with l drawn from
Pr(l = j) ∝ beta^j over 0..gamma-2 (l = 0 included: the cycle may re-anchor right after the anchor).
Loss weights fall with distance from the first hidden position: exp(-(k - 1) / lam) for the k-th
hidden position, so the near positions that decide acceptance count most. `sample_positions` turns
those weights into a random subset of positions to score, each kept with probability equal to its
weight: the same objective in expectation, with the output head run on ~10% of the scored positions
(γ=16, λ=1; ~40% at λ=7).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

IGNORE = -100


@dataclass(frozen=True)
class Rows:
    tokens: np.ndarray     # int64 [A, gamma]: anchor, visible tokens, then mask ids
    positions: np.ndarray  # int64 [A, gamma]
    labels: np.ndarray     # int64 [A, gamma]: target id to predict, IGNORE where nothing is
    weights: np.ndarray    # float32 [A, gamma]
    anchors: np.ndarray    # int64 [A]: the context each row sees is positions < anchor


def pick_anchors(n_tokens: int, n_prompt: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Up to `count` distinct answer positions that have at least one label after them."""
    candidates = np.arange(n_prompt, n_tokens - 1)
    if len(candidates) <= count:
        return candidates
    return np.sort(rng.choice(candidates, size=count, replace=False))


def visible_prefix(count: int, gamma: int, beta: float, rng: np.random.Generator) -> np.ndarray:
    """l per row from the truncated geometric prior over 0..gamma-2."""
    prior = beta ** np.arange(gamma - 1)
    return rng.choice(gamma - 1, size=count, p=prior / prior.sum())


def build_rows(tokens: np.ndarray, anchors: np.ndarray, gamma: int, mask_id: int, lam: float,
               visible: np.ndarray | None = None) -> Rows:
    """Rows for drafter 1 (`visible` None: anchor only) or the VP drafter (`visible[r]` real tokens
    after the anchor of row r)."""
    n = len(tokens)
    a = len(anchors)
    vis = np.zeros(a, dtype=np.int64) if visible is None else np.asarray(visible, dtype=np.int64)
    offsets = np.arange(gamma)
    positions = anchors[:, None] + offsets[None, :]
    inside = positions < n
    real = np.where(inside, tokens[np.minimum(positions, n - 1)], mask_id).astype(np.int64)
    shown = offsets[None, :] <= vis[:, None]
    rows = np.where(shown & inside, real, mask_id)
    hidden = ~shown & inside
    labels = np.where(hidden, real, IGNORE)
    distance = offsets[None, :] - vis[:, None] - 1   # 0 at the first hidden position
    weights = np.where(hidden, np.exp(-np.maximum(distance, 0) / lam), 0.0).astype(np.float32)
    return Rows(rows, positions, labels, weights, anchors.astype(np.int64))


def sample_positions(rows: Rows, rng: np.random.Generator) -> Rows:
    """Rows whose weights are 1 at a random subset of the scored positions, each position kept with
    probability equal to its weight (weights lie in [0, 1]), and 0 elsewhere."""
    kept = rng.random(rows.weights.shape) < rows.weights
    return replace(rows, weights=kept.astype(np.float32))
