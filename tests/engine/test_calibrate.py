"""Verify cost calibration: the curve's math, and the per-model/settings cache."""
import json
import time

import pytest

import engine.calibrate as cal
from engine.calibrate import CostCurve, calibrate
from engine.target import Target, TargetSettings

SIZES = (1, 2, 4, 8)


def test_curve_interpolates_and_gives_the_speedup_limit():
    c = CostCurve({1: 0.01, 2: 0.015, 4: 0.02, 8: 0.04})
    assert c.t(3) == pytest.approx(0.0175)
    assert c.t(16) == pytest.approx(0.08)        # the last segment's slope, extended
    assert c.ratio(4) == pytest.approx(2.0)
    assert c.limit(4) == pytest.approx(2.0)      # 4 tokens for the price of 2 steps
    assert c.limit(8) == pytest.approx(2.0)


def test_curve_json_round_trip_and_bare_mapping(tmp_path):
    c = CostCurve({1: 0.01, 4: 0.02}, {1: [0.01], 4: [0.02]}, {"model": "m"})
    assert CostCurve.from_json(json.loads(json.dumps(c.to_json()))) == c
    p = tmp_path / "gpu.json"
    p.write_text('{"1": 0.005, "64": 0.006}')
    assert CostCurve.read(p).limit(64) == pytest.approx(64 * 0.005 / 0.006)
    p.write_text('{"2": 0.005}')
    with pytest.raises(ValueError, match="t\\(1\\)"):
        CostCurve.read(p)
    p.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a cost curve"):
        CostCurve.read(p)


def test_cache_hit_and_miss(tiny_gguf, monkeypatch):
    calls = []
    real = cal.measure

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(cal, "measure", counting)
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=2)) as t:
        first = calibrate(t, SIZES, repeats=1)
        assert sorted(first.seconds) == list(SIZES) and all(len(v) == 1 for v in first.samples.values())
        assert calibrate(t, SIZES, repeats=1) == first and len(calls) == 1   # hit
        calibrate(t, SIZES, repeats=1, use_cache=False)
        assert len(calls) == 2
        assert t.tokens == []   # measuring leaves the target empty
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=1)) as t:
        calibrate(t, SIZES, repeats=1)   # other threads: another curve
        assert len(calls) == 3
        cal.cache_path({**cal.cache_key(t), "sizes": list(SIZES), "context": cal.CONTEXT_TOKENS}).write_text("{")
        calibrate(t, SIZES, repeats=1)   # a damaged cache file is measured again
        assert len(calls) == 4


def test_rounds_that_disagree_make_a_curve_unstable():
    steady = CostCurve({1: 0.08, 4: 0.18}, {1: [0.08, 0.082, 0.079], 4: [0.18, 0.19, 0.18]})
    loaded = CostCurve({1: 0.08, 4: 0.18}, {1: [0.08, 0.682, 0.079], 4: [0.18, 0.19, 0.18]})
    assert steady.stable and steady.spread == pytest.approx(0.19 / 0.18)   # the worst size
    assert not loaded.stable and loaded.spread == pytest.approx(0.682 / 0.079)
    assert CostCurve({1: 0.08}).stable   # a curve given by hand has no rounds to disagree


def test_a_curve_much_slower_than_the_steps_is_stale():
    under_load = CostCurve({1: 0.682, 4: 1.2})
    assert under_load.stale({1: 0.085})            # single steps at 85 ms against 682 ms
    assert not under_load.stale({1: 0.5, 4: 1.0})  # steps add overhead; nothing says the curve is wrong
    assert not under_load.stale({})
    assert not CostCurve({1: 0.08}).stale({1: 0.3})  # slower steps: load now, not a wrong curve
    assert not CostCurve({1: 0.008}).stale({1: 0.001})  # a tiny model's gaps: scheduler noise, not load


def test_rounds_that_disagree_are_measured_again(tiny_gguf, monkeypatch):
    # other work takes the CPU for one round of the first attempt (a fixed 0.2 s pause on the real
    # llama.cpp pass, so the disagreement does not depend on what else this machine runs)
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=2)) as t:
        passes = []
        real = t.decode_tree

        def decode_tree(trie):
            passes.append(trie)
            if len(passes) == 3:   # after the warm-up, in the first round
                time.sleep(0.2)
            return real(trie)

        monkeypatch.setattr(t, "decode_tree", decode_tree)
        curve = cal.measure(t, SIZES, repeats=3)
    one_attempt = 1 + 3 * len(SIZES)   # the warm-up, then each size once a round
    assert len(passes) in (2 * one_attempt, cal.ATTEMPTS * one_attempt)
    assert max(max(rounds) for rounds in curve.samples.values()) < 0.2   # the loaded attempt was not kept


def _cached(t, seconds, samples):
    key = {**cal.cache_key(t), "sizes": list(SIZES), "context": cal.CONTEXT_TOKENS}
    cal.cache_path(key).parent.mkdir(parents=True, exist_ok=True)
    cal.cache_path(key).write_text(json.dumps(CostCurve(seconds, samples, key).to_json()))
    return key


def test_a_cached_curve_whose_rounds_disagreed_is_used_not_measured_at_every_start(tiny_gguf):
    # it was taken again up to ATTEMPTS times already; on a machine that stays busy, measuring again at
    # every start cost minutes each time (218-320 s seen) and gave no better curve
    # (times within STALE_FLOOR_S of the tiny model's steps, so the single steps timed now cannot call it stale)
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=2)) as t:
        key = _cached(t, {n: 0.005 for n in SIZES}, {n: [0.001, 0.005, 0.009] for n in SIZES})
        curve = calibrate(t, SIZES, repeats=1)
        assert curve.key == key and not curve.stable and curve.t(1) == 0.005


def test_a_cached_curve_far_slower_than_a_step_now_is_measured_again(tiny_gguf):
    # measured under load (seen: t(1) 565 ms cached, 34 ms a step quiet); the cache key cannot tell
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=2)) as t:
        key = _cached(t, {n: 5.0 for n in SIZES}, {})
        fresh = calibrate(t, SIZES, repeats=1)
        assert fresh.samples and fresh.key == key and fresh.t(1) < 1.0
        assert CostCurve.read(cal.cache_path(key)) == fresh and t.tokens == []


def test_a_stale_curve_is_refreshed_from_steps_and_a_fitting_one_kept(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=2)) as t:
        key = _cached(t, {n: 5.0 for n in SIZES}, {})
        old = CostCurve.read(cal.cache_path(key))
        assert cal.refresh_if_stale(t, old, {1: 4.0}) is old      # steps not faster than half the curve
        fresh = cal.refresh_if_stale(t, old, {1: 0.01}, repeats=1)
        assert fresh.samples and fresh.key == key and calibrate(t, SIZES, repeats=1) == fresh   # measured, cached
        again = cal.recalibrate(t, SIZES, repeats=1)               # on demand, whatever the cache holds
        assert again != fresh and CostCurve.read(cal.cache_path(key)) == again
