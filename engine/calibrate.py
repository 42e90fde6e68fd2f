"""The target's verify cost curve t(n): seconds for one decode_tree of a chain of n nodes.

Speculative decoding pays only where verifying n tokens costs much less than n single steps
(docs/design.md, "The cost curve"): at tree size n no method can beat n·t(1)/t(n) times plain decoding. The curve depends on
the model file, the device split and the thread count, so it is cached per (file, settings, build, CPU).
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from engine.paths import cache_dir
from engine.tree import Trie

SIZES = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64)
CONTEXT_TOKENS = 256   # committed context under the measured chains: a short chat turn
# Rounds of one size whose slowest is this many times its fastest disagree: other work was running, so
# the measurement is taken again (up to ATTEMPTS times in all) and the steadiest attempt kept.
MAX_SPREAD = 1.5
ATTEMPTS = 3
# Steps that take less than 1/STALE_RATIO of the curve's time (steps add walk and commit to a bare
# verify, so they are never faster): the curve was measured under load (seen: t(1) 682 ms, 80 ms quiet;
# 565 ms, 34 ms quiet). Gaps under STALE_FLOOR_S are timer and scheduler noise on a tiny model, not load.
STALE_RATIO = 2.0
STALE_FLOOR_S = 0.01


@dataclass(frozen=True)
class CostCurve:
    """Median seconds per verify pass by node count; sizes between measured ones are interpolated."""
    seconds: dict[int, float]
    samples: dict[int, list[float]] = field(default_factory=dict)
    key: dict = field(default_factory=dict)

    def __post_init__(self):
        if 1 not in self.seconds or any(n < 1 or s <= 0 for n, s in self.seconds.items()):
            raise ValueError("a cost curve needs t(1) and positive times for sizes >= 1")

    def t(self, n: int) -> float:
        ns = sorted(self.seconds)
        if n in self.seconds:
            return self.seconds[n]
        lo = max((m for m in ns if m < n), default=ns[0])
        hi = min((m for m in ns if m > n), default=None)
        if hi is None:  # beyond the last size: extend the last segment's slope
            if len(ns) == 1:
                return self.seconds[lo] * n / lo
            lo, hi = ns[-2], ns[-1]
        slope = (self.seconds[hi] - self.seconds[lo]) / (hi - lo)
        return self.seconds[lo] + slope * (n - lo)

    @property
    def spread(self) -> float:
        """Slowest over fastest round of the worst size (1.0 for a curve without rounds, e.g. given by hand)."""
        return max((max(v) / min(v) for v in self.samples.values() if len(v) > 1 and min(v) > 0), default=1.0)

    @property
    def stable(self) -> bool:
        return self.spread <= MAX_SPREAD

    def stale(self, timed: dict[int, float]) -> bool:
        """Do steps timed in real answers ({nodes: seconds}) run far faster than this curve says?"""
        return any(seconds * STALE_RATIO < self.t(n) and self.t(n) - seconds > STALE_FLOOR_S
                   for n, seconds in timed.items() if n >= 1)

    def ratio(self, n: int) -> float:
        """t(n)/t(1): how many single steps one verify pass of n nodes costs."""
        return self.t(n) / self.t(1)

    def limit(self, n: int) -> float:
        """The best speedup over plain decoding any method can reach with trees of n nodes."""
        return n / self.ratio(n)

    def to_json(self) -> dict:
        return {"key": self.key, "seconds": {str(n): s for n, s in sorted(self.seconds.items())},
                "samples": {str(n): v for n, v in sorted(self.samples.items())}}

    @classmethod
    def from_json(cls, data: dict) -> "CostCurve":
        """Our own format, or a bare {"n": seconds} mapping (e.g. a curve measured elsewhere by hand)."""
        if "seconds" in data:
            return cls({int(n): float(s) for n, s in data["seconds"].items()},
                       {int(n): [float(x) for x in v] for n, v in data.get("samples", {}).items()},
                       data.get("key", {}))
        return cls({int(n): float(s) for n, s in data.items()})

    @classmethod
    def read(cls, path: str | Path) -> "CostCurve":
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"{path} is not a cost curve (want {{\"1\": seconds, \"2\": ...}}): {e}") from e


def cache_key(target) -> dict:
    st = target.info.path.stat()
    s = target.settings
    return {"model": str(target.info.path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "n_gpu_layers": s.n_gpu_layers, "threads": s.n_threads or os.cpu_count() or 1,
            "llama_cpp_python": metadata.version("llama_cpp_python"), "cpu": cpu_model()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_path(key: dict) -> Path:
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    return cache_dir() / "costs" / f"{digest}.json"


def calibrate(target, sizes=SIZES, repeats: int = 3, use_cache: bool = True) -> CostCurve:
    """The cached curve for this target and settings, measured now when missing or when a few single
    steps timed now run far faster than it says: it was measured under load, and the cache key cannot
    tell (resets the target's KV). A cached curve is used even when its rounds disagreed: `measure`
    already took it again up to ATTEMPTS times, so on a machine that stays busy, measuring at every start
    (minutes each on a 2-core CPU) would not do better."""
    key = {**cache_key(target), "sizes": list(sizes), "context": CONTEXT_TOKENS}
    path = cache_path(key)
    if use_cache and path.is_file():
        try:
            curve = CostCurve.read(path)
            if curve.key == key and not curve.stale({1: single_step(target)}):
                return curve
        except ValueError:
            pass  # a damaged cache file is simply measured again
    curve = measure(target, sizes, repeats, key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(curve.to_json(), indent=1))
    os.replace(tmp, path)
    return curve


def recalibrate(target, sizes=SIZES, repeats: int = 3) -> CostCurve:
    """Measure the curve again now and replace the cached one (the user asked, e.g. after a change of
    hardware or load); resets the target's KV, so call it between answers."""
    return calibrate(target, sizes, repeats, use_cache=False)


def refresh_if_stale(target, curve: CostCurve, timed: dict[int, float], repeats: int = 3,
                     on_measure: Callable[[], None] = lambda: None) -> CostCurve:
    """`curve`, or a new measurement (cached in its place) when the steps timed in real answers
    ({nodes: seconds}, e.g. Auto's StepCost.timed) run far faster than it says. Resets the target's KV
    when it measures, so call it between answers; `on_measure` is called before measuring."""
    if not curve.stale(timed):
        return curve
    on_measure()
    return recalibrate(target, tuple(curve.key.get("sizes") or SIZES), repeats)


def measure(target, sizes=SIZES, repeats: int = 3, key: dict | None = None) -> CostCurve:
    """Median over `repeats` rounds, each visiting every size once so load drift hits all sizes alike;
    taken again (up to ATTEMPTS times in all) while the rounds disagree, the steadiest attempt kept."""
    best = None
    for _ in range(ATTEMPTS):
        curve = _measure_once(target, sizes, repeats, key)
        if best is None or curve.spread < best.spread:
            best = curve
        if best.stable:
            break
    return best


def single_step(target, rounds: int = 3) -> float:
    """The fastest of a few one-node passes on the measuring context, now (resets the target's KV)."""
    verify_once = _chain_timer(target, 1)
    verify_once(1)  # warm-up, as in _measure_once
    fastest = min(verify_once(1) for _ in range(rounds))
    target.reset()
    return fastest


def _chain_timer(target, longest: int) -> Callable[[int], float]:
    """Prepares the target on CONTEXT_TOKENS committed tokens and returns a timer of one verify pass of
    an n-node chain on them (each pass's chain dropped again after it)."""
    if longest > target.n_batch or CONTEXT_TOKENS + longest + 1 > target.n_ctx:
        raise ValueError(f"chains up to {longest} nodes need n_batch >= {longest} and a context of "
                         f"{CONTEXT_TOKENS + longest + 1} tokens")
    pool = [t for t in target.tokenize("def fibonacci(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n")
            if not target.is_eog(t)]
    prompt = (pool * (CONTEXT_TOKENS // len(pool) + 2))[:CONTEXT_TOKENS + 1]
    target.reset()
    anchor, _ = target.prepare(prompt)

    def verify_once(n: int) -> float:
        trie = Trie.rooted(anchor)
        trie.add_row((pool * (n // len(pool) + 1))[:n - 1], "calibrate")
        t0 = time.perf_counter()
        target.decode_tree(trie)
        dt = time.perf_counter() - t0
        target.prepare(prompt)  # drops the chain again: the committed prefix is kept
        return dt

    return verify_once


def _measure_once(target, sizes, repeats: int, key: dict | None) -> CostCurve:
    verify_once = _chain_timer(target, max(sizes))
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    verify_once(max(sizes))  # warm-up: first use allocates compute buffers
    for _ in range(repeats):
        for n in sizes:
            samples[n].append(verify_once(n))
    target.reset()
    return CostCurve({n: statistics.median(v) for n, v in samples.items()}, samples, key or {})

