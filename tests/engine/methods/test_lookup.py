import numpy as np
import pytest

from engine.generate import generate
from engine.methods.lookup import MAX_GAMMA, PromptLookup
from engine.target import Target, TargetSettings


def test_longest_recent_ngram_wins():
    m = PromptLookup(gamma=3, max_ngram=2)
    #            0  1  2  3  4  5  6  7  8  9
    seq = [5, 6, 7, 8, 1, 6, 7, 9, 2, 6, 7]
    # bigram (6, 7) last occurred at 5..6 (followed by 9, 2, 6) before the current tail
    assert m.continuation(seq) == [9, 2, 6]


def test_falls_back_to_shorter_ngram_and_to_nothing():
    m = PromptLookup(gamma=2, max_ngram=3)
    assert m.match([1, 2, 3, 4, 3]) == (1, [4, 3])   # the n-gram length says how much evidence matched
    assert m.match([1, 2, 3, 4, 1, 2, 3]) == (3, [4, 1])
    assert m.match([1, 2, 3]) == (0, [])


def test_proposes_a_chain_rooted_at_the_anchor():
    trie = PromptLookup(gamma=4).propose([1, 2, 3, 4, 1, 2], 3).trie
    assert trie.tokens == [3, 4, 1, 2, 3] and trie.sources[1:] == ["lookup"] * 4


def brute_force(seq, gamma=4, max_ngram=3):
    for n in range(min(max_ngram, len(seq) - 1), 0, -1):
        for start in range(len(seq) - n - 1, -1, -1):
            if seq[start:start + n] == seq[-n:]:
                return seq[start + n:start + n + gamma]
    return []


def test_incremental_index_matches_a_brute_force_search_as_text_grows():
    rng = np.random.default_rng(0)
    seq = [int(t) for t in rng.integers(0, 6, 300)]
    grown = PromptLookup(gamma=4)
    for end in range(2, len(seq)):
        assert grown.continuation(seq[:end]) == brute_force(seq[:end])
    assert grown.continuation(seq[:50]) == brute_force(seq[:50])  # a shorter text is indexed anew


def test_gamma_is_capped_to_what_one_verify_pass_holds():
    m = PromptLookup(gamma=1000)
    seq = list(range(500)) * 2 + [0]   # a long repeat: everything after 0 follows again
    chain = m.continuation(seq)
    assert len(chain) == MAX_GAMMA and chain[:3] == [1, 2, 3]


@pytest.mark.parametrize("gamma", [1.5, "4", True, None])
def test_gamma_of_the_wrong_type_is_refused_at_construction(gamma):
    with pytest.raises(ValueError, match="lookup's gamma must be an integer"):
        PromptLookup(gamma=gamma)


def test_a_long_repeat_with_a_huge_gamma_fits_the_smallest_batch(tiny_gguf):
    prompt = list(range(10, 210)) + [10, 11, 12]   # the tail repeats the start: a 197-token chain follows it
    with Target.load(tiny_gguf, TargetSettings(n_ctx=1024, n_batch=64, n_threads=1)) as target:
        done = list(generate(target, prompt, PromptLookup(gamma=1000), max_tokens=8))[-1]
        assert target.n_batch == 64
    assert done.stats.new_tokens == 8


def test_make_method_caps_gamma_to_the_targets_own_batch(tiny_gguf):
    from engine.methods import make_method

    assert make_method("lookup", gamma=200).gamma == MAX_GAMMA  # no target: the smallest batch any holds
    for n_batch, cap in ((512, 200), (96, 95)):
        with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_batch=n_batch, n_threads=1)) as t:
            assert make_method("lookup", t, gamma=200).gamma == min(200, t.n_batch - 1) == cap
