"""PNG charts of a benchmark (matplotlib, drawn off-screen)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from engine.bench.harness import Results
from engine.bench.summary import Summary
from engine.calibrate import CostCurve


def available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def write_all(folder: Path, res: Results, summaries: list[Summary], curve: CostCurve | None) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # no display needed, and never a GUI backend inside the engine
    import matplotlib.pyplot as plt

    paths = [_speedup(plt, folder / "speedup.png", summaries),
             _tau_histogram(plt, folder / "tau_histogram.png", res),
             _acceptance_by_depth(plt, folder / "acceptance_by_depth.png", summaries)]
    if curve is not None:
        paths.append(_cost_curve(plt, folder / "cost_curve.png", curve))
    return paths


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _speedup(plt, path: Path, summaries: list[Summary]) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    labels = [f"{s.method}\n{s.mode}" for s in summaries]
    values = [s.speedup if s.speedup is not None else s.tokens_per_s for s in summaries]
    bars = ax.bar(labels, values, color=["#888" if s.method == "ar" else "#3b7dd8" for s in summaries])
    ax.bar_label(bars, fmt="%.2f")
    if all(s.speedup is not None for s in summaries):
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylabel("speedup over ar (tokens/s)")
    else:
        ax.set_ylabel("tokens/s")
    ax.set_title("Decoding speed")
    return _save(plt, fig, path)


def _tau_histogram(plt, path: Path, res: Results) -> Path:
    """Tokens emitted per verify pass: a chain method's τ distribution, step by step."""
    fig, ax = plt.subplots(figsize=(7, 3.8))
    groups = [(m, mode) for mode in res.modes for m in res.methods]
    top = max((e for r in res.runs for e in r.step_emitted), default=1)
    width = 0.8 / max(len(groups), 1)
    for k, (m, mode) in enumerate(groups):
        counts = Counter(e for r in res.runs if r.method == m and r.mode == mode for e in r.step_emitted)
        total = sum(counts.values()) or 1
        xs = range(1, top + 1)
        ax.bar([x + (k - len(groups) / 2 + 0.5) * width for x in xs], [counts[x] / total for x in xs],
               width=width, label=f"{m} ({mode})")
    ax.set_xlabel("tokens emitted per verify pass")
    ax.set_ylabel("share of passes")
    ax.legend(fontsize=8)
    ax.set_title("τ per step")
    return _save(plt, fig, path)


def _acceptance_by_depth(plt, path: Path, summaries: list[Summary]) -> Path:
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for s in summaries:
        if s.accept_by_depth:
            ax.plot(range(1, len(s.accept_by_depth) + 1), s.accept_by_depth, marker="o",
                    label=f"{s.method} ({s.mode})")
    ax.set_xlabel("draft depth")
    ax.set_ylabel("acceptance (given the parent was accepted)")
    ax.set_ylim(0, 1.05)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_title("Acceptance by draft depth")
    return _save(plt, fig, path)


def _cost_curve(plt, path: Path, curve: CostCurve) -> Path:
    ns = sorted(curve.seconds)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    ax.plot(ns, [curve.ratio(n) for n in ns], marker="o", label="t(n) / t(1)")
    ax.plot(ns, ns, color="#aaa", ls="--", label="n (no batching gain)")
    ax.plot(ns, [curve.limit(n) for n in ns], marker="s", label="speedup limit n·t(1)/t(n)")
    ax.set_xlabel("verify batch size n (nodes)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.legend(fontsize=8)
    ax.set_title(f"Verify cost (t(1) = {curve.t(1) * 1000:.1f} ms)")
    return _save(plt, fig, path)
