"""`lookup`: prompt-lookup decoding. The latest n-gram of the text is searched earlier in the context;
the tokens that followed its most recent earlier occurrence are proposed as a chain."""
from __future__ import annotations

from engine.events import LOOKUP
from engine.tree import Trie


class PromptLookup:
    name = "lookup"

    def __init__(self, gamma: int = 8, max_ngram: int = 3, min_ngram: int = 1):
        if gamma < 1 or not 1 <= min_ngram <= max_ngram:
            raise ValueError("lookup needs gamma >= 1 and 1 <= min_ngram <= max_ngram")
        self.gamma, self.max_ngram, self.min_ngram = gamma, max_ngram, min_ngram

    def context_len(self) -> None:
        return None

    def start(self, prompt, reused, features) -> None:
        pass

    def observe(self, accepted, features) -> None:
        pass

    def propose(self, history: list[int], anchor: int) -> Trie:
        trie = Trie.rooted(anchor)
        trie.add_row(self.continuation(history + [anchor]), LOOKUP)
        return trie

    def continuation(self, seq: list[int]) -> list[int]:
        for n in range(min(self.max_ngram, len(seq) - 1), self.min_ngram - 1, -1):
            tail = seq[-n:]
            for start in range(len(seq) - n - 1, -1, -1):
                if seq[start:start + n] == tail:
                    return seq[start + n:start + n + self.gamma]
        return []
