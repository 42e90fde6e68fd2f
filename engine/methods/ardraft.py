"""`ardraft`: classic speculative decoding. A small autoregressive GGUF with the target's vocabulary drafts
a greedy chain of γ tokens in its own llama.cpp context; the chain is verified on the shared path.

The draft context mirrors the committed text: `prepare(history + [anchor])` keeps the prefix it already
holds (dropping drafts the target rejected), then each draft token is one single-token decode + commit.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from engine.events import ARDRAFT
from engine.methods.base import Proposal
from engine.store.embedded import DEFAULT_DRAFT, ensure
from engine.target import Target, TargetSettings
from engine.tree import Trie

# Text whose tokenization must agree: control tokens are rendered empty by token_bytes, so they are
# compared through how both models parse them.
_PROBE = "<|im_start|>user\n<|im_end|>\n<|endoftext|><s></s> def f(x):\n\treturn x  # ü €"


class VocabMismatch(ValueError):
    pass


def check_vocab(target: Target, draft: Target) -> None:
    """Refuse a draft model whose token ids mean something else for the target (drafts would be noise)."""
    where = f"draft model {draft.info.name!r} and target {target.info.name!r}"
    if draft.n_vocab != target.n_vocab:
        raise VocabMismatch(f"{where} have different vocabularies "
                            f"({draft.n_vocab} vs {target.n_vocab} tokens); ardraft needs the same tokenizer")
    for tok in range(target.n_vocab):
        if draft.token_bytes(tok) != target.token_bytes(tok) or draft.is_eog(tok) != target.is_eog(tok):
            raise VocabMismatch(f"{where} disagree on token {tok} "
                                f"({draft.token_bytes(tok)!r} vs {target.token_bytes(tok)!r}); "
                                "ardraft needs the same tokenizer")
    if draft.tokenize(_PROBE) != target.tokenize(_PROBE):
        raise VocabMismatch(f"{where} tokenize special tokens differently; ardraft needs the same tokenizer")


class ARDraft:
    name = "ardraft"
    chain = True

    def __init__(self, target: Target, draft: Target, gamma: int = 4, p_min: float = 0.0):
        """`p_min`: stop the chain early once the draft's own probability of its token drops below it
        (llama.cpp's --draft-p-min); 0 always drafts γ tokens."""
        if gamma < 1 or not 0.0 <= p_min < 1.0:
            raise ValueError("ardraft needs gamma >= 1 and 0 <= p_min < 1")
        check_vocab(target, draft)
        self.draft, self.gamma, self.p_min = draft, gamma, p_min

    @classmethod
    def load(cls, target: Target, draft_model: str | Path | None = None, gamma: int = 4,
             p_min: float = 0.0) -> "ARDraft":
        """Loads the draft model (default: the embedded 0.5B) with the target's context and threads."""
        path = draft_model or ensure(DEFAULT_DRAFT)
        s = target.settings
        draft = Target.load(path, TargetSettings(n_ctx=target.n_ctx, n_threads=s.n_threads,
                                                 n_gpu_layers=s.n_gpu_layers, n_seq_max=1, n_batch=s.n_batch))
        try:
            return cls(target, draft, gamma, p_min)
        except Exception:
            draft.close()
            raise

    def close(self) -> None:
        self.draft.close()

    def context_len(self) -> None:
        return None  # the draft context follows the committed text itself, whatever the target reused

    def start(self, prompt: list[int], reused: int, features) -> None:
        # prefill the draft context now, so the first step's draft time is drafting only
        self.draft.prepare(prompt)

    def observe(self, accepted, features) -> None:
        pass

    def propose(self, history: list[int], anchor: int) -> Proposal:
        trie = Trie.rooted(anchor)
        room = self.draft.n_ctx - len(history) - 2
        token, _ = self.draft.prepare(history + [anchor])
        node = 0
        for _ in range(min(self.gamma, room)):
            step = Trie.rooted(token)
            logits, flat = self.draft.decode_tree(step)
            self.draft.commit(step, flat, [0])
            token, p = _argmax_prob(logits[0])
            if p < self.p_min:
                break
            node = trie.add_node(node, token, ARDRAFT, p)
        return Proposal(trie)


def _argmax_prob(logits: np.ndarray) -> tuple[int, float]:
    k = int(np.argmax(logits))
    return k, float(1.0 / np.exp(logits - logits[k]).sum())
