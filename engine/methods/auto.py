"""`auto`: per step, the candidate tree with the most expected tokens per second, or plain decoding.

Expected tokens come from drafter confidences mapped to acceptance probabilities by a calibration
learnt online from what the target accepted (per confidence bin, starting from the identity map);
for prompt lookup, from how often its chains matched what followed, per depth and matched n-gram
length. Seconds come from the calibrated verify cost curve t(n), corrected by what auto's own steps
of each size took (`StepCost`), plus each drafter's measured cost. Candidates: plain (the root
alone), the lookup chain cut at any depth, drafter 1's chain cut at any depth, and that chain plus
VP rows at the likeliest rejection points (d2sd) when VP rows have recently paid for their pass.

Drafting is itself a cost paid before its value is known: when the best drafted tree would not
have beaten plain decoding even counting its own draft time, drafting pauses for a while (doubling
each time it keeps losing) and resumes to check again, so on hardware where nothing pays `auto`
runs as `ar` plus a rare probe. Lossless whatever it picks: every candidate goes through the same verify.
"""
from __future__ import annotations

import time

import numpy as np

from engine.calibrate import CostCurve
from engine.events import DRAFTER1, LOOKUP
from engine.methods.d2sd_cycle import Block, block_row, draft_block, merge, reanchor_points, vp_drafts
from engine.methods.base import Proposal
from engine.methods.drafting import DrafterSync
from engine.methods.lookup import PromptLookup
from engine.tree import Trie


class Calibration:
    """P(accepted | confidence) per confidence bin, with `prior` pseudo-observations of the identity map."""

    def __init__(self, bins: int = 10, prior: float = 4.0):
        self.edges = np.linspace(0.0, 1.0, bins + 1)
        mids = (self.edges[:-1] + self.edges[1:]) / 2
        self.hits, self.seen = prior * mids, np.full(bins, prior)

    def _bin(self, conf) -> np.ndarray:
        return np.clip(np.searchsorted(self.edges, conf, side="right") - 1, 0, len(self.seen) - 1)

    def p(self, conf) -> np.ndarray:
        b = self._bin(np.asarray(conf, dtype=np.float64))
        return self.hits[b] / self.seen[b]

    def update(self, conf, accepted: int) -> None:
        """A chain with confidences `conf` whose first `accepted` tokens the target took: those are
        hits, the next one (if any) a miss, the rest were never tested."""
        conf = np.asarray(conf, dtype=np.float64)
        tested = min(accepted + 1, len(conf))
        b = self._bin(conf[:tested])
        np.add.at(self.seen, b, 1.0)
        np.add.at(self.hits, b[:accepted], 1.0)


class LookupScore:
    """P(the target takes a lookup chain's token at depth d | it took those before), per length of the
    n-gram that matched. Every chain lookup offers is scored against the text that actually followed,
    verified or not: the target takes a proposed token exactly when it is the token that comes next
    (greedy, and in distribution when sampling), so untried chains are scored for free and lookup is
    never written off on stale evidence. Counts fade so that a change of register shows within ~20 chains."""

    def __init__(self, max_ngram: int, gamma: int, prior: float = 0.5, weight: float = 2.0, fade: float = 0.95):
        self.hits = np.full((max_ngram + 1, gamma), prior * weight)
        self.seen = np.full((max_ngram + 1, gamma), weight)
        self.fade = fade
        # (where its first token goes, n-gram length, chain, depths scored so far)
        self._open: list[tuple[int, int, list[int], int]] = []

    def rates(self, ngram: int, length: int) -> np.ndarray:
        return self.hits[ngram, :length] / self.seen[ngram, :length]

    def offer(self, position: int, ngram: int, chain: list[int]) -> None:
        self._open.append((position, ngram, chain, 0))

    def settle(self, text: list[int]) -> None:
        """Score each open chain's depths that `text` (every token known so far) decides, as soon as it
        does: a chain that keeps matching teaches from its first token on, not once it is complete."""
        still = []
        for position, ngram, chain, scored in self._open:
            known = text[position + scored:position + len(chain)]
            n = _common(known, chain[scored:])
            tested = min(n + 1, len(known))
            depths = slice(scored, scored + tested)
            self.seen[ngram, depths] = self.fade * self.seen[ngram, depths] + 1.0
            self.hits[ngram, depths] = self.fade * self.hits[ngram, depths] + (np.arange(tested) < n)
            if n == len(known) and scored + n < len(chain):
                still.append((position, ngram, chain, scored + n))
        self._open = still

    def forget_open(self) -> None:
        self._open = []


class StepCost:
    """Seconds a step verifying n nodes takes: the calibrated curve until steps of that size have been
    timed here, then their running average. Calibration times a bare verify pass on a fixed text;
    a step in a real answer also pays the walk, the commit and the streaming, and the pass itself
    can run slower than calibrated (measured: 4-node chains at 1.1-1.5x their calibrated time while
    single tokens matched). Sizes not yet timed carry the overhead seen on single steps."""

    def __init__(self, curve: CostCurve, weight: float = 0.2):
        self.curve, self.weight = curve, weight
        self.timed: dict[int, float] = {}

    def t(self, n: int) -> float:
        if n in self.timed:
            return self.timed[n]
        overhead = self.timed[1] - self.curve.t(1) if 1 in self.timed else 0.0
        return self.curve.t(n) + overhead

    def record(self, n: int, seconds: float) -> None:
        old = self.timed.get(n)
        self.timed[n] = seconds if old is None else (1 - self.weight) * old + self.weight * seconds


def chain_value(p_accept: np.ndarray, curve: CostCurve | StepCost, fixed_s: float) -> tuple[int, float]:
    """Best cut L of a chain (0 = root alone): (L, expected tokens per second) with per-token
    acceptance probabilities `p_accept` (conditional on the previous one being accepted)."""
    expected = 1.0 + np.concatenate(([0.0], np.cumsum(np.cumprod(p_accept))))
    values = [expected[L] / (fixed_s + curve.t(L + 1)) for L in range(len(expected))]
    best = int(np.argmax(values))
    return best, float(values[best])


def useful_block(curve: CostCurve, block_size: int, p: float = 0.8) -> int:
    """Block length worth drafting on this hardware: two past the best chain length for a drafter
    accepting each token with probability p (drafting positions no chain will keep wastes its time)."""
    L, _ = chain_value(np.full(block_size - 1, p), curve, 0.0)
    return min(block_size, max(2, L + 3))


class Auto:
    name = "auto"
    chain = False

    def __init__(self, curve: CostCurve, drafter=None, vp_drafter=None, *, gamma: int | None = None,
                 k: int = 4, lookup_gamma: int = 8, pause_steps: int = 8, max_pause: int = 256,
                 clock=time.perf_counter):
        self.cost, self.clock = StepCost(curve), clock
        self._verify_from: tuple[float, int] | None = None  # (when the last tree left propose, its nodes)
        self.drafter, self.vp = drafter, vp_drafter
        self.gamma = gamma or (useful_block(curve, drafter.config.block_size) if drafter else 0)
        self.k = k
        self.lookup = PromptLookup(gamma=lookup_gamma)
        self.lookup_score = LookupScore(self.lookup.max_ngram, lookup_gamma)
        self.calibration = Calibration()
        self.sync = DrafterSync(*(d for d in (drafter, vp_drafter) if d is not None)) if drafter else None
        self.draft_s = 0.0     # drafter 1's pass, seconds (exponential average)
        self.vp_cost = 0.0     # the VP pass, seconds (exponential average)
        self.vp_gain = 1.0     # extra tokens per VP pass beyond drafter 1's chain (optimistic start)
        self.pause_steps, self.max_pause = pause_steps, max_pause
        self._pause, self._paused_for = 0, 0
        self._last: dict = {}
        # committed features not yet given to the drafters: while drafting pauses they wait here and
        # go in as one batch when it resumes, instead of costing a drafter pass every step
        self._pending: list[np.ndarray] = []
        self.choice = "ar"     # what the last step verified: ar, lookup, dflash or d2sd

    # --- Method protocol ------------------------------------------------------------------------------

    def context_len(self) -> int | None:
        return self.sync.context_len() + sum(len(f) for f in self._pending) if self.sync else None

    def start(self, prompt, reused, features) -> None:
        self.lookup.start(prompt, reused, features)
        self.lookup_score.forget_open()
        self._verify_from = None  # a prefill came between: not a step's cost
        if self.sync:
            self._flush()
            self.sync.start(reused, features)

    def observe(self, accepted, features) -> None:
        if self.sync:
            if features is None:
                raise RuntimeError("the target captured no features: load it with the drafter's target_layer_ids")
            self._pending.append(features)
        got = accepted[1:]
        last = self._last
        if "draft" in last:
            chain = last["draft"]
            self.calibration.update(chain.conf, _common(got, chain.tokens))
        if "vp_chain" in last:  # tokens accepted past where drafter 1's chain broke came from a VP row
            self.vp_gain = 0.8 * self.vp_gain + 0.2 * (len(got) - _common(got, last["draft"].tokens))

    def propose(self, history, anchor) -> Proposal:
        if self._verify_from is not None:
            since, nodes = self._verify_from
            self.cost.record(nodes, self.clock() - since)
        self._last, vp_s = {}, 0.0
        t1 = self.cost.t(1)
        best = ("ar", 0, 1.0 / t1)
        text = history + [anchor]
        self.lookup_score.settle(text)
        ngram, lookup_chain = self.lookup.match(text)
        if lookup_chain:
            self.lookup_score.offer(len(text), ngram, lookup_chain)
            L, v = chain_value(self.lookup_score.rates(ngram, len(lookup_chain)), self.cost, 0.0)
            if v > best[2]:
                best = ("lookup", L, v)
        drafted = None
        if self.drafter is not None and self._pause == 0:
            drafted = self._draft(anchor)
            p = self.calibration.p(drafted.conf)
            L, v = chain_value(p, self.cost, 0.0)
            _, v_paid = chain_value(p, self.cost, self.draft_s)
            self._update_pause(v_paid > best[2])
            if v > best[2]:
                best = ("dflash", L, v)
        elif self._pause:
            self._pause -= 1
        name, L, _ = best
        trie = Trie.rooted(anchor)
        if name == "lookup":
            trie.add_row(lookup_chain[:L], LOOKUP)
        elif name == "dflash":
            chain = Block(drafted.tokens[:L], drafted.conf[:L])
            trie.add_row(chain.tokens, DRAFTER1, chain.conf)
            self._last["draft"] = chain
            if self.vp is not None and self._vp_pays(chain.conf, L):
                name = "d2sd"
                vp_s = self._add_vp_rows(trie, anchor, chain)
        self.choice = name
        self._verify_from = (self.clock(), len(trie))
        return Proposal(trie, vp_s)

    # --- internals -----------------------------------------------------------------------------------

    def _flush(self) -> None:
        if self._pending:
            self.sync.observe(np.concatenate(self._pending))
            self._pending = []

    def _row(self, anchor: int) -> np.ndarray:
        return block_row(anchor, self.gamma, self.drafter.config.mask_token_id)

    def _draft(self, anchor: int) -> Block:
        self._flush()
        t = time.perf_counter()
        block = draft_block(self.drafter, self._row(anchor))
        elapsed = time.perf_counter() - t
        self.draft_s = elapsed if self.draft_s == 0 else 0.8 * self.draft_s + 0.2 * elapsed
        return block

    def _update_pause(self, drafting_paid: bool) -> None:
        if drafting_paid:
            self._paused_for = 0
            return
        self._paused_for = min(self.max_pause, max(self.pause_steps, 2 * self._paused_for))
        self._pause = self._paused_for

    def _vp_pays(self, conf: np.ndarray, L: int) -> bool:
        """VP rows cost a VP pass and bigger verifies; take them while the tokens they added lately
        are worth more than that, judged against this chain's own tokens per second."""
        if L < 1:
            return False
        p = self.calibration.p(conf)
        expected = 1.0 + float(np.cumprod(p).sum())
        n_extra = min(self.k, L) * max(1, self.gamma // 2)
        base_s = self.cost.t(L + 1)
        with_vp_s = self.cost.t(L + 1 + n_extra) + self.vp_cost
        return (expected + self.vp_gain) / with_vp_s > expected / base_s

    def _add_vp_rows(self, trie: Trie, anchor: int, chain: Block) -> float:
        """D2SD's VP rows (engine.methods.d2sd_cycle) on drafter 1's chain as cut; the seconds of their pass."""
        points = reanchor_points(chain, self.k)
        if not points:
            return 0.0
        t = time.perf_counter()
        vp_tokens, vp_conf = vp_drafts(self.vp, self._row(anchor), chain, points)
        vp_s = time.perf_counter() - t
        self.vp_cost = vp_s if self.vp_cost == 0 else 0.8 * self.vp_cost + 0.2 * vp_s
        merge(trie, chain, points, vp_tokens, vp_conf)
        self._last["vp_chain"] = True
        return vp_s


def _common(a, b) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
