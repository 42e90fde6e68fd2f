"""Running statistics of one answer, accumulated from the engine's per-step events (no Qt here).

Also what a plain (`ar`) step costs on the loaded model, the t(1) of the speedup over `ar`: measured by
the session's `ar` runs, or estimated from the calibrated verify cost curve or from one-token steps.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate

from engine.calibrate import CostCurve
from engine.events import StepStats, count_acceptance


@dataclass
class LiveStats:
    steps: int = 0                  # target passes
    emitted: int = 0
    proposed: int = 0
    accepted: int = 0
    draft_s: float = 0.0            # VP rows included, as in the engine's stats
    vp_s: float = 0.0
    verify_s: float = 0.0
    other_s: float = 0.0
    nodes_per_step: list[int] = field(default_factory=list)
    tau_per_step: list[int] = field(default_factory=list)
    seconds_per_step: list[float] = field(default_factory=list)
    accept_tries: list[int] = field(default_factory=list)
    accept_hits: list[int] = field(default_factory=list)
    last: StepStats | None = None

    def add(self, step: StepStats) -> None:
        self.steps += 1
        self.emitted += step.emitted
        self.proposed += step.proposed
        self.accepted += step.accepted
        self.draft_s += step.draft_s
        self.vp_s += step.vp_s
        self.verify_s += step.verify_s
        self.other_s += step.other_s
        self.nodes_per_step.append(step.tree_nodes)
        self.tau_per_step.append(step.emitted)
        self.seconds_per_step.append(step.draft_s + step.verify_s + step.other_s)
        count_acceptance(self.accept_tries, self.accept_hits, step.tree)
        self.last = step

    @property
    def step_s(self) -> float:
        return self.draft_s + self.verify_s + self.other_s

    @property
    def tokens_per_s_per_step(self) -> list[float]:
        return [t / s if s > 0 else 0.0 for t, s in zip(self.tau_per_step, self.seconds_per_step)]

    @property
    def running_tokens_per_s(self) -> list[float]:
        out, tokens, seconds = [], 0, 0.0
        for t, s in zip(self.tau_per_step, self.seconds_per_step):
            tokens += t
            seconds += s
            out.append(tokens / seconds if seconds > 0 else 0.0)
        return out

    @property
    def running_tau(self) -> list[float]:
        return [total / i for i, total in enumerate(accumulate(self.tau_per_step), 1)]

    @property
    def tau_mean(self) -> float:
        return self.emitted / self.steps if self.steps else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.emitted / self.step_s if self.step_s > 0 else 0.0

    @property
    def passes_saved(self) -> int:
        """Target passes plain decoding would have needed beyond the ones this answer used."""
        return max(0, self.emitted - self.steps)

    @property
    def acceptance_by_depth(self) -> list[float]:
        return [h / t if t else 0.0 for h, t in zip(self.accept_hits, self.accept_tries)]


@dataclass
class StepCost:
    """Mean wall time of one-token steps on the loaded model."""
    total_s: float = 0.0
    count: int = 0

    def add(self, seconds: float, steps: int = 1) -> None:
        self.total_s += seconds
        self.count += steps

    def add_if_one_token(self, step: StepStats) -> None:
        """Steps that verified only their anchor (lookup finding nothing) cost what an `ar` step does."""
        if step.tree_nodes == 1 and step.emitted:
            self.add(step.draft_s + step.verify_s + step.other_s)

    @property
    def seconds(self) -> float | None:
        return self.total_s / self.count if self.count else None


def t1_from_curve(live: LiveStats, curve: CostCurve) -> float:
    """The curve's t(1) at this run's pace: its verify passes took verify_s where the curve says
    Σ t(n); the same factor applies to t(1). That absorbs what calibration did not share with this run
    (machine load, context length). It prices verifying only, not ar's own per-step work, so the
    speedup it gives errs low."""
    return curve.t(1) * live.verify_s / sum(curve.t(n) for n in live.nodes_per_step)


def speedup(live: LiveStats, t1: float) -> float:
    """Plain decoding would have spent one t(1) step per token; this answer spent step_s."""
    return live.emitted * t1 / live.step_s
