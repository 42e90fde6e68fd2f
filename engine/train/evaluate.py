"""Held-out acceptance without the target: the data already holds the target's greedy answer, so a
greedy verify would accept a drafted row exactly up to its first token that differs from the answer.

`dflash`: drafter 1's block alone. `d2sd`: drafter 1's block plus VP rows re-anchored at the K most
likely rejection points i (only a row whose first i drafted tokens match can extend the accepted
path; its length is i plus the VP drafter's matching run). τ counts the target's bonus token too.
"""
from __future__ import annotations

import numpy as np
import torch

from engine.drafters.model import DFlashModel
from engine.methods.d2sd_cycle import top_boundaries
from engine.train.data import Dataset
from engine.train.objectives import IGNORE, build_rows
from engine.train.trainer import Frozen, hidden_states


def evaluation_anchors(n_tokens: int, n_prompt: int, count: int = 16) -> np.ndarray:
    """The answer positions a sample is measured at: `count` evenly spaced, each with a token after it."""
    return np.unique(np.linspace(n_prompt, n_tokens - 2, count).astype(np.int64))


def _drafts(model: DFlashModel, frozen: Frozen, feats, rows) -> tuple[np.ndarray, np.ndarray]:
    """Drafted target ids and confidences [A, gamma] of rows."""
    logits = hidden_states(model, frozen, feats, rows) @ frozen.output.T
    probs = torch.softmax(logits, dim=-1)
    conf, best = probs.max(dim=-1)
    return torch.as_tensor(frozen.vocab.ids)[best].numpy(), conf.numpy()


def _run_length(drafts: np.ndarray, labels: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Per row, how many positions from `start` on match the labels before the first miss."""
    gamma = drafts.shape[1]
    out = np.zeros(len(drafts), dtype=np.int64)
    for r in range(len(drafts)):
        k = start[r]
        while k < gamma and labels[r, k] != IGNORE and drafts[r, k] == labels[r, k]:
            k += 1
        out[r] = k - start[r]
    return out


@torch.no_grad()
def acceptance(block: DFlashModel, vp: DFlashModel, frozen: Frozen, ds: Dataset, samples: list[int],
               *, k: int = 4, anchors_per_sample: int = 16, lam: float = 7.0) -> dict:
    gamma, mask = block.config.block_size, block.config.mask_token_id
    tau_chain, tau_tree, by_position = [], [], np.zeros(gamma - 1)
    for i in samples:
        tokens, n_prompt, feats = ds.sample(i)
        if len(tokens) - 1 <= n_prompt:
            continue
        anchors = evaluation_anchors(len(tokens), n_prompt, anchors_per_sample)
        rows = build_rows(tokens, anchors, gamma, mask, lam)
        drafts, conf = _drafts(block, frozen, feats, rows)
        accepted = _run_length(drafts, rows.labels, np.ones(len(anchors), dtype=np.int64))
        for a in accepted:
            by_position[:a] += 1
        best = accepted.copy()
        pairs = [(r, b) for r in range(len(anchors)) for b in top_boundaries(conf[r, 1:], k) if b <= accepted[r]]
        if pairs:
            row_of, visible = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
            vp_rows = build_rows(tokens, anchors[row_of], gamma, mask, lam, visible)
            vp_drafts, _ = _drafts(vp, frozen, feats, vp_rows)
            extended = visible + _run_length(vp_drafts, vp_rows.labels, visible + 1)
            np.maximum.at(best, row_of, extended)
        tau_chain.extend(1 + accepted)
        tau_tree.extend(1 + best)
    n = max(len(tau_chain), 1)
    return {"rows": len(tau_chain), "tau_dflash": float(np.mean(tau_chain)) if tau_chain else 0.0,
            "tau_d2sd": float(np.mean(tau_tree)) if tau_tree else 0.0,
            "acceptance_by_position": [round(float(x) / n, 4) for x in by_position]}
