"""Projection of measured acceptance onto a hand-made cost curve."""
import pytest

from engine.bench.projection import project, table
from engine.bench.summary import Summary
from engine.calibrate import CostCurve


def summary(method, by_size, draft_s=0.0):
    return Summary(method=method, mode="greedy", prompts=1, tokens=0, passes=0, decode_s=1.0,
                   tokens_per_s=0.0, tau=0.0, acceptance=0.0, ttft_median_s=0.0, draft_s=draft_s,
                   verify_s=0.0, other_s=0.0, accept_by_depth=[], by_tree_size=by_size)


def test_projection_on_a_flat_and_a_linear_curve():
    ar = summary("ar", {1: [100, 100]})
    # 10 passes of 5 nodes emitting 40 tokens, 10 single-node passes emitting 10
    spec = summary("chain", {5: [10, 40], 1: [10, 10]}, draft_s=0.5)
    flat = CostCurve({1: 0.01, 64: 0.01})     # verifying is free up to 64 nodes
    got = {p.method: p for p in project([ar, spec], flat, here_t1=0.05)}
    assert got["ar"].bound == pytest.approx(1.0)
    assert got["chain"].bound == pytest.approx(50 * 0.01 / (20 * 0.01))          # τ = 2.5
    # drafting 0.5 s here, where a step costs 0.05 s: 0.1 s there
    assert got["chain"].scaled == pytest.approx(50 * 0.01 / (20 * 0.01 + 0.1))
    linear = CostCurve({1: 0.01, 2: 0.02, 8: 0.08})
    assert project([spec], linear, None)[0].bound == pytest.approx(50 / (10 * 5 + 10))
    assert project([spec], linear, None)[0].scaled is None
    assert "chain" in table(project([ar, spec], flat, 0.05), flat)
