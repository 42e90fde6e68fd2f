"""Methods built on the block-diffusion drafters: `dflash`, `naive`, `ddtree` and `d2sd`
(docs/design.md, "The D2SD cycle").

Each drafter keeps a context cache of target features for the committed tokens; `DrafterSync` keeps
those caches in step with the target (truncate to what the target kept of an earlier turn, append the
features of the prompt and of every accepted path). Drafts are argmax (or fixed-seed resamples that do
not depend on the user's sampler), so the acceptance walk stays lossless at any temperature.
"""
from __future__ import annotations

import heapq

import numpy as np

from engine.events import DRAFTER1, RESAMPLE
from engine.methods import d2sd_cycle
from engine.methods.base import Proposal
from engine.methods.d2sd_cycle import block_row
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


# Nodes a tree method (ddtree, d2sd) verifies at most unless told: both add nodes likeliest first, and with
# the fourth pair neither gains past ~24 (docs/benchmarks.md, "Runner-up rows as d2sd's default").
TREE_BUDGET = 32
# d2sd's VP rows unless told: with runner-up rows and a 32-node budget, 8 rows beat the paper's 4 by ~0.05 τ on
# HumanEval (replay and a real run) at the same nodes and speed (docs/benchmarks.md, "Eight d2sd rows").
D2SD_K = 8


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
        return block_row(anchor, self.gamma, self.drafter.config.mask_token_id)


class DFlash(_DrafterMethod):
    """Drafter 1's block as one chain."""
    name = "dflash"
    chain = True

    def propose(self, history, anchor) -> Proposal:
        tokens, conf = self.drafter.draft(self.block(anchor))
        trie = Trie.rooted(anchor, self.budget)
        trie.add_row(tokens[0, 1:], DRAFTER1, conf[0, 1:])
        return Proposal(trie)


class Naive(_DrafterMethod):
    """Drafter 1's block plus K rows resampled position by position from its own marginals."""
    name = "naive"
    chain = False

    def __init__(self, drafter, gamma=None, k: int = 4, budget=None, seed: int = 0, top: int = 8):
        super().__init__(drafter, gamma, budget)
        self.k, self.top = k, top
        self.rng = np.random.default_rng(seed)

    def propose(self, history, anchor) -> Proposal:
        ids, probs = self.drafter.draft_topk(self.block(anchor), self.top)
        ids, probs = ids[0, 1:], probs[0, 1:].astype(np.float64)
        trie = Trie.rooted(anchor, self.budget)
        trie.add_row(ids[:, 0], DRAFTER1, probs[:, 0])
        p = probs / probs.sum(axis=1, keepdims=True)
        for _ in range(self.k):
            pick = [int(self.rng.choice(self.top, p=row)) for row in p]
            trie.add_row(ids[np.arange(len(pick)), pick], RESAMPLE, probs[np.arange(len(pick)), pick])
        return Proposal(trie)


class DDTree(_DrafterMethod):
    """Best-first tree of the most probable prefixes, from drafter 1's per-position top-k marginals."""
    name = "ddtree"
    chain = False

    def __init__(self, drafter, gamma=None, budget: int = TREE_BUDGET, top: int = 4):
        super().__init__(drafter, gamma, budget)
        self.top = top

    def propose(self, history, anchor) -> Proposal:
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
        return Proposal(trie)


class D2SD(_DrafterMethod):
    """Dual drafters: drafter 1's block, then the VP drafter re-anchored at K points of it in one batched
    pass, all rows merged into one trie (the cycle in engine.methods.d2sd_cycle). The points are drafter
    1's likeliest runner-up tokens, or with `alt=False` the paper's likeliest rejection points. Runner-ups
    are the default: with the third and fourth pairs they gave the higher τ on every HumanEval prompt,
    which more paper rows do not buy (docs/benchmarks.md, "Runner-up rows as d2sd's default")."""
    name = "d2sd"
    chain = False

    def __init__(self, drafter, vp_drafter=None, gamma=None, k: int = D2SD_K, budget: int = TREE_BUDGET,
                 alt: bool = True, top: int = 4):
        super().__init__(drafter, gamma, budget)
        self.vp = vp_drafter or drafter
        if self.vp.config.mask_token_id != drafter.config.mask_token_id:
            raise ValueError("drafter 1 and the VP drafter use different mask tokens")
        self.k, self.alt, self.top = k, bool(alt), top
        self.sync = DrafterSync(drafter, self.vp)

    def propose(self, history, anchor) -> Proposal:
        return d2sd_cycle.propose(self.drafter, self.vp, anchor, self.gamma, self.k, self.alt, self.top,
                                  self.budget)
