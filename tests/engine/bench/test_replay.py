"""The replay repeats a real greedy run step for step, without its verify passes."""
import pytest

from engine.drafters import SharedHead
from engine.drafters.cache import file_sha256
from engine.events import Finished, StepStats
from engine.generate import generate
from engine.methods import make_method
from engine.bench.replay import replay
from engine.target import Target, TargetSettings
from engine.train import data as data_stage
from tests.engine.methods.test_drafting import tiny_drafter

PROMPTS = ["def data list", "hello world hello world hello world", "print the list"]


@pytest.mark.parametrize("name, params", [("dflash", {}), ("d2sd", {"k": 3}), ("ddtree", {"budget": 12})])
def test_replay_matches_a_real_greedy_run(tiny_gguf, tmp_path, name, params):
    head = SharedHead.from_gguf(tiny_gguf)
    d1, vp = tiny_drafter(head, 1), tiny_drafter(head, 2)
    folder = tmp_path / "answers"
    settings = data_stage.DataSettings(layers=d1.config.target_layer_ids, slots=3, max_new=30, n_threads=1)
    data_stage.generate(tiny_gguf, file_sha256(tiny_gguf), PROMPTS, folder, settings, max_answer_tokens=10 ** 6,
                        log=lambda m: None)
    ds = data_stage.Dataset(folder)
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=1)) as target:
        method = make_method(name, target, drafter=d1, vp_drafter=vp, gamma=8, **params)
        for i in range(len(ds)):
            tokens, n_prompt, feats = ds.sample(i)
            target.reset()
            events = list(generate(target, [int(t) for t in tokens[:n_prompt]], method,
                                   max_tokens=len(tokens) - n_prompt))
            assert isinstance(events[-1], Finished)
            online = [e.accepted for e in events if isinstance(e, StepStats)]
            assert events[-1].token_ids == [int(t) for t in tokens[n_prompt:]]
            assert replay(method, tokens, n_prompt, feats)["accepted"] == online
