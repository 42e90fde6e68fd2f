"""What each method's measured acceptance would be worth on another device's cost curve.

Per verify pass of n nodes the run emitted some tokens; on a device where a pass of n costs T(n), the
same passes take Σ T(n), against tokens·T(1) for plain decoding. Drafting cost does not transfer from one
device to another, so two figures are given: `bound` ignores it (the ceiling), `scaled` assumes the draft
speeds up by the same factor as the target's single step.
"""
from __future__ import annotations

from dataclasses import dataclass

from engine.bench.summary import Summary
from engine.calibrate import CostCurve


@dataclass(frozen=True)
class Projection:
    method: str
    mode: str
    bound: float
    scaled: float | None


def project(summaries: list[Summary], there: CostCurve, here_t1: float | None) -> list[Projection]:
    """`here_t1`: the local single-step cost, to scale drafting time; None leaves `scaled` out."""
    out = []
    for s in summaries:
        verify = sum(steps * there.t(n) for n, (steps, _) in s.by_tree_size.items())
        tokens = sum(tok for _, tok in s.by_tree_size.values())
        if not verify or not tokens:
            continue
        plain = tokens * there.t(1)
        scaled = None
        if here_t1:
            scaled = plain / (verify + s.draft_s * there.t(1) / here_t1)
        out.append(Projection(s.method, s.mode, plain / verify, scaled))
    return out


def table(projections: list[Projection], there: CostCurve) -> str:
    lines = [f"projected speedup over plain decoding on the given cost curve "
             f"(t(1) = {there.t(1) * 1000:.2f} ms; bound: drafting free, scaled: drafting sped up like t(1))",
             f"{'method':<24} {'mode':<7} {'bound':>7} {'scaled':>7}"]
    for p in projections:
        scaled = f"{p.scaled:6.2f}x" if p.scaled is not None else "      -"
        lines.append(f"{p.method:<24} {p.mode:<7} {p.bound:6.2f}x {scaled}")
    return "\n".join(lines)
