"""A loaded target's ready decoding method: the one place that finds and loads the target's drafter
pair (once, shared by every method that drafts), reads or measures its verify cost curve for `auto`,
and keeps the built method from one request to the next, so a follow-up turn reuses the target's and
the drafters' cached prefix. `engine.methods.make_method` stays a plain constructor; `d2sd
chat/generate`, `d2sd serve`, `d2sd bench` and the app build their methods here.

Not thread-safe, like the target it drives: one owner thread calls it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.calibrate import (CONTEXT_TOKENS, SIZES, CostCurve, cache_key, cache_path, calibrate, recalibrate,
                              refresh_if_stale)
from engine.methods import DRAFTER_METHODS, make_method
from engine.methods.base import Method

DRAFTS_WITH_DRAFTERS = DRAFTER_METHODS | {"auto"}   # auto drafts with the pair when the target has one
SHIPPED = ("", "")                                  # drafter folders: "" means the pair shipped with the target


def cached_curve(target) -> CostCurve | None:
    """The verify cost curve calibrated earlier for this model file and settings, if any (read only).
    Read without calibrate()'s single-step check, so a chat starts at once: one measured under load is
    refreshed from auto's own steps instead."""
    key = {**cache_key(target), "sizes": list(SIZES), "context": CONTEXT_TOKENS}  # as calibrate() files it
    try:
        curve = CostCurve.read(cache_path(key))
    except (OSError, ValueError):
        return None
    return curve if curve.key == key else None


class ReadyMethod:
    """One target's drafters and current method. `get` returns the method built last when asked for the
    same one again, else closes it and builds the new one (loading drafters only when their folders
    change). `on_measure` is called before a missing or stale cost curve is measured (it holds the target
    a while: tens of seconds on a CPU), so a caller can say why nothing is happening. `curve`: one the
    caller measured already (the bench's, with its own rounds), used as is."""

    def __init__(self, target, on_measure: Callable[[], None] = lambda: None, curve: CostCurve | None = None):
        self.target = target
        self._on_measure = on_measure
        self._pair_folders: tuple[str, str] | None = None
        self._pair = (None, None)
        self._curve = curve
        self._choice: tuple | None = None
        self._method: Method | None = None

    def get(self, name: str, params: dict | None = None, drafters: tuple[str, str] = SHIPPED) -> Method:
        """`params`: make_method's keywords (gamma, k, budget, alt, ...); `drafters`: drafter 1 and VP
        folders, "" for the pair shipped with the target (a missing VP drafter: drafter 1 reused)."""
        params = dict(params or {})
        choice = (name, sorted(params.items()), tuple(drafters))
        self._refresh_if_stale()
        if self._method is not None and choice == self._choice:
            return self._method
        self._close_method()
        self._method = self.build(name, params, drafters)
        self._choice = choice
        return self._method

    def build(self, name: str, params: dict | None = None, drafters: tuple[str, str] = SHIPPED) -> Method:
        """A new method, not kept: its caller closes it (the bench holds several side by side; they
        share the one loaded pair, the target's capture layers and the cost curve)."""
        drafter, vp_drafter = self._drafters(drafters) if name in DRAFTS_WITH_DRAFTERS else (None, None)
        curve = self.curve() if name == "auto" else None
        return make_method(name, self.target, drafter=drafter, vp_drafter=vp_drafter, curve=curve,
                           **dict(params or {}))

    def curve(self) -> CostCurve:
        """The target's verify cost curve: from the cache, else measured now (and cached)."""
        if self._curve is None:
            self._curve = cached_curve(self.target)
            if self._curve is None:
                self._on_measure()
                self._curve = calibrate(self.target)
        return self._curve

    def recalibrate(self) -> CostCurve:
        """Measure the cost curve again now and cache it (a user's re-measure); auto rebuilds with it."""
        self._on_measure()
        self._curve = recalibrate(self.target)
        if self._choice is not None and self._choice[0] == "auto":
            self._close_method()
        return self._curve

    def _refresh_if_stale(self) -> None:
        """Between answers (each asks `get` first): when auto's own steps ran far faster than the curve
        says, the curve was measured under load, so it is measured again (resetting the target's KV)
        and auto rebuilt on it."""
        if self._choice is None or self._choice[0] != "auto":
            return
        curve = self._curve
        self._curve = refresh_if_stale(self.target, curve, self._method.cost.timed, on_measure=self._on_measure)
        if self._curve is not curve:
            self._close_method()

    def _drafters(self, folders: tuple[str, str]):
        if folders != self._pair_folders:
            from engine.drafters.pair import load_pair, pair_for  # torch: imported once a drafter is used

            path = self.target.info.path
            if folders[0]:
                block, vp = Path(folders[0]), Path(folders[1]) if folders[1] else None
            else:
                block, vp = pair_for(path)
            self._pair = (None, None)  # the old pair goes before the new one loads: each holds ~1 GB of head
            self._pair = load_pair(path, block, vp) if block is not None else (None, None)
            self._pair_folders = folders
        return self._pair

    def _close_method(self) -> None:
        if self._method is not None and hasattr(self._method, "close"):
            self._method.close()  # ardraft's own draft model
        self._method = self._choice = None

    def close(self) -> None:
        """Free the method and the drafters (the target stays with its owner)."""
        self._close_method()
        self._pair, self._pair_folders = (None, None), None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
