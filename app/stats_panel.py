"""Live statistics of the current answer: numbers, per-step charts, acceptance by draft position."""
from __future__ import annotations

import time

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from app.live_stats import LiveStats, StepCost, speedup, t1_from_curve
from engine.calibrate import CostCurve
from engine.events import RunStats, StepStats

REFRESH_MS = 200  # redraw cadence: charts at the token rate would eat the CPU the engine needs

pg.setConfigOptions(antialias=True, background="w", foreground="#24292f")

# What the drafters bought leads: τ, the passes they saved, and how often the target took a draft token
# on the path it accepted.
LABELS = {
    "tau": "τ tokens per pass (last / mean)",
    "passes_saved": "Target passes saved",
    "acceptance": "Acceptance on the accepted path",
    "tokens_per_s": "Tokens/s (now / avg)",
    "passes": "Target passes",
    "tokens": "Tokens",
    "time_split": "Time draft-1 / VP / verify / other",
    "ttft": "Time to first token",
    "speedup": "Speedup vs ar",
}
DEFINITIONS = {
    "tau": "Tokens the target produced per verify pass; plain decoding makes exactly 1.",
    "passes_saved": "Verify passes plain decoding would have needed beyond the ones this answer used.",
    "acceptance": "Of the draft tokens offered next on the accepted path, the share the target accepted.",
    "tokens_per_s": "Answer tokens per second of decoding, for the latest step and on average.",
    "passes": "Forward passes of the target that verified drafts (prefill not counted).",
    "tokens": "Tokens in the answer so far.",
    "time_split": "Decoding time spent drafting (drafter 1, VP rows), verifying, and on everything else.",
    "ttft": "Time from sending to the first answer token, prompt processing included.",
    "speedup": "Tokens/s compared with plain decoding (ar) of the same model on this machine.",
}


class StatsPanel(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.live = LiveStats()
        # what an ar step costs on the loaded model (all reset by model_changed): measured by finished
        # ar runs, else estimated from the calibrated curve, else from other methods' one-token steps
        self.ar_step = StepCost()
        self.curve: CostCurve | None = None
        self.one_token_step = StepCost()
        self.final: RunStats | None = None
        self.started = time.monotonic()
        self.first_step_s: float | None = None   # time to first token while the answer streams
        self.labels: dict[str, QLabel] = {}

        form = QFormLayout()
        for key, title in LABELS.items():
            label = QLabel("–")
            label.setObjectName(key)
            label.setWordWrap(True)
            label.setToolTip(DEFINITIONS[key])
            self.labels[key] = label
            form.addRow(title, label)
            form.labelForField(label).setToolTip(DEFINITIONS[key])

        self.rate_plot = _plot("Tokens/s per step", "step")
        self.rate_now = self.rate_plot.plot(pen=pg.mkPen("#8c959f", width=1))
        self.rate_avg = self.rate_plot.plot(pen=pg.mkPen("#1f6feb", width=2))
        self.tau_plot = _plot("τ per step (bars) and running mean", "step")
        self.tau_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush="#afb8c1", pen=None)
        self.tau_plot.addItem(self.tau_bars)
        self.tau_mean = self.tau_plot.plot(pen=pg.mkPen("#8250df", width=2))
        self.accept_plot = _plot("Acceptance by draft position", "position")
        self.accept_plot.setYRange(0, 1)
        self.accept_bars = pg.BarGraphItem(x=[], height=[], width=0.7, brush="#1a7f37", pen=None)
        self.accept_plot.addItem(self.accept_bars)

        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for plot in (self.rate_plot, self.tau_plot, self.accept_plot):
            layout.addWidget(plot, 1)

        self._timer = QTimer(self, singleShot=True, interval=REFRESH_MS, timeout=self.refresh)

    def model_changed(self, curve: CostCurve | None) -> None:
        """A model was loaded; `curve` is its calibrated verify cost curve, if one was measured."""
        self.ar_step = StepCost()
        self.curve = curve
        self.one_token_step = StepCost()

    def set_dark(self, dark: bool) -> None:
        ink = "#c9d1d9" if dark else "#24292f"
        for plot in (self.rate_plot, self.tau_plot, self.accept_plot):
            plot.setBackground("#0d1117" if dark else "w")
            for side in ("left", "bottom"):
                plot.getAxis(side).setPen(ink)
                plot.getAxis(side).setTextPen(ink)
            plot.setTitle(plot.plotItem.titleLabel.text, color=ink)

    def set_curve(self, curve: CostCurve | None) -> None:
        """A cost curve measured (or re-measured) for the loaded model; None: measuring failed."""
        if curve is not None:
            self.curve = curve

    def begin(self) -> None:
        self.live = LiveStats()
        self.final = None
        self.started = time.monotonic()
        self.first_step_s = None
        self.refresh()

    def decoding_started(self) -> None:
        """Time to first token counts from here, as the engine's does: a first answer's cost-curve
        measurement and drafter loading come before it."""
        self.started = time.monotonic()

    def clear(self) -> None:
        """A new chat: nothing answered yet, so no numbers."""
        self.show_saved(None)
        for label in self.labels.values():
            label.setText("–")

    def add_step(self, step: StepStats) -> None:
        if self.first_step_s is None:
            # the engine emits its first step right after the pass that made the first token
            self.first_step_s = time.monotonic() - self.started
        self.live.add(step)
        self.one_token_step.add_if_one_token(step)
        if not self._timer.isActive():
            self._timer.start()

    def finish(self, stats: RunStats) -> None:
        """The engine's run totals replace the live sums (they include prefill and the last flush)."""
        self.final = stats
        if stats.method == "ar":
            self.ar_step.add(stats.draft_s + stats.verify_s + stats.other_s, stats.target_passes)
        self._timer.stop()
        self.refresh()

    def show_saved(self, stats: dict | None) -> None:
        """A finished message's saved totals, shown on opening a conversation (no per-step charts)."""
        self.live = LiveStats()
        self.final = None
        self.first_step_s = None
        self.refresh()
        if stats:
            _fill_from_saved(self.labels, stats)

    def refresh(self) -> None:
        live, final = self.live, self.final
        rates = live.tokens_per_s_per_step
        now = rates[-1] if rates else 0.0
        avg = final.tokens_per_s if final else live.tokens_per_s
        tau_last = live.tau_per_step[-1] if live.tau_per_step else 0
        tau_mean = final.tau if final else live.tau_mean
        passes = final.target_passes if final else live.steps
        tokens = final.new_tokens if final else live.emitted
        times = final or live   # the engine's totals once the run has finished
        tries, hits = (final.accept_tries, final.accept_hits) if final else (live.accept_tries, live.accept_hits)
        ttft = final.ttft_s if final else self.first_step_s
        self.labels["tokens_per_s"].setText(f"{now:.1f} / {avg:.1f}")
        self.labels["tau"].setText(f"{tau_last} / {tau_mean:.2f}")
        self.labels["passes"].setText(str(passes))
        self.labels["tokens"].setText(str(tokens))
        self.labels["passes_saved"].setText(str(max(0, tokens - passes)))
        self.labels["acceptance"].setText(_acceptance_text(sum(hits), sum(tries)))
        self.labels["time_split"].setText(_split_text(times.draft_s, times.vp_s, times.verify_s, times.other_s))
        self.labels["ttft"].setText(f"{ttft * 1000:.0f} ms" if ttft is not None else "–")
        self.labels["speedup"].setText(self._speedup_text())

        steps = list(range(1, live.steps + 1))
        self.rate_now.setData(steps, rates)
        self.rate_avg.setData(steps, live.running_tokens_per_s)
        self.tau_bars.setOpts(x=steps, height=live.tau_per_step)
        self.tau_mean.setData(steps, live.running_tau)
        by_depth = [h / t if t else 0.0 for h, t in zip(hits, tries)]
        positions = list(range(1, len(by_depth) + 1))
        self.accept_bars.setOpts(x=positions, height=by_depth)
        self.accept_plot.getAxis("bottom").setTicks([[(p, str(p)) for p in positions]])

    def _speedup_text(self) -> str:
        live = self.live
        if not live.steps or live.step_s <= 0:
            return "–"
        if self.ar_step.seconds is not None:
            return f"{speedup(live, self.ar_step.seconds):.2f}× (measured against this session's ar)"
        if self.curve is not None:
            estimate = speedup(live, t1_from_curve(live, self.curve))
            return f"{estimate:.2f}× (estimate from the calibrated cost curve)"
        if self.one_token_step.seconds is not None:
            return f"{speedup(live, self.one_token_step.seconds):.2f}× (estimate from one-token steps)"
        return f"≤ {live.tau_mean:.2f}× (estimate; run ar once, or d2sd bench to calibrate)"


def _plot(title: str, x_label: str) -> pg.PlotWidget:
    plot = pg.PlotWidget(title=title)
    plot.setLabel("bottom", x_label)
    plot.setMenuEnabled(False)
    plot.setMouseEnabled(False, False)
    plot.setMinimumHeight(110)
    return plot


def _acceptance_text(hits: int, tries: int) -> str:
    return f"{hits / tries:.0%} ({hits} of {tries} on the path)" if tries else "–"


def _split_text(draft: float, vp: float, verify: float, other: float) -> str:
    """Drafter 1 (or lookup, or the draft model) / VP rows / verify / other, as times and shares."""
    parts = (draft - vp, vp, verify, other)
    total = sum(parts)
    if total <= 0:
        return "–"
    return " / ".join(f"{_duration(s)} ({s / total:.0%})" for s in parts)


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def _fill_from_saved(labels: dict[str, QLabel], s: dict) -> None:
    tokens, passes = s.get("new_tokens", 0), s.get("target_passes", 0)
    labels["tokens_per_s"].setText(f"– / {s.get('tokens_per_s', 0.0):.1f}")
    labels["tau"].setText(f"– / {s.get('tau', 0.0):.2f}")
    labels["passes"].setText(str(passes))
    labels["tokens"].setText(str(tokens))
    labels["passes_saved"].setText(str(max(0, tokens - passes)))
    labels["acceptance"].setText(_acceptance_text(sum(s.get("accept_hits", [])), sum(s.get("accept_tries", []))))
    labels["time_split"].setText(_split_text(s.get("draft_s", 0.0), s.get("vp_s", 0.0), s.get("verify_s", 0.0),
                                             s.get("other_s", 0.0)))
    labels["ttft"].setText(f"{s.get('ttft_s', 0.0) * 1000:.0f} ms")

