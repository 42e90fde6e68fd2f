"""Verify cost calibration: the curve's math, and the per-model/settings cache."""
import json

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
