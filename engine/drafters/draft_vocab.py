"""An optional reduced draft vocabulary (EAGLE-3 style): the output head scores only the most
frequent target tokens, which on CPU is most of a drafter's cost. Inputs stay in target ids; only
the scored set shrinks, and every drafted token is mapped back to its target id."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.drafters.errors import DrafterMismatch


@dataclass(frozen=True)
class DraftVocab:
    ids: np.ndarray  # int64 [n_draft]: draft id d stands for target id ids[d]; most frequent first

    def __post_init__(self) -> None:
        ids = np.asarray(self.ids, dtype=np.int64)
        if ids.ndim != 1 or ids.size == 0:
            raise DrafterMismatch("A draft vocabulary must be a non-empty list of token ids.")
        if np.unique(ids).size != ids.size:
            raise DrafterMismatch("A draft vocabulary must not list a token id twice.")
        object.__setattr__(self, "ids", ids)

    @classmethod
    def from_counts(cls, counts: np.ndarray, size: int) -> "DraftVocab":
        """The `size` most frequent target ids (ties broken by lower id) of per-id counts."""
        order = np.lexsort((np.arange(len(counts)), -np.asarray(counts)))
        return cls(order[:size])

    def __len__(self) -> int:
        return int(self.ids.size)

    def check_within(self, n_vocab: int) -> None:
        if self.ids.min() < 0 or self.ids.max() >= n_vocab:
            raise DrafterMismatch(
                f"The draft vocabulary names token ids outside the target's vocabulary of {n_vocab}.")

    def to_target(self, draft_ids: np.ndarray) -> np.ndarray:
        return self.ids[draft_ids]
