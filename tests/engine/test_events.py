"""The run statistics' derived figures: τ and acceptance, as the app, the CLI and the bench show them."""
from __future__ import annotations

import pytest

from engine.events import RunStats, TreeView, count_acceptance


def _stats(**kw) -> RunStats:
    base = dict(method="ar", prompt_tokens=10, reused_tokens=0, new_tokens=0, target_passes=0, proposed=0,
                accepted=0, ttft_s=0.1, total_s=1.0, prefill_s=0.1, draft_s=0.0, vp_s=0.0, verify_s=0.8,
                other_s=0.1, stop_reason="length")
    return RunStats(**{**base, **kw})


def test_tau_of_plain_decoding_is_one_when_the_answer_ends_on_its_own():
    # `d2sd chat` with ar printed τ 0.86: 6 tokens in 7 passes, the 7th producing the end token
    assert _stats(new_tokens=6, target_passes=7, stop_reason="eos").tau == 1.0
    assert _stats(new_tokens=6, target_passes=6, stop_reason="length").tau == 1.0
    assert _stats(new_tokens=0, target_passes=0, stop_reason="cancel").tau == 0.0


def test_acceptance_is_measured_along_the_accepted_path_not_over_every_branch():
    # a tree of 9 drafts, two per depth plus a branch; the target took depths 1 and 2 of one branch
    tree = TreeView(tokens=list(range(10)), parents=[-1, 0, 0, 1, 1, 3, 3, 0, 7, 7],
                    sources=["target"] + ["vp"] * 9, confidences=[1.0] * 10, accepted=[0, 1, 3])
    tries, hits = [], []
    count_acceptance(tries, hits, tree)
    assert (tries, hits) == ([1, 1, 1], [1, 1, 0])
    stats = _stats(method="d2sd", new_tokens=3, target_passes=1, proposed=9, accepted=2,
                   accept_tries=tries, accept_hits=hits)
    assert stats.acceptance_rate == pytest.approx(2 / 3)   # not 2/9
    assert stats.to_dict()["acceptance_rate"] == pytest.approx(2 / 3)
    assert stats.tau == 3.0


def test_saved_stats_read_back_as_the_same_run():
    stats = _stats(method="d2sd", new_tokens=5, target_passes=2, proposed=9, accepted=3, stop_reason="eos",
                   accept_tries=[2, 1], accept_hits=[2, 1])
    back = RunStats.from_dict(stats.to_dict())   # the derived figures in the dict are not fields
    assert back == stats and (back.produced, back.tau) == (6, 3.0)
