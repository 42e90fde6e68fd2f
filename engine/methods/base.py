"""The interface every decoding method implements."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine.tree import Trie


@dataclass
class Proposal:
    """What a method offers for one step: the trie to verify, and the seconds of the proposal spent on
    VP rows (d2sd's second drafter), which the statistics report apart from drafter 1's."""
    trie: Trie
    vp_s: float = 0.0


class Method(Protocol):
    name: str
    chain: bool     # every proposal is a single path: the target then holds one sequence, not a tree's many

    def context_len(self) -> int | None:
        """How many committed positions the method's own state covers (None: it keeps none), so the
        target re-evaluates anything beyond it instead of reusing its cache."""

    def start(self, prompt: list[int], reused: int, features: np.ndarray | None) -> None:
        """A new generation: `prompt` is committed except its last token (the first anchor); the first
        `reused` positions were kept from before, `features` cover the rest, if captured."""

    def propose(self, history: list[int], anchor: int) -> Proposal:
        """The trie to verify this step, rooted at `anchor`; `history` is everything committed before it."""

    def observe(self, accepted: list[int], features: np.ndarray | None) -> None:
        """Tokens just committed (the root and accepted drafts) and their target features, if captured."""
