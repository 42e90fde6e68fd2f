"""The bench's per-method figures: pooled over runs, each run counted as its RunStats counts it."""
import pytest

from engine.bench.harness import Results, Run
from engine.bench.summary import summarize
from engine.events import RunStats


def run(method, new_tokens, passes, stop_reason, tries=(), hits=(), proposed=0, accepted=0, decode_s=1.0):
    stats = RunStats(method=method, prompt_tokens=10, reused_tokens=0, new_tokens=new_tokens,
                     target_passes=passes, proposed=proposed, accepted=accepted, ttft_s=0.1,
                     total_s=decode_s + 0.1, prefill_s=0.1, draft_s=0.0, vp_s=0.0, verify_s=decode_s,
                     other_s=0.0, stop_reason=stop_reason, accept_tries=list(tries), accept_hits=list(hits))
    return Run(method, "p", "greedy", stats.to_dict(), "", [], [], [])


def summaries(*runs):
    res = Results(runs=list(runs), methods=list(dict.fromkeys(r.method for r in runs)), modes=["greedy"])
    return {s.method: s for s in summarize(res)}


def test_plain_decoding_has_tau_one_whether_answers_end_on_their_own_or_at_the_limit():
    got = summaries(run("ar", 6, 7, "eos"), run("ar", 20, 20, "length"))["ar"]
    assert got.tau == 1.0 and got.tokens == 26 and got.passes == 27


def test_tau_and_acceptance_pool_what_each_run_counts():
    # a tree method: 9 drafts a pass, judged along the accepted path by depth
    a = run("d2sd", 10, 4, "eos", tries=[4, 3, 1], hits=[3, 1, 0], proposed=36, accepted=4)
    b = run("d2sd", 20, 10, "length", tries=[10, 5], hits=[5, 3], proposed=90, accepted=8)
    got = summaries(a, b)["d2sd"]
    assert got.tau == pytest.approx((10 + 1 + 20) / 14)
    assert got.acceptance == pytest.approx((3 + 1 + 5 + 3) / (4 + 3 + 1 + 10 + 5))   # not 12/126
    assert got.accept_by_depth == pytest.approx([8 / 14, 4 / 8, 0.0])
    for r in (a, b):   # one run alone reads as the app shows it
        alone, stats = summaries(r)["d2sd"], RunStats.from_dict(r.stats)
        assert (alone.tau, alone.acceptance) == pytest.approx((stats.tau, stats.acceptance_rate))
