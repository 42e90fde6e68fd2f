"""Aggregates per-run results into per-(method, mode) figures: totals first, then ratios, so long and
short answers weigh by their tokens rather than one vote each. What a run contributes to τ and to the
acceptance is what its RunStats counts (engine/events.py): the tokens its passes produced, and the draft
depths tried and taken along the accepted path (count_acceptance)."""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from engine.bench.harness import REFERENCE, Results, Run
from engine.events import RunStats


@dataclass
class Summary:
    method: str
    mode: str
    prompts: int
    tokens: int
    passes: int
    decode_s: float
    tokens_per_s: float
    tau: float
    acceptance: float
    ttft_median_s: float
    draft_s: float
    verify_s: float
    other_s: float
    accept_by_depth: list[float]
    # tree size -> [verify passes, tokens emitted]: what a projection to another cost curve needs
    by_tree_size: dict[int, list[int]]
    speedup: float | None = None        # tokens/s over the reference's in the same mode
    identical: int | None = None        # prompts whose output equals the reference's
    divergences: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["by_tree_size"] = {str(n): v for n, v in sorted(self.by_tree_size.items())}
        return d


def summarize(res: Results) -> list[Summary]:
    out = []
    for mode in res.modes:
        group = {m: [r for r in res.runs if r.method == m and r.mode == mode] for m in res.methods}
        for method, runs in group.items():
            if runs:
                out.append(_one(method, mode, runs))
        ref = next((s for s in out if s.method == REFERENCE and s.mode == mode), None)
        if ref is not None and ref.tokens_per_s > 0:
            for s in out:
                if s.mode == mode:
                    s.speedup = s.tokens_per_s / ref.tokens_per_s
    return out


def _one(method: str, mode: str, runs: list[Run]) -> Summary:
    st = [RunStats.from_dict(r.stats) for r in runs]
    tokens = sum(s.new_tokens for s in st)
    passes = sum(s.target_passes for s in st)
    decode_s = sum(s.total_s - s.prefill_s for s in st)
    depth = max((len(s.accept_tries) for s in st), default=0)
    tries = [sum(s.accept_tries[k] for s in st if k < len(s.accept_tries)) for k in range(depth)]
    hits = [sum(s.accept_hits[k] for s in st if k < len(s.accept_hits)) for k in range(depth)]
    sizes: dict[int, list[int]] = {}
    for r in runs:
        for n, e in zip(r.step_nodes, r.step_emitted):
            row = sizes.setdefault(n, [0, 0])
            row[0] += 1
            row[1] += e
    compared = [r for r in runs if r.matches_reference is not None]
    return Summary(
        method=method, mode=mode, prompts=len(runs), tokens=tokens, passes=passes, decode_s=decode_s,
        tokens_per_s=tokens / decode_s if decode_s > 0 else 0.0,
        tau=sum(s.produced for s in st) / passes if passes else 0.0,
        acceptance=sum(hits) / sum(tries) if sum(tries) else 0.0,
        ttft_median_s=statistics.median(s.ttft_s for s in st),
        draft_s=sum(s.draft_s for s in st), verify_s=sum(s.verify_s for s in st),
        other_s=sum(s.other_s for s in st),
        accept_by_depth=[h / t if t else 0.0 for h, t in zip(hits, tries)],
        by_tree_size=sizes,
        identical=sum(r.matches_reference for r in compared) if compared else None,
        divergences=[r.diverges_at for r in compared if r.diverges_at is not None],
    )
