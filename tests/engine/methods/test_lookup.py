import numpy as np

from engine.methods.lookup import PromptLookup


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
    trie = PromptLookup(gamma=4).propose([1, 2, 3, 4, 1, 2], 3)
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
