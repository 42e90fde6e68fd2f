"""Independent sequences side by side in one target context, for the data stage: each prompt in its own
sequence (a context made by `engine.train.data.target_settings`, with cells of its own per sequence),
never mixed with the committed conversation and trie verify of `engine.target.Target`."""
from __future__ import annotations

import numpy as np

from engine.target import ContextOverflow, Target


class Sequences:
    def __init__(self, target: Target):
        self.target = target
        self._llama = target.llama
        # without a unified cache each sequence owns an equal share of the context
        self.room = target.n_ctx // (1 if target.settings.kv_unified else target.n_seq_max)

    def prefill(self, seq: int, tokens: list[int], all_logits: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """Start sequence `seq` afresh with `tokens` at positions 0..: (the last token's logits [n_vocab],
        or with `all_logits` every token's [len(tokens), n_vocab]; the features of every token, if captured)."""
        if not tokens or len(tokens) > self.room:
            raise ContextOverflow(f"a sequence of {len(tokens)} tokens does not fit its share of the context")
        self._llama.seq_rm(seq)
        feats, logits = [], []
        step = self.target.n_batch
        for start in range(0, len(tokens), step):
            chunk = tokens[start:start + step]
            last = start + len(chunk) == len(tokens)
            captured = self._llama.decode(chunk, range(start, start + len(chunk)), [(seq,)] * len(chunk),
                                          all_logits or [last and i == len(chunk) - 1 for i in range(len(chunk))])
            if captured is not None:
                feats.append(captured)
            if all_logits:
                logits.append(self._llama.logits(len(chunk)).copy())
        features = np.concatenate(feats) if feats else None
        return (np.concatenate(logits) if all_logits else self._llama.last_logits()), features

    def decode(self, rows: list[tuple[int, int, int]]) -> tuple[np.ndarray, np.ndarray | None]:
        """One llama_decode of (seq, position, token) rows, one row per sequence: (logits [rows, n_vocab],
        features of the rows, if captured)."""
        seqs, positions, tokens = zip(*rows)
        captured = self._llama.decode(tokens, positions, [(s,) for s in seqs], True)
        return self._llama.logits(len(rows)).copy(), captured

    def set_threads(self, n: int) -> None:
        """Threads for the next decodes (the data stage picks 1 or all cores by measured speed)."""
        self._llama.set_threads(n)
