"""A one-line progress report with rate and ETA, printed at most every few seconds."""
from __future__ import annotations

import time


class Progress:
    def __init__(self, label: str, total: float, *, start: float = 0, log=print, every_s: float = 10.0):
        self.label, self.total, self.log, self.every_s = label, total, log, every_s
        self._t0, self._v0 = time.time(), start
        self._last = 0.0

    def update(self, value: float, extra: str = "") -> None:
        now = time.time()
        if now - self._last < self.every_s:
            return
        self._last = now
        rate = (value - self._v0) / max(now - self._t0, 1e-9)
        eta = (self.total - value) / rate if rate > 0 else float("inf")
        eta_text = f"{eta / 60:.0f} min" if eta != float("inf") else "?"
        pct = 100 * value / self.total if self.total else 100
        self.log(f"[{self.label}] {value:.0f}/{self.total:.0f} ({pct:.0f}%) {rate:.1f}/s ETA {eta_text} {extra}".rstrip())

    def done(self, value: float) -> None:
        self.log(f"[{self.label}] {value:.0f} done in {(time.time() - self._t0) / 60:.1f} min")
