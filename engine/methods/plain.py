"""`ar`: plain autoregressive decoding, a trie of one node per step."""
from engine.methods.base import Proposal
from engine.tree import Trie


class Plain:
    name = "ar"
    chain = True

    def context_len(self) -> None:
        return None

    def start(self, prompt, reused, features) -> None:
        pass

    def propose(self, history: list[int], anchor: int) -> Proposal:
        return Proposal(Trie.rooted(anchor))

    def observe(self, accepted, features) -> None:
        pass
