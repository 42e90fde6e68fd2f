"""Drafter methods on the real Qwen target with untrained drafters: lossless regardless of draft quality."""
import numpy as np
import pytest

from engine.drafters import Drafter, DrafterConfig, DraftVocab, default_target_layer_ids
from engine.events import Finished
from engine.generate import generate
from engine.methods import make_method
from engine.target import Target, TargetSettings
from engine.verify import SamplerSettings
from tests.engine.greedy_check import first_divergence, greedy_reference

pytestmark = pytest.mark.qwen
MASK = 151665  # a padding id beyond Qwen2.5's tokenizer: never a real token


@pytest.fixture(scope="module")
def setup(qwen_path, qwen_head):
    info = qwen_head.info
    config = DrafterConfig(hidden_size=info.n_embd, intermediate_size=1024, num_hidden_layers=1,
                           num_attention_heads=12, num_key_value_heads=2, head_dim=128, vocab_size=info.n_vocab,
                           block_size=16, mask_token_id=MASK, target_layer_ids=default_target_layer_ids(info.n_layer),
                           num_target_layers=info.n_layer)
    vocab = DraftVocab(np.arange(8192))  # a small head keeps random drafters cheap on this CPU
    d1 = Drafter.random(config, qwen_head, seed=1, vocab=vocab)
    vp = Drafter.random(config, qwen_head, seed=2, vocab=vocab)
    with Target.load(qwen_path, TargetSettings(n_ctx=1024)) as target:
        yield target, d1, vp


def test_random_drafters_every_method_equals_ar_greedy(setup):
    target, d1, vp = setup
    prompt = target.chat_tokens([{"role": "user", "content": "Write a Python function that adds two numbers."}])
    target.reset()
    ref, margins = greedy_reference(target, prompt, 32)
    report = []
    for name, params in [("dflash", {}), ("naive", {"k": 2}), ("ddtree", {"budget": 12}),
                         ("d2sd", {"k": 2, "vp_drafter": vp}), ("d2sd", {"k": 2})]:
        method = make_method(name, target, drafter=d1, gamma=8, **params)
        fin = list(generate(target, prompt, method, max_tokens=32))[-1]
        assert isinstance(fin, Finished)
        where = first_divergence(ref, margins, fin.token_ids)
        report.append(f"{name}{'+vp' if 'vp_drafter' in params else ''}: tau {fin.stats.tau:.2f}, "
                      f"draft {fin.stats.draft_s:.2f}s verify {fin.stats.verify_s:.2f}s, divergence {where}")
    print("\n" + "\n".join(report))


def test_random_drafters_with_sampling_keep_acceptance_consistent(setup):
    target, d1, vp = setup
    prompt = target.chat_tokens([{"role": "user", "content": "Name three sorting algorithms."}])
    method = make_method("d2sd", target, drafter=d1, vp_drafter=vp, gamma=8, k=2)
    s = list(generate(target, prompt, method, SamplerSettings(temperature=0.8, seed=5), max_tokens=24))[-1].stats
    assert s.new_tokens == 24 or s.stop_reason == "eos"
    assert s.accepted <= s.proposed and sum(s.accept_hits) == s.accepted
    assert s.new_tokens <= s.accepted + s.target_passes
