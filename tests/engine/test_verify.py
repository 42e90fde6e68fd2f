import math
from collections import Counter
from functools import lru_cache

import numpy as np
import pytest

from engine.tree import Trie
from engine.verify import Sampler, SamplerError, SamplerSettings, accept, top_k_ids

V = 4


@lru_cache(maxsize=None)
def target_logits(context: tuple[int, ...]) -> np.ndarray:
    """A synthetic target: a fixed, context-dependent distribution over V tokens."""
    rng = np.random.default_rng(abs(hash(context)) % (2**32))
    return rng.standard_normal(V) * 1.5


@lru_cache(maxsize=None)
def draft_trie(context: tuple[int, ...]) -> Trie:
    """A deterministic multi-branch trie rooted at the last context token (shared prefixes included)."""
    trie = Trie.rooted(context[-1])
    first = len(context) % V
    trie.add_row([first, 1, 2], "drafter1")
    trie.add_row([first, 3], "vp")
    trie.add_row([(first + 1) % V, 0], "vp")
    return trie


@lru_cache(maxsize=None)
def verified_trie(context: tuple[int, ...]) -> tuple[Trie, np.ndarray]:
    """The trie and the target's logits at each of its nodes, as one verify pass would return them."""
    trie = draft_trie(context)
    logits = np.stack([target_logits(context[:-1] + tuple(trie.tokens[i] for i in trie.path_to(n)))
                       for n in range(len(trie))])
    return trie, logits


def sample_sequence(sample: Sampler, length: int) -> tuple[int, ...]:
    """Speculative generation of `length` tokens: walk verified tries until enough tokens are emitted."""
    context: tuple[int, ...] = (0,)
    out: list[int] = []
    while len(out) < length:
        trie, logits = verified_trie(context)
        walk = accept(trie, logits, sample)
        out.extend(walk.tokens)
        context = context + tuple(walk.tokens)
    return tuple(out[:length])


def exact_probability(settings: SamplerSettings, seq: tuple[int, ...]) -> float:
    s = Sampler(settings)
    context, p = (0,), 1.0
    for tok in seq:
        ids, probs = s.distribution(target_logits(context))
        p *= float(dict(zip(ids.tolist(), probs.tolist())).get(tok, 0.0))
        context = context + (tok,)
    return p


def chi_square_critical(df: int, z: float = 3.09) -> float:
    """Wilson–Hilferty upper quantile of chi-square (z = 3.09: p = 0.001)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


@pytest.mark.parametrize("settings", [
    SamplerSettings(temperature=0.8, top_k=0, top_p=1.0, min_p=0.0, seed=1),
    SamplerSettings(temperature=1.3, top_k=3, top_p=0.9, min_p=0.05, seed=2),
])
def test_acceptance_walk_reproduces_the_target_distribution(settings):
    n, length = 100_000, 3
    sample = Sampler(settings)
    counts = Counter(sample_sequence(sample, length) for _ in range(n))
    cells = [(seq, exact_probability(settings, seq)) for seq in np.ndindex(*(V,) * length)]
    cells = [(tuple(int(t) for t in seq), p) for seq, p in cells]
    assert sum(counts[s] for s, p in cells if p == 0) == 0, "a filtered-out token was emitted"
    live = [(s, p) for s, p in cells if p * n >= 5]
    stat = sum((counts[s] - n * p) ** 2 / (n * p) for s, p in live)
    assert math.isclose(sum(p for _, p in cells), 1.0, rel_tol=1e-9)
    assert stat < chi_square_critical(len(live) - 1), f"chi2={stat:.1f} over {len(live)} cells"


def test_greedy_walk_follows_matching_children_and_ends_with_the_target_token():
    trie = Trie.rooted(9)
    row = trie.add_row([1, 2, 3], "drafter1")
    logits = np.zeros((len(trie), V))
    logits[0, 1] = logits[row[0], 2] = 5  # accept 1 and 2
    logits[row[1], 0] = 5                 # target wants 0 where the draft says 3
    walk = accept(trie, logits, Sampler(SamplerSettings()))
    assert walk.path == [0, row[0], row[1]]
    assert walk.tokens == [1, 2, 0]
    assert walk.provenance == ["drafter1", "drafter1", "target"]


@pytest.mark.parametrize("kwargs", [
    {"temperature": -0.1}, {"temperature": float("nan")}, {"temperature": float("inf")},
    {"top_k": -1}, {"top_k": 2.5}, {"top_p": 0.0}, {"top_p": 1.5}, {"min_p": 1.0}, {"min_p": -0.2},
    {"seed": -3},
])
def test_invalid_sampler_values_are_refused_with_the_name(kwargs):
    with pytest.raises(SamplerError, match=next(iter(kwargs))):
        SamplerSettings(**kwargs)


def test_filters_keep_what_they_promise():
    logits = np.array([3.0, 2.0, 1.0, -5.0, 0.5])
    ids, p = Sampler(SamplerSettings(temperature=1.0, top_k=2, top_p=1.0, min_p=0.0)).distribution(logits)
    assert ids.tolist() == [0, 1] and math.isclose(p.sum(), 1.0)
    ids, _ = Sampler(SamplerSettings(temperature=1.0, top_k=0, top_p=1.0, min_p=0.01)).distribution(logits)
    assert 3 not in ids.tolist()
    ids, _ = Sampler(SamplerSettings(temperature=1.0, top_k=0, top_p=0.5, min_p=0.0)).distribution(logits)
    assert ids.tolist() == [0]


def test_top_k_candidates_are_the_k_best_of_the_whole_row_peaked_or_flat():
    sampler = Sampler(SamplerSettings(temperature=0.8, top_k=40, top_p=1.0, min_p=0.0, seed=0))
    rng = np.random.default_rng(0)
    for scale in (0.01, 1.0, 8.0, 100.0):      # flat rows, and rows where a few ids stand far above the rest
        row = (rng.standard_normal(151936) * scale).astype(np.float32)
        ids, _ = sampler.distribution(row)
        assert set(ids) == set(np.argsort(-row, kind="stable")[:40])
    for n, k in ((151936, 40), (1000, 3), (1000, 8), (300, 40), (129, 1)):  # other sizes, most with a tail past the last block
        row = rng.standard_normal(n).astype(np.float32)
        row[-1] = 50.0  # the tail beyond the last whole block holds the best id
        assert set(top_k_ids(row, k)) == set(np.argsort(-row, kind="stable")[:k])
