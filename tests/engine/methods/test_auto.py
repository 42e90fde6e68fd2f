"""`auto`: its choices follow the cost curve and the learnt acceptance, and it stays lossless."""
import numpy as np
import pytest

from engine.calibrate import CostCurve
from engine.drafters import SharedHead
from engine.events import Finished
from engine.generate import generate
from engine.methods import make_method
from engine.methods.auto import Auto, Calibration, LookupScore, chain_value, useful_block
from engine.target import Target, TargetSettings
from tests.engine.greedy_check import first_divergence, greedy_reference
from tests.engine.methods.test_drafting import tiny_drafter

CPU = CostCurve({1: 0.080, 2: 0.125, 4: 0.179, 8: 0.490, 16: 0.536, 64: 1.8})   # measured here (docs/design.md, "The cost curve")
FLAT = CostCurve({1: 0.01, 2: 0.0101, 4: 0.0102, 8: 0.0104, 16: 0.0108, 64: 0.012})   # a GPU-like curve
STEEP = CostCurve({1: 0.01, 2: 0.02, 4: 0.04, 8: 0.08, 16: 0.16, 64: 0.64})           # verify costs n steps


def test_calibration_learns_from_accepted_prefixes():
    cal = Calibration(prior=4.0)
    assert cal.p([0.95])[0] == pytest.approx(0.95)
    for _ in range(200):  # confident drafts that the target always rejects at the first token
        cal.update([0.95, 0.95, 0.95], accepted=0)
    assert cal.p([0.95])[0] < 0.05
    cal.update([0.15, 0.15], accepted=2)
    assert cal.p([0.15])[0] > 0.15


def test_chain_value_cuts_where_tokens_per_second_peak():
    p = np.full(15, 0.9)
    assert chain_value(p, FLAT, 0.0)[0] == 15           # verifying more is nearly free: take it all
    assert chain_value(p, STEEP, 0.0)[0] == 0           # each node costs a step: plain decoding wins
    assert chain_value(np.full(15, 0.01), FLAT, 0.0)[0] <= 1


def test_block_length_follows_the_cost_curve():
    assert useful_block(FLAT, 16) == 16
    assert useful_block(STEEP, 16) == 3
    assert 4 <= useful_block(CPU, 16) <= 7


def test_lookup_score_settles_chains_against_the_text_that_followed():
    score = LookupScore(max_ngram=3, gamma=4, prior=0.5, weight=2.0, fade=1.0)
    score.offer(2, 1, [7, 8, 9, 9])
    score.settle([0, 1])                    # nothing known past the chain's start yet
    assert np.allclose(score.rates(1, 4), 0.5)
    score.settle([0, 1, 7, 8])              # agrees so far: its first two depths score, the chain stays open
    assert np.allclose(score.rates(1, 4), [2 / 3, 2 / 3, 0.5, 0.5])
    score.settle([0, 1, 7, 8, 5, 6])        # refused 9; depth 4 was never tested
    assert np.allclose(score.rates(1, 4), [2 / 3, 2 / 3, 1 / 3, 0.5])
    assert np.allclose(score.rates(3, 4), 0.5)  # other n-gram lengths keep their own counts
    score.settle([0, 1, 7, 8, 5, 6, 1])     # settled chains are not scored twice
    assert np.allclose(score.rates(1, 4), [2 / 3, 2 / 3, 1 / 3, 0.5])


class StepClock:
    """Time as auto sees it in `_replay`: each verify step advances it by `seconds(nodes)`."""

    def __init__(self, seconds):
        self.now, self.seconds = 0.0, seconds

    def __call__(self) -> float:
        return self.now


def _replay(method, prompt, answer, clock=None):
    """Drive `method` along a fixed answer as generate() would, verifying its trees against the answer
    (each step taking `clock`'s time, if given); what it chose at each step."""
    method.start(prompt, 0, None)
    text, p, chosen = list(prompt) + list(answer), len(prompt), []
    while p < len(text):
        trie = method.propose(text[:p], text[p]).trie
        if clock:
            clock.now += clock.seconds(len(trie))
        chain = trie.tokens[1:]
        n = 0
        while n < len(chain) and p + 1 + n < len(text) and chain[n] == text[p + 1 + n]:
            n += 1
        method.observe([text[p]] + chain[:n], None)
        chosen.append(method.choice)
        p += n + 1
    return chosen


def test_auto_drops_lookup_where_its_chains_rarely_match():
    rng = np.random.default_rng(0)
    prose = [int(t) for t in rng.integers(0, 50, 400)]  # a small vocabulary: matches are many, continuations random
    clock = StepClock(CPU.t)
    chosen = _replay(Auto(CPU, clock=clock), prose[:100], prose[100:], clock)
    assert chosen[-200:].count("lookup") <= 4


def test_auto_takes_lookup_where_the_answer_copies_the_prompt():
    rng = np.random.default_rng(1)
    prompt = [int(t) for t in rng.integers(0, 50, 100)]
    answer = prompt[10:90]
    clock = StepClock(CPU.t)
    chosen = _replay(Auto(CPU, clock=clock), prompt, answer, clock)
    assert chosen[4:].count("lookup") == len(chosen) - 4   # after a few tokens of evidence
    assert len(chosen) <= len(answer) / 2     # long chains taken: at least two tokens a step on average


def test_auto_times_its_steps_and_drops_chains_slower_than_calibrated():
    rng = np.random.default_rng(2)
    prompt = [int(t) for t in rng.integers(0, 50, 100)]
    copy = [prompt[(10 + 7 * i) % 95 + j] for i in range(40) for j in range(4)]  # short copied runs
    honest, slow = StepClock(CPU.t), StepClock(lambda n: CPU.t(1) * n)  # verify really costs n steps
    chose = {name: _replay(Auto(CPU, clock=c), prompt, copy, c) for name, c in (("honest", honest), ("slow", slow))}
    assert chose["honest"][-60:].count("lookup") >= 20
    assert chose["slow"][-60:].count("lookup") <= 3    # no chain pays when n nodes cost n single steps


@pytest.fixture(scope="module")
def target(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=1024, n_threads=2)) as t:
        yield t


@pytest.fixture(scope="module")
def drafters(tiny_gguf):
    head = SharedHead.from_gguf(tiny_gguf)
    return tiny_drafter(head, 1), tiny_drafter(head, 2)


@pytest.mark.parametrize("curve", [FLAT, STEEP], ids=["flat", "steep"])
def test_auto_reproduces_ar_greedy_output(target, drafters, curve):
    d1, vp = drafters
    method = make_method("auto", target, drafter=d1, vp_drafter=vp, gamma=8, curve=curve)
    for text in ["def data list", "hello world hello world hello world"]:
        prompt = target.tokenize(text)
        target.reset()
        ref, margins = greedy_reference(target, prompt, 40)
        fin = list(generate(target, prompt, method, max_tokens=40))[-1]
        assert isinstance(fin, Finished)
        assert first_divergence(ref[:len(fin.token_ids)], margins, fin.token_ids) is None


def test_auto_stops_drafting_where_it_cannot_pay(target, drafters, monkeypatch):
    d1, vp = drafters
    # auto times its own steps; on the tiny model they are nearly flat in n, and how flat depends on the
    # machine's load, so each verify pass takes exactly STEEP's time on auto's clock instead
    clock = StepClock(STEEP.t)
    method = Auto(STEEP, d1, vp, gamma=8, clock=clock)
    target.set_capture_layers(d1.config.target_layer_ids)
    real_decode = target.decode_tree

    def decode_in_steep_time(trie, **kw):
        clock.now += STEEP.t(len(trie))
        return real_decode(trie, **kw)

    monkeypatch.setattr(target, "decode_tree", decode_in_steep_time)
    choices, drafted = [], []
    calls = {"n": 0}
    real_draft = method._draft

    def counting(anchor):
        calls["n"] += 1
        return real_draft(anchor)

    method._draft = counting
    target.reset()
    for event in generate(target, target.tokenize("print the list of data"), method, max_tokens=60):
        if not isinstance(event, Finished):
            choices.append(method.choice)
    assert set(choices) <= {"ar", "lookup"}       # with t(n) = n t(1) no draft ever pays
    assert calls["n"] < 20                          # and drafting pauses instead of running every step
    assert method._pending                          # features wait for the next probe, none lost
    assert method.context_len() == len(target.tokens)
    method._flush()
    assert d1.context_len == vp.context_len == len(target.tokens)


def test_auto_uses_drafts_when_verify_is_nearly_free(target, drafters):
    d1, _ = drafters
    method = Auto(FLAT, d1, None, gamma=8)
    target.set_capture_layers(d1.config.target_layer_ids)
    target.reset()
    seen = set()
    for event in generate(target, target.tokenize("def data list"), method, max_tokens=20):
        seen.add(method.choice)
    assert "dflash" in seen


def test_auto_without_drafters_chooses_between_ar_and_lookup(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=1)) as t:
        method = make_method("auto", t, curve=FLAT)
        assert method.drafter is None
        prompt = t.tokenize("hello world hello world hello world")
        ref, margins = greedy_reference(t, prompt, 30)
        t.reset()
        fin = list(generate(t, prompt, method, max_tokens=30))[-1]
        assert first_divergence(ref[:len(fin.token_ids)], margins, fin.token_ids) is None
        assert method.choice in ("ar", "lookup")


def test_auto_without_a_cost_curve_is_an_error_not_a_measurement(tiny_gguf):
    # make_method is a plain constructor: measuring the curve (tens of seconds) is engine.ready_method's job
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=1)) as t:
        with pytest.raises(ValueError, match="auto needs the target's verify cost curve"):
            make_method("auto", t)
