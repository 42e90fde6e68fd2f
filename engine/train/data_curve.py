"""Held-out acceptance against training data: what more data would buy.

    python -m engine.train.data_curve ~/.cache/d2sd-desktop/train/<sha16>/ablation-data/ablation.json \
        --steps 3000 --png curve.png

Reads the ablation rows that differ from the base recipe only in how much data they trained on (`base` and
`train_tokens=N`, the same step count, the same held-out answers), fits first-token acceptance as
a + b·ln(answer tokens) and says how many answer tokens that fit needs for a goal. A fit through a few
points is a guide, not a promise: measure again at the size it names.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path

import numpy as np

DATA_ONLY = re.compile(r"^(base|train_tokens=\d+)$")


def points(results: dict, steps: int) -> list[tuple[int, float, float]]:
    """(training answer tokens, first-token acceptance, τ dflash) of the data-only rows at `steps`, by tokens."""
    rows = [r for r in results.values() if r["steps"] == steps and DATA_ONLY.match(r["variant"])
            and "train_answer_tokens" in r["data"]]
    return sorted((r["data"]["train_answer_tokens"], r["first_token"], r["tau_dflash"]) for r in rows)


def fit(pts: list[tuple[int, float, float]]) -> tuple[float, float]:
    """(a, b) of first_token ≈ a + b·ln(tokens), least squares; needs two data sizes."""
    if len({p[0] for p in pts}) < 2:
        raise ValueError("the curve needs rows at two data sizes or more")
    x = np.log([p[0] for p in pts])
    b, a = np.polyfit(x, [p[1] for p in pts], 1)
    return float(a), float(b)


def tokens_for(goal: float, a: float, b: float) -> float:
    """Answer tokens at which the fit reaches `goal` (inf when acceptance does not grow with data)."""
    return math.exp((goal - a) / b) if b > 0 else math.inf


def plot(pts: list[tuple[int, float, float]], a: float, b: float, path: Path, goal: float) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = [p[0] for p in pts]
    ax.plot(xs, [p[1] for p in pts], "o", label="measured (held-out)")
    far = max(max(xs) * 10, min(tokens_for(goal, a, b), 1e8))
    line = np.geomspace(min(xs), far, 50)
    ax.plot(line, a + b * np.log(line), "--", label=f"{a:.3f} + {b:.3f}·ln(tokens)")
    ax.axhline(goal, color="grey", lw=0.8, label=f"goal {goal}")
    ax.set_xscale("log")
    ax.set_xlabel("training answer tokens")
    ax.set_ylabel("first-token acceptance, drafter 1")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.train.data_curve", description=__doc__.split("\n\n")[0])
    ap.add_argument("results", type=Path, help="the ablation's ablation.json")
    ap.add_argument("--steps", type=int, required=True, help="the step count whose rows form the curve")
    ap.add_argument("--goal", type=float, default=0.55, help="first-token acceptance to project (default 0.55)")
    ap.add_argument("--png", type=Path, help="draw the curve and its fit here")
    a = ap.parse_args(argv)
    try:
        pts = points(json.loads(a.results.read_text()), a.steps)
        lo, slope = fit(pts)
    except (OSError, ValueError, KeyError) as e:
        print(f"data_curve: error: {a.results}: {e}", file=sys.stderr)
        return 1
    print("| training answer tokens | first token | τ dflash |\n|---:|---:|---:|")
    for tokens, first, tau in pts:
        print(f"| {tokens:,} | {first:.3f} | {tau:.2f} |")
    print(f"\nfit: first token = {lo:.3f} + {slope:.3f}·ln(tokens); {a.goal} at ≈ {tokens_for(a.goal, lo, slope):,.0f} tokens")
    if a.png:
        plot(pts, lo, slope, a.png, a.goal)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
