"""Running statistics of one answer, accumulated from the engine's per-step events (no Qt here).

Also the session's measured cost of a one-token step per model, the t(1) of the speedup estimate.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import accumulate

from engine.events import StepStats, count_acceptance


@dataclass
class LiveStats:
    steps: int = 0                  # target passes
    emitted: int = 0
    proposed: int = 0
    accepted: int = 0
    draft_s: float = 0.0
    verify_s: float = 0.0
    other_s: float = 0.0
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
        self.verify_s += step.verify_s
        self.other_s += step.other_s
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
class SingleStepCost:
    """Mean wall time of steps that verified one token (ar steps, or lookup steps that found nothing)."""
    total_s: float = 0.0
    count: int = 0

    def add(self, step: StepStats) -> None:
        if step.tree_nodes == 1 and step.emitted:
            self.total_s += step.draft_s + step.verify_s + step.other_s
            self.count += 1

    @property
    def seconds(self) -> float | None:
        return self.total_s / self.count if self.count else None


def speedup_estimate(live: LiveStats, single: SingleStepCost) -> float | None:
    """τ × t(1) / t(n): tokens per pass times how much cheaper a plain step is than this run's steps.
    None until a one-token step has been timed on this model."""
    t1 = single.seconds
    if t1 is None or not live.steps or live.step_s <= 0:
        return None
    return live.tau_mean * t1 / (live.step_s / live.steps)
