"""ardraft on the tiny target drafting for itself: the output equals plain greedy decoding (near-tie
rule) and almost every draft is accepted; a draft model with another vocabulary is refused."""
import pytest

from engine.events import Finished
from engine.generate import generate
from engine.methods.ardraft import ARDraft, VocabMismatch
from engine.target import Target, TargetSettings
from tests.engine.greedy_check import first_divergence, greedy_reference
from tests.tiny_gguf import WORDS, write_tiny_gguf

SETTINGS = TargetSettings(n_ctx=512, n_threads=2)


@pytest.fixture(scope="module")
def target(tiny_gguf):
    with Target.load(tiny_gguf, SETTINGS) as t:
        yield t


@pytest.fixture(scope="module")
def self_draft(target, tiny_gguf):
    method = ARDraft.load(target, tiny_gguf, gamma=4)
    yield method
    method.close()


def test_self_drafting_matches_plain_greedy_with_high_acceptance(target, self_draft):
    prompt = target.tokenize("def hello world")
    target.reset()
    ref, margins = greedy_reference(target, prompt, 48)
    target.reset()
    fin = list(generate(target, prompt, self_draft, max_tokens=48))[-1]
    assert isinstance(fin, Finished)
    first_divergence(ref[:len(fin.token_ids)], margins, fin.token_ids)
    assert fin.stats.proposed > 0
    assert fin.stats.acceptance_rate > 0.8
    assert fin.stats.tau > 2.5


def test_draft_context_follows_the_committed_text_across_runs(target, self_draft):
    for text in ("print the data", "print the value"):
        target.reset()
        prompt = target.tokenize(text)
        list(generate(target, prompt, self_draft, max_tokens=12))
        # the draft holds a prefix of what the target committed plus its own last drafts
        committed = target.tokens
        assert self_draft.draft.tokens[:len(prompt) - 1] == committed[:len(prompt) - 1]


def test_p_min_cuts_the_chain_where_the_draft_is_unsure(target, tiny_gguf):
    method = ARDraft.load(target, tiny_gguf, gamma=6, p_min=0.999)
    try:
        target.reset()
        anchor, _ = target.prepare(target.tokenize("hello"))
        trie = method.propose(target.tokens, anchor).trie
        assert len(trie) < 7 and all(c >= 0.999 for c in trie.confidences[1:])
    finally:
        method.close()


def test_another_vocabulary_is_refused_clearly(target, tmp_path):
    other = write_tiny_gguf(tmp_path / "other.gguf", words=WORDS[::-1])
    with pytest.raises(VocabMismatch, match="same tokenizer"):
        ARDraft.load(target, other)


def test_bad_parameters(target, tiny_gguf):
    with pytest.raises(ValueError, match="gamma"):
        ARDraft.load(target, tiny_gguf, gamma=0)
