"""engine.ready_method on the tiny target with untrained drafters: the pair loads once, a method is
kept across requests (so a follow-up turn reuses the cached prefix), the cost curve is read or measured."""
import json

import pytest

import engine.drafters.pair as pair
from engine.calibrate import CONTEXT_TOKENS, SIZES, CostCurve, cache_key, cache_path
from engine.events import Finished
from engine.generate import generate
from engine.ready_method import SHIPPED, ReadyMethod, cached_curve
from engine.target import Target, TargetSettings


@pytest.fixture
def target(endless_gguf):
    with Target.load(endless_gguf, TargetSettings(n_ctx=1024, n_threads=1)) as t:
        yield t


@pytest.fixture
def pair_loads(monkeypatch):
    loads = []
    real = pair.load_pair

    def load_pair(*args):
        loads.append(args[1:])
        return real(*args)

    monkeypatch.setattr(pair, "load_pair", load_pair)
    return loads


def test_the_pair_loads_once_for_every_method_and_a_method_is_kept(target, tiny_drafters, pair_loads):
    folders = tuple(map(str, tiny_drafters))
    with ReadyMethod(target) as ready:
        d2sd = ready.get("d2sd", {"gamma": 4, "k": 2}, folders)
        assert ready.get("d2sd", {"k": 2, "gamma": 4}, folders) is d2sd
        assert target.settings.capture_layers == d2sd.drafter.config.target_layer_ids
        dflash = ready.get("dflash", {"gamma": 4}, folders)
        assert dflash is not d2sd and dflash.drafter is d2sd.drafter
        assert ready.get("ar") is not None and ready.get("d2sd", {"gamma": 4, "k": 2}, folders) is not d2sd
        assert len(pair_loads) == 1
        ready.get("dflash", {"gamma": 4}, (folders[0], ""))  # other folders: another pair
        assert len(pair_loads) == 2 and pair_loads[-1] == (tiny_drafters[0], None)


def test_the_shipped_pair_is_found_for_the_target(target, tiny_drafters, pair_loads, monkeypatch):
    monkeypatch.setattr(pair, "pair_for", lambda path: tiny_drafters)
    with ReadyMethod(target) as ready:
        assert ready.get("d2sd", {"gamma": 4}, SHIPPED).vp is not None
    assert pair_loads == [tuple(tiny_drafters)]


def test_a_drafter_method_without_drafters_is_a_clear_error(target):
    with ReadyMethod(target) as ready, pytest.raises(ValueError, match="needs a drafter"):
        ready.get("dflash")


def test_a_follow_up_turn_reuses_the_target_and_drafter_prefix(target, tiny_drafters):
    with ReadyMethod(target) as ready:
        messages = [{"role": "user", "content": "hello there"}]
        method = ready.get("d2sd", {"gamma": 4, "k": 2}, tuple(map(str, tiny_drafters)))
        first = list(generate(target, target.chat_tokens(messages), method, max_tokens=6))[-1]
        messages += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "and more"}]
        method = ready.get("d2sd", {"gamma": 4, "k": 2}, tuple(map(str, tiny_drafters)))
        second = list(generate(target, target.chat_tokens(messages), method, max_tokens=6))[-1]
    assert isinstance(second, Finished)
    assert second.stats.reused_tokens >= first.stats.prompt_tokens - 1


def test_auto_measures_the_cost_curve_once_then_reads_it(target, tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))  # the session's cache holds no curve for others
    measured = []
    assert cached_curve(target) is None
    with ReadyMethod(target, on_measure=lambda: measured.append(1)) as ready:
        curve = ready.curve()
        assert ready.get("auto").cost.curve is curve and measured == [1]
    assert _cached_file(target) == curve
    # a cached curve is read, not measured again (a steady one, so the test does not depend on the tiny
    # model's sub-millisecond rounds)
    _cache(target, curve.t(1), [curve.t(1)] * 3)
    with ReadyMethod(target, on_measure=lambda: measured.append(2)) as ready:
        assert ready.get("auto").cost.curve.t(1) == curve.t(1) and measured == [1]


def _key(target) -> dict:
    return {**cache_key(target), "sizes": list(SIZES), "context": CONTEXT_TOKENS}


def _cached_file(target) -> CostCurve:
    """The cache file as it is, stable or not."""
    return CostCurve.read(cache_path(_key(target)))


def _cache(target, seconds: float, samples: list[float]) -> None:
    curve = CostCurve({n: seconds for n in SIZES}, {n: samples for n in SIZES}, _key(target))
    cache_path(curve.key).parent.mkdir(parents=True, exist_ok=True)
    cache_path(curve.key).write_text(json.dumps(curve.to_json()))


def test_a_cached_curve_is_read_whether_or_not_its_rounds_agreed(target, tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))
    _cache(target, 0.01, [0.01, 0.01, 0.05])  # slowest round 5x the fastest: other work was running
    assert cached_curve(target).t(1) == 0.01   # refreshed from real steps if it was wrong (below)


def test_a_curve_measured_under_load_is_measured_again_after_auto_answers(target, tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))
    _cache(target, 10.0, [10.0, 10.0, 10.0])  # steadily slow: the whole measurement ran under load
    measured = []
    with ReadyMethod(target, on_measure=lambda: measured.append(1)) as ready:
        auto = ready.get("auto")
        assert auto.cost.curve.t(1) == 10.0 and measured == []
        list(generate(target, target.tokenize("hello world"), auto, max_tokens=4))  # steps of ms, not 10 s
        again = ready.get("auto")
    assert measured == [1] and again is not auto and again.cost.curve.t(1) < 5.0
    assert _cached_file(target).t(1) == again.cost.curve.t(1)
