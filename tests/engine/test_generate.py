"""The streaming loop on the tiny target: stops, cancel, stats, and methods agreeing with `ar`."""
import threading

import pytest

from engine.calibrate import CostCurve
from engine.events import Finished, StepStats, TextDelta
from engine.generate import generate
from engine.methods import make_method
from engine.target import Target, TargetSettings
from engine.verify import SamplerSettings
from tests.engine.greedy_check import first_divergence, greedy_reference


@pytest.fixture(scope="module")
def target(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=1024, n_threads=2)) as t:
        yield t


def run(target, prompt, method="ar", **kw):
    events = list(generate(target, prompt, make_method(method, target), **kw))
    assert isinstance(events[-1], Finished)
    return events


def test_events_and_stats_add_up(target):
    prompt = target.tokenize("def hello world")
    events = run(target, prompt, "lookup", max_tokens=40)
    fin = events[-1]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    steps = [e for e in events if isinstance(e, StepStats)]
    assert fin.stats.new_tokens == len(fin.token_ids) == sum(len(d.token_ids) for d in deltas) <= 40
    assert "".join(d.text for d in deltas) == fin.text
    assert all(len(d.token_ids) == len(d.provenance) for d in deltas)
    assert fin.stats.target_passes == len(steps)
    assert fin.stats.accepted == sum(s.accepted for s in steps)
    assert fin.stats.proposed == sum(s.proposed for s in steps)
    # τ counts what the passes produced: every streamed token, and the end token if one ended the answer;
    # tokens a pass produced past the end, a stop or the limit are not streamed and not counted
    produced = sum(s.emitted for s in steps) + (fin.stats.stop_reason == "eos")
    assert fin.stats.tau == pytest.approx(produced / fin.stats.target_passes)
    assert fin.stats.tau <= (fin.stats.accepted + fin.stats.target_passes) / fin.stats.target_passes
    assert sum(fin.stats.accept_hits) == fin.stats.accepted
    for s in steps:
        assert s.tree.accepted[0] == 0 and len(s.tree.accepted) == s.accepted + 1


def test_max_tokens_and_stop_strings(target):
    prompt = target.tokenize("print the data")
    fin = run(target, prompt, max_tokens=25)[-1]
    assert fin.stats.stop_reason in ("length", "eos")
    if fin.stats.stop_reason == "length":
        assert fin.stats.new_tokens == 25
    full = fin.text
    assert len(full) > 4
    stop = full[len(full) // 2: len(full) // 2 + 2]
    cut = run(target, prompt, max_tokens=25, stop=[stop])[-1]
    assert cut.stats.stop_reason == "stop"
    assert cut.text == full[: full.find(stop)]


def test_cancel_from_another_thread_ends_within_one_step(target):
    prompt = target.tokenize("hello")
    cancel = threading.Event()
    steps = 0
    for ev in generate(target, prompt, make_method("ar"), max_tokens=400, cancel=cancel):
        if isinstance(ev, StepStats):
            steps += 1
            if steps == 3:
                setter = threading.Thread(target=cancel.set)
                setter.start()
                setter.join()  # set before the next step begins, however loaded the machine
        if isinstance(ev, Finished):
            assert ev.stats.stop_reason == "cancel"
            assert ev.stats.target_passes <= 4


def test_lookup_greedy_equals_ar_greedy(target):
    for text in ["def data list int str data list int", "hello world hello world hello"]:
        prompt = target.tokenize(text)
        target.reset()
        ref, margins = greedy_reference(target, prompt, 60)
        ids = run(target, prompt, "lookup", max_tokens=60)[-1].token_ids
        # eos may end the speculative run early; it ends the reference only by the token count
        assert first_divergence(ref[: len(ids)], margins, ids) is None


def test_a_chain_method_runs_on_one_sequence_and_a_tree_method_on_all(target):
    prompt = target.tokenize("def hello world")
    run(target, prompt, "ar", max_tokens=4)
    assert target.n_seq_max == 1
    auto = generate(target, prompt, make_method("auto", target, curve=CostCurve({1: 0.01, 64: 0.012})), max_tokens=4)
    assert isinstance(list(auto)[-1], Finished) and target.n_seq_max == target.settings.n_seq_max


def test_sampling_is_reproducible_with_a_seed(target):
    prompt = target.tokenize("hello")
    s = SamplerSettings(temperature=0.9, seed=7)
    a = run(target, prompt, "lookup", sampler=s, max_tokens=30)[-1].token_ids
    b = run(target, prompt, "ar", sampler=s, max_tokens=30)[-1].token_ids
    assert a == run(target, prompt, "lookup", sampler=s, max_tokens=30)[-1].token_ids
    assert len(a) > 0 and len(b) > 0


def test_a_full_context_ends_the_answer_and_keeps_it(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=64, n_threads=1, n_seq_max=4)) as small:
        prompt = small.tokenize("hello world " * 4)
        n = small.n_ctx
        events = list(generate(small, prompt, make_method("lookup", gamma=8), max_tokens=10 * n))
        fin = events[-1]
        assert fin.stats.stop_reason == "context"
        assert len(prompt) - 1 + fin.stats.new_tokens == n  # every cell used; the last token is emitted only
        assert fin.text == "".join(e.text for e in events if isinstance(e, TextDelta))
