"""`ar`: plain autoregressive decoding, a trie of one node per step."""
from engine.tree import Trie


class Plain:
    name = "ar"

    def start(self, prompt, features) -> None:
        pass

    def propose(self, history: list[int], anchor: int) -> Trie:
        return Trie.rooted(anchor)

    def observe(self, accepted, features) -> None:
        pass
