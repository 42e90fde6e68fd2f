"""The D2SD proposal cycle, top to bottom (docs/design.md, "The D2SD cycle"): drafter 1 drafts a block,
the re-anchor points are chosen from its confidences, the VP drafter redraws from every point in one
batched pass, and all rows merge into one trie. `d2sd` runs the whole cycle (`propose`); `auto` runs
the same steps on drafter 1's chain cut to the length it chose.

One index convention throughout: a block's drafts are the tokens after its anchor, draft index 0 being
block position 1. A re-anchor point (i, j) keeps drafter 1's first i drafts; with j = 0 the VP drafter
redraws from draft index i on (the paper's rows), with j >= 1 drafter 1's rank-j token takes index i
(a runner-up) and the VP drafter continues after it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from engine.events import DRAFTER1, VP
from engine.methods.base import Proposal
from engine.tree import Trie


@dataclass(frozen=True)
class Block:
    """Drafter 1's drafts: its argmax tokens and their probabilities; with `ranked`, its top tokens at
    every draft index (rank 0 first) and their probabilities, which runner-up points need."""
    tokens: np.ndarray                  # [n]
    conf: np.ndarray                    # [n]
    ranked: np.ndarray | None = None    # [n, top]
    ranked_p: np.ndarray | None = None  # [n, top]


def block_row(anchor: int, width: int, mask: int) -> np.ndarray:
    """A drafter's input row: the anchor, then `width - 1` mask tokens to fill."""
    row = np.full((1, width), mask, dtype=np.int64)
    row[0, 0] = anchor
    return row


def draft_block(drafter, row: np.ndarray, top: int = 0) -> Block:
    """Drafter 1's pass over `row`, with its `top` tokens per position when top > 0."""
    if top:
        ids, probs = drafter.draft_topk(row, top)
        return Block(ids[0, 1:, 0], probs[0, 1:, 0], ids[0, 1:], probs[0, 1:])
    tokens, conf = drafter.draft(row)
    return Block(tokens[0, 1:], conf[0, 1:])


# --- choosing the re-anchor points -------------------------------------------------------------------

def _survival(conf: np.ndarray) -> np.ndarray:
    """prod_{k<i} conf[k] for i = 0..n-1: the chance that the first i drafts are accepted."""
    return np.concatenate([[1.0], np.cumprod(np.asarray(conf, dtype=np.float64))[:-1]])


def rejection_boundaries(conf: np.ndarray) -> np.ndarray:
    """r(i) = prod_{k<i} conf[k] * (1 - conf[i]), i = 0..n-1: the chance that exactly the first i
    drafts are accepted, the target refusing draft i."""
    return _survival(conf) * (1.0 - np.asarray(conf, dtype=np.float64))


def top_boundaries(conf: np.ndarray, k: int) -> list[int]:
    """The K most likely rejection points i (most likely first)."""
    return [int(i) for i in np.argsort(-rejection_boundaries(conf), kind="stable")[:k]]


def runner_up_points(conf: np.ndarray, runners_up: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The K likeliest (i, j), most likely first: the first i drafts are accepted and drafter 1's rank-j
    token (j >= 1) is the target's at draft index i, with chance prod_{k<i} conf[k] * runners_up[i, j-1].
    `runners_up`: [n, top-1] probabilities of ranks 1.. at every draft index."""
    value = _survival(conf)[:, None] * np.asarray(runners_up, dtype=np.float64)
    best = np.argsort(-value, axis=None, kind="stable")[:k]
    return [(int(b) // value.shape[1], int(b) % value.shape[1] + 1) for b in best]


def reanchor_points(block: Block, k: int, runner_ups: bool = False) -> list[tuple[int, int]]:
    """Where the VP rows start: the paper's K likeliest rejection points (j = 0), or K runner-ups.
    A VP drafter that agrees with drafter 1 at a rejection point adds nothing where the chain is most
    likely to break; a runner-up row offers a token drafter 1 itself thought plausible there."""
    if runner_ups:
        return runner_up_points(block.conf, block.ranked_p[:, 1:], k)
    return [(i, 0) for i in top_boundaries(block.conf, k)]


# --- the VP rows and the merge -----------------------------------------------------------------------

def vp_rows(row: np.ndarray, block: Block, points: list[tuple[int, int]]) -> np.ndarray:
    """The VP drafter's input, one row per point: `row`'s anchor, drafter 1's first i drafts, its
    runner-up at index i if j >= 1, masks after."""
    rows = np.repeat(row, len(points), axis=0)
    drafts = rows[:, 1:]
    for r, (i, j) in enumerate(points):
        drafts[r, :i] = block.tokens[:i]
        if j:
            drafts[r, i] = block.ranked[i, j]
    return rows


def vp_drafts(vp, row: np.ndarray, block: Block, points: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """The VP drafter's drafts and confidences for every point's row, in one batched pass."""
    if not points:
        return np.empty((0, row.shape[1] - 1), dtype=np.int64), np.empty((0, row.shape[1] - 1))
    tokens, conf = vp.draft(vp_rows(row, block, points))
    return tokens[:, 1:], conf[:, 1:]


def merge(trie: Trie, block: Block, points: list[tuple[int, int]], vp_tokens: np.ndarray,
          vp_conf: np.ndarray) -> Trie:
    """Drafter 1's chain, then each point's row below the prefix it saw (its runner-up node, if any, then
    the VP drafter's tokens), rows sharing a prefix sharing its nodes. Nodes go in likeliest first, a
    node's chance of being reached being the product of the confidences on its path, so a node budget
    smaller than the rows cuts the deep VP tails the target almost never reaches rather than whole rows
    (with the fourth pair, a 16-node d2sd tree reaches the τ of the 74 nodes of all four rows)."""
    offered: dict[tuple[int, ...], list] = {}   # path -> [chance, source, confidence]; the first source kept

    def offer(path: tuple[int, ...], chance: float, tokens, confidences, source: str) -> None:
        for token, c in zip(tokens, confidences):
            path, chance = path + (int(token),), chance * float(c)
            if path not in offered:
                offered[path] = [chance, source, float(c)]
            offered[path][0] = max(offered[path][0], chance)

    offer((), 1.0, block.tokens, block.conf, DRAFTER1)
    survival = _survival(block.conf)
    for r, (i, j) in enumerate(points):
        path, chance = tuple(int(t) for t in block.tokens[:i]), float(survival[i])
        if j:
            offer(path, chance, block.ranked[i, j:j + 1], block.ranked_p[i, j:j + 1], DRAFTER1)
            path, chance = path + (int(block.ranked[i, j]),), chance * float(block.ranked_p[i, j])
        tail = i + (j > 0)
        offer(path, chance, vp_tokens[r, tail:], vp_conf[r, tail:], VP)
    # A path is never likelier than its prefix, so likeliest first (shallower on a tie) meets every parent
    # before its children.
    nodes = {(): 0}
    for path, (_, source, conf) in sorted(offered.items(), key=lambda kv: (-kv[1][0], len(kv[0]))):
        node = trie.add_node(nodes[path[:-1]], path[-1], source, conf)
        if node is None:
            break
        nodes[path] = node
    return trie


def propose(drafter, vp, anchor: int, gamma: int, k: int, runner_ups: bool = False, top: int = 4,
            budget: int | None = None) -> Proposal:
    """The whole cycle for a block of `gamma` positions: the merged trie rooted at `anchor`, and the
    seconds spent on the VP rows (their pass and their merge)."""
    row = block_row(anchor, gamma, drafter.config.mask_token_id)
    block = draft_block(drafter, row, top if runner_ups else 0)
    points = reanchor_points(block, k, runner_ups)
    t = time.perf_counter()
    trie = merge(Trie.rooted(anchor, budget), block, points, *vp_drafts(vp, row, block, points))
    return Proposal(trie, time.perf_counter() - t)
