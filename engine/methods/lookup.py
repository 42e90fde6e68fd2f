"""`lookup`: prompt-lookup decoding. The latest n-gram of the text is searched earlier in the context;
the tokens that followed its most recent earlier occurrence are proposed as a chain.

An index from each n-gram to where its latest continuation starts grows with the text, so a step
costs the same at token 10 and at token 10,000.
"""
from __future__ import annotations

from engine.events import LOOKUP
from engine.methods.base import Proposal
from engine.tree import Trie


# The longest chain proposed when the target is not known: 63 drafts and the anchor fill the smallest
# batch a target holds (TargetSettings: n_batch >= n_seq_max = 64), so a long repeat never overflows a
# verify pass. Given the target, the cap is its own batch less the anchor.
MAX_GAMMA = 63


class PromptLookup:
    name = "lookup"
    chain = True

    def __init__(self, gamma: int = 8, max_ngram: int = 3, min_ngram: int = 1, cap: int = MAX_GAMMA):
        """`gamma` above `cap` (the drafts one verify pass holds besides the anchor) is capped to it."""
        for name, value in (("gamma", gamma), ("max_ngram", max_ngram), ("min_ngram", min_ngram)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"lookup's {name} must be an integer, not {value!r}")
        if gamma < 1 or not 1 <= min_ngram <= max_ngram:
            raise ValueError("lookup needs gamma >= 1 and 1 <= min_ngram <= max_ngram")
        self.gamma, self.max_ngram, self.min_ngram = min(gamma, cap), max_ngram, min_ngram
        self._seq: list[int] = []
        self._next: dict[tuple[int, ...], int] = {}

    def context_len(self) -> None:
        return None

    def start(self, prompt, reused, features) -> None:
        self._seq, self._next = [], {}

    def observe(self, accepted, features) -> None:
        pass

    def propose(self, history: list[int], anchor: int) -> Proposal:
        trie = Trie.rooted(anchor)
        trie.add_row(self.continuation(history + [anchor]), LOOKUP)
        return Proposal(trie)

    def continuation(self, seq: list[int]) -> list[int]:
        return self.match(seq)[1]

    def match(self, seq: list[int]) -> tuple[int, list[int]]:
        """(length of the n-gram that matched, the chain that followed it); (0, []) when none did."""
        if seq[: len(self._seq)] != self._seq:  # not a continuation of the indexed text: start over
            self._seq, self._next = [], {}
        self._extend(seq)
        for n in range(min(self.max_ngram, len(seq) - 1), self.min_ngram - 1, -1):
            start = self._next.get(tuple(seq[-n:]))
            if start is not None:
                return n, seq[start:start + self.gamma]
        return 0, []

    def _extend(self, seq: list[int]) -> None:
        """Index the n-grams that end before the last token (so the text's own tail never matches itself)."""
        for p in range(max(len(self._seq), 1), len(seq)):
            for n in range(self.min_ngram, min(self.max_ngram, p) + 1):
                self._next[tuple(seq[p - n:p])] = p
        self._seq = list(seq)
