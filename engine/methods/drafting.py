"""Methods built on the block-diffusion drafters: `dflash`, `naive`, `ddtree` and `d2sd` (DESIGN §2).

Each drafter keeps a context cache of target features for the committed tokens; `DrafterSync` keeps
those caches in step with the target (truncate to what the target kept of an earlier turn, append the
features of the prompt and of every accepted path). Drafts are argmax (or fixed-seed resamples that do
not depend on the user's sampler), so the acceptance walk stays lossless at any temperature.
"""
from __future__ import annotations

import heapq
import time

import numpy as np

from engine.events import DRAFTER1, RESAMPLE, VP
from engine.tree import Trie


class DrafterSync:
    def __init__(self, *drafters):
        self.drafters = list({id(d): d for d in drafters}.values())

    def context_len(self) -> int:
        return min(d.context_len for d in self.drafters)

    def start(self, reused: int, features: np.ndarray | None) -> None:
        for d in self.drafters:
            d.truncate_context(reused)
            if features is not None:
                d.append_context(features)

    def observe(self, features: np.ndarray | None) -> None:
        if features is None:
            raise RuntimeError("the target captured no features: load it with the drafter's target_layer_ids")
        for d in self.drafters:
            d.append_context(features)


def _survival(conf: np.ndarray) -> np.ndarray:
    """prod_{k<=i} c_k for i = 0..len(conf)-1: the chance that the first i draft tokens are accepted."""
    return np.concatenate([[1.0], np.cumprod(np.asarray(conf, dtype=np.float64))[:-1]])


def rejection_boundaries(conf: np.ndarray) -> np.ndarray:
    """r(i) = prod_{k<=i} c_k * (1 - c_{i+1}), i = 0..len(conf)-1: the chance that exactly i draft
    tokens are accepted, from drafter 1's confidences c_1..c_{gamma-1} (conf[0] is c_1)."""
    return _survival(conf) * (1.0 - np.asarray(conf, dtype=np.float64))


def top_boundaries(conf: np.ndarray, k: int) -> list[int]:
    """The K most likely rejection points i (most likely first)."""
    r = rejection_boundaries(conf)
    return [int(i) for i in np.argsort(-r, kind="stable")[:k]]


def runner_up_points(conf: np.ndarray, runners_up: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The K likeliest (i, j), most likely first: drafter 1's first i draft tokens are accepted and its
    rank-j token (j >= 1) is the target's at draft position i+1, with chance prod_{k<=i} c_k * p_j(i+1).
    `runners_up`: [gamma-1, top-1] probabilities of ranks 1.. at positions 1..gamma-1."""
    value = _survival(conf)[:, None] * np.asarray(runners_up, dtype=np.float64)
    best = np.argsort(-value, axis=None, kind="stable")[:k]
    return [(int(b) // value.shape[1], int(b) % value.shape[1] + 1) for b in best]


class _DrafterMethod:
    """Shared plumbing: drafter context sync and drafter-1's first pass."""
    name = ""

    def __init__(self, drafter, gamma: int | None = None, budget: int | None = None):
        self.drafter = drafter
        self.gamma = gamma or drafter.config.block_size
        if not 2 <= self.gamma <= drafter.config.block_size:
            raise ValueError(f"gamma must be in 2..{drafter.config.block_size} (the drafter's block size)")
        self.budget = budget
        self.sync = DrafterSync(drafter)

    def context_len(self) -> int:
        return self.sync.context_len()

    def start(self, prompt, reused, features) -> None:
        self.sync.start(reused, features)

    def observe(self, accepted, features) -> None:
        self.sync.observe(features)

    def block(self, anchor: int) -> np.ndarray:
        row = np.full((1, self.gamma), self.drafter.config.mask_token_id, dtype=np.int64)
        row[0, 0] = anchor
        return row


class DFlash(_DrafterMethod):
    """Drafter 1's block as one chain."""
    name = "dflash"

    def propose(self, history, anchor) -> Trie:
        tokens, conf = self.drafter.draft(self.block(anchor))
        trie = Trie.rooted(anchor, self.budget)
        trie.add_row(tokens[0, 1:], DRAFTER1, conf[0, 1:])
        return trie


class Naive(_DrafterMethod):
    """Drafter 1's block plus K rows resampled position by position from its own marginals."""
    name = "naive"

    def __init__(self, drafter, gamma=None, k: int = 4, budget=None, seed: int = 0, top: int = 8):
        super().__init__(drafter, gamma, budget)
        self.k, self.top = k, top
        self.rng = np.random.default_rng(seed)

    def propose(self, history, anchor) -> Trie:
        ids, probs = self.drafter.draft_topk(self.block(anchor), self.top)
        ids, probs = ids[0, 1:], probs[0, 1:].astype(np.float64)
        trie = Trie.rooted(anchor, self.budget)
        trie.add_row(ids[:, 0], DRAFTER1, probs[:, 0])
        p = probs / probs.sum(axis=1, keepdims=True)
        for _ in range(self.k):
            pick = [int(self.rng.choice(self.top, p=row)) for row in p]
            trie.add_row(ids[np.arange(len(pick)), pick], RESAMPLE, probs[np.arange(len(pick)), pick])
        return trie


class DDTree(_DrafterMethod):
    """Best-first tree of the most probable prefixes, from drafter 1's per-position top-k marginals."""
    name = "ddtree"

    def __init__(self, drafter, gamma=None, budget: int = 32, top: int = 4):
        super().__init__(drafter, gamma, budget)
        self.top = top

    def propose(self, history, anchor) -> Trie:
        ids, probs = self.drafter.draft_topk(self.block(anchor), self.top)
        ids, probs = ids[0, 1:], probs[0, 1:]
        trie = Trie.rooted(anchor, self.budget)
        # heap of (-path probability, tiebreak, parent node, depth index, rank at that depth)
        heap = [(-float(probs[0, j]), j, 0, 0, j) for j in range(self.top)]
        heapq.heapify(heap)
        counter = self.top
        while heap and not trie.full:
            neg_p, _, parent, d, j = heapq.heappop(heap)
            node = trie.add_node(parent, int(ids[d, j]), DRAFTER1, float(probs[d, j]))
            if node is None or d + 1 >= len(ids):
                continue
            for jj in range(self.top):
                counter += 1
                heapq.heappush(heap, (neg_p * float(probs[d + 1, jj]), counter, node, d + 1, jj))
        return trie


class D2SD(_DrafterMethod):
    """Dual drafters: drafter 1's block, then the VP drafter re-anchored at K points of it in one batched
    pass; all rows merged into one trie (DESIGN §2).

    Default (the paper's): the K likeliest rejection points i, each VP row seeing drafter 1's first i
    tokens and redrawing position i+1 on. A VP drafter that agrees with drafter 1 there adds nothing
    where the chain is most likely to break, so `alt=True` re-anchors on a runner-up instead: the K
    likeliest (i, j) where drafter 1's first i tokens hold and its rank-j token at i+1 is the target's;
    each row sees that token too, and the VP drafter continues after it."""
    name = "d2sd"
    vp_s = 0.0  # seconds the last propose spent on VP rows: generate() reports it apart from drafter 1

    def __init__(self, drafter, vp_drafter=None, gamma=None, k: int = 4, budget=None, alt: bool = False,
                 top: int = 4):
        super().__init__(drafter, gamma, budget)
        self.vp = vp_drafter or drafter
        if self.vp.config.mask_token_id != drafter.config.mask_token_id:
            raise ValueError("drafter 1 and the VP drafter use different mask tokens")
        self.k, self.alt, self.top = k, bool(alt), top
        self.sync = DrafterSync(drafter, self.vp)

    def propose(self, history, anchor) -> Trie:
        block = self.block(anchor)
        if self.alt:
            ids, probs = self.drafter.draft_topk(block, self.top)
            ids, probs = ids[0], probs[0]
            d, c = ids[:, 0], probs[:, 0]
            points = runner_up_points(c[1:], probs[1:, 1:], self.k)
        else:
            d, c = (x[0] for x in self.drafter.draft(block))
            points = [(i, 0) for i in top_boundaries(c[1:], self.k)]
        trie = Trie.rooted(anchor, self.budget)
        trie.add_row(d[1:], DRAFTER1, c[1:])
        t_vp = time.perf_counter()
        if points:
            rows = np.repeat(block, len(points), axis=0)
            for r, (i, j) in enumerate(points):
                rows[r, 1:i + 1] = d[1:i + 1]
                if j:
                    rows[r, i + 1] = ids[i + 1, j]
            vp_tokens, vp_conf = self.vp.draft(rows)
            for r, (i, j) in enumerate(points):
                shared = trie.add_row(d[1:i + 1], DRAFTER1, c[1:i + 1])
                node = shared[-1] if shared else 0
                if len(shared) < i:
                    continue  # the node budget ran out
                if j:
                    node = trie.add_node(node, int(ids[i + 1, j]), DRAFTER1, float(probs[i + 1, j]))
                    if node is None:
                        continue
                tail = i + 1 + (j > 0)
                trie.add_row(vp_tokens[r, tail:], VP, vp_conf[r, tail:], start=node)
        self.vp_s = time.perf_counter() - t_vp
        return trie
