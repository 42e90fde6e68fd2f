"""Drafter methods on the tiny target with untrained drafters: lossless whatever the drafts are."""
import pytest

from engine.drafters import Drafter, DrafterConfig, SharedHead
from engine.events import DRAFTER1, VP, Finished
from engine.generate import generate
from engine.methods import make_method
from engine.methods.d2sd_cycle import draft_block, reanchor_points
from engine.target import Target, TargetSettings
from engine.verify import SamplerSettings
from tests.engine.greedy_check import first_divergence, greedy_reference


@pytest.fixture(scope="module")
def target(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=1024, n_threads=2)) as t:
        yield t


def tiny_drafter(head, seed):
    config = DrafterConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=head.info.n_vocab, block_size=8,
                           mask_token_id=head.info.n_vocab - 1, target_layer_ids=(0, 1), num_target_layers=3)
    return Drafter.random(config, head, seed=seed, std=0.2)


@pytest.fixture(scope="module")
def drafters(tiny_gguf):
    head = SharedHead.from_gguf(tiny_gguf)
    return tiny_drafter(head, 1), tiny_drafter(head, 2)


def test_paper_vp_rows_keep_drafter1_prefix_and_merge_into_one_trie(target, drafters):
    d1, vp = drafters
    method = make_method("d2sd", target, drafter=d1, vp_drafter=vp, gamma=8, k=3, alt=0)
    prompt = target.tokenize("def hello world")
    anchor, reused = target.prepare(prompt, max_reuse=method.context_len())
    method.start(prompt, reused, target.features)
    proposal = method.propose(target.tokens, anchor)
    trie = proposal.trie
    assert proposal.vp_s > 0  # the VP pass is timed apart from drafter 1's
    chain = [0]
    while any(trie.sources[c] == DRAFTER1 for c in range(len(trie)) if trie.parents[c] == chain[-1]):
        chain.append(next(c for c in range(len(trie)) if trie.parents[c] == chain[-1] and trie.sources[c] == DRAFTER1))
    assert len(chain) == 8  # drafter 1's block: anchor + 7 drafts
    for node in range(len(trie)):
        if trie.sources[node] == VP:
            path = trie.path_to(node)
            first_vp = next(i for i, n in enumerate(path) if trie.sources[n] == VP)
            assert path[:first_vp] == chain[:first_vp], "a VP row must extend drafter 1's prefix untouched"
    assert len(trie) <= 1 + 7 + 3 * 7


def test_default_rows_branch_off_drafter1_with_its_runner_ups(target, drafters):
    d1, vp = drafters
    method = make_method("d2sd", target, drafter=d1, vp_drafter=vp, gamma=8, k=3)
    prompt = target.tokenize("def hello world")
    anchor, reused = target.prepare(prompt, max_reuse=method.context_len())
    method.start(prompt, reused, target.features)
    block = draft_block(d1, method.block(anchor), top=4)
    points = reanchor_points(block, 3, runner_ups=True)
    trie = method.propose(target.tokens, anchor).trie
    for i, j in points:
        node = 0
        for token in block.tokens[:i]:  # drafter 1's chain up to the branch point
            node = trie.child(node, int(token))
        branch = trie.child(node, int(block.ranked[i, j]))
        assert branch is not None and trie.sources[branch] == DRAFTER1
        if i + 1 < len(block.tokens):  # the VP drafter continues after the runner-up
            assert [trie.sources[c] for c in range(len(trie)) if trie.parents[c] == branch] == [VP]


def test_each_method_keeps_its_own_row_count_unless_told(target, drafters):
    d1, vp = drafters
    assert make_method("d2sd", target, drafter=d1, vp_drafter=vp).k == 8   # runner-up rows: 8 pay at 32 nodes
    assert make_method("naive", target, drafter=d1).k == 4
    assert make_method("d2sd", target, drafter=d1, vp_drafter=vp, k=3).k == 3
    assert make_method("naive", target, drafter=d1, k=5).k == 5


@pytest.mark.parametrize("name, params", [
    ("dflash", {}), ("naive", {"k": 3}), ("ddtree", {"budget": 20}), ("d2sd", {"k": 3}), ("d2sd-reuse", {"k": 2}),
    ("d2sd", {"k": 3, "alt": 0}),
])
def test_every_drafter_method_reproduces_ar_greedy_output(target, drafters, name, params):
    d1, vp = drafters
    method = make_method(name.split("-")[0], target, drafter=d1,
                         vp_drafter=None if name.endswith("reuse") else vp, gamma=8, **params)
    for text in ["def data list", "hello world hello world"]:
        prompt = target.tokenize(text)
        target.reset()
        ref, margins = greedy_reference(target, prompt, 40)
        events = list(generate(target, prompt, method, max_tokens=40))
        assert isinstance(events[-1], Finished)
        ids = events[-1].token_ids
        assert first_divergence(ref[: len(ids)], margins, ids) is None


def test_drafter_context_follows_the_target_across_turns(target, drafters):
    d1, _ = drafters
    method = make_method("dflash", target, drafter=d1, gamma=6)
    first = target.tokenize("hello world")
    fin = list(generate(target, first, method, max_tokens=10))[-1]
    assert d1.context_len == len(target.tokens)
    second = first + fin.token_ids + target.tokenize(" return data", special=False)
    fin2 = list(generate(target, second, method, max_tokens=10))[-1]
    assert fin2.stats.reused_tokens > len(first)
    assert d1.context_len == len(target.tokens)


def test_sampling_acceptance_is_consistent(target, drafters):
    d1, vp = drafters
    method = make_method("d2sd", target, drafter=d1, vp_drafter=vp, gamma=8, k=3)
    fin = list(generate(target, target.tokenize("print the list"), method,
                        SamplerSettings(temperature=1.0, seed=3), max_tokens=60))[-1]
    s = fin.stats
    assert s.accepted <= s.proposed and s.new_tokens <= s.accepted + s.target_passes
    assert sum(s.accept_hits) == s.accepted and all(h <= t for h, t in zip(s.accept_hits, s.accept_tries))


def test_drafter_method_without_drafter_is_a_clear_error(target):
    with pytest.raises(ValueError, match="needs a drafter"):
        make_method("d2sd", target)
