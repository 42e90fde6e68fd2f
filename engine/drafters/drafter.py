"""A block-diffusion drafter bound to one target: drafter 1 and the VP drafter are two instances.

Positions: the committed tokens x[0..n) have target features appended with `append_context`, so
`context_len == n`; a block row occupies positions n .. n+gamma-1, its first token being the anchor
(the last token the target produced, not yet committed). Features of a position are the outputs of
target blocks `config.target_layer_ids` (0-based; llama.cpp tensors `l_out-<i>`, same i)
concatenated in that order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.drafters.checkpoint import check_compatible, check_weights, read_checkpoint, write_checkpoint
from engine.drafters.config import DrafterConfig
from engine.drafters.context_cache import ContextCache
from engine.drafters.device import pick_device, pick_dtype
from engine.drafters.draft_vocab import DraftVocab
from engine.drafters.errors import DrafterMismatch
from engine.drafters.model import DFlashModel
from engine.drafters.shared_head import SharedHead


class Drafter:
    def __init__(self, model: DFlashModel, head: SharedHead, *, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, vocab: DraftVocab | None = None) -> None:
        self.config: DrafterConfig = model.config
        self.config.validate()
        check_compatible(self.config, head.info)
        if vocab is not None:
            vocab.check_within(head.info.n_vocab)
        self.device = pick_device(device)
        self.dtype = pick_dtype(self.device, dtype)
        self.head = head
        self.vocab = vocab
        self.model = model.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        self._embedding, output = head.weights(self.device, self.dtype)
        self._vocab_ids = None if vocab is None else torch.as_tensor(vocab.ids, device=self.device)
        self._output = output if vocab is None else output[self._vocab_ids]
        self.folder: Path | None = None  # the checkpoint folder it was loaded from (for run records)
        self.reset()

    @classmethod
    def load(cls, folder: Path, head: SharedHead, device: str | torch.device | None = None, *,
             dtype: torch.dtype | None = None, vocab: DraftVocab | None = None) -> "Drafter":
        """Load a checkpoint folder; `vocab` overrides a draft vocabulary saved with it."""
        config, weights, saved_vocab = read_checkpoint(folder)
        check_compatible(config, head.info)  # before allocating anything for a drafter we refuse
        with torch.device("meta"):
            model = DFlashModel(config)
        check_weights(model.state_dict(), weights)
        model.load_state_dict(weights, assign=True)
        drafter = cls(model, head, device=device, dtype=dtype, vocab=saved_vocab if vocab is None else vocab)
        drafter.folder = Path(folder)
        return drafter

    @classmethod
    def random(cls, config: DrafterConfig, head: SharedHead, seed: int = 0, *,
               device: str | torch.device | None = None, dtype: torch.dtype | None = None,
               vocab: DraftVocab | None = None, std: float = 0.02) -> "Drafter":
        """Untrained weights (N(0, std) matrices, unit norms): for tests and as a training start."""
        return cls(DFlashModel.untrained(config, seed, std), head, device=device, dtype=dtype, vocab=vocab)

    def save(self, folder: Path, dtype: torch.dtype | None = None) -> None:
        """Write config.json + model.safetensors (+ draft_vocab.safetensors) in `dtype` (default: as run)."""
        weights = {k: v.to(dtype or self.dtype) for k, v in self.model.state_dict().items()}
        write_checkpoint(folder, self.config, weights, self.vocab)

    # --- context of committed positions -------------------------------------------------------

    @property
    def context_len(self) -> int:
        return self._cache.length

    @torch.inference_mode()
    def reset(self) -> None:
        """Forget the context (a new conversation)."""
        c = self.config
        self._cache = ContextCache(c.num_hidden_layers, c.num_key_value_heads, c.head_dim, self.device, self.dtype)

    @torch.inference_mode()
    def append_context(self, features: np.ndarray) -> None:
        """Add target features float32 [n_new, len(target_layer_ids) * n_embd] of the next committed positions."""
        if features.ndim != 2 or features.shape[1] != self.config.feature_size:
            raise DrafterMismatch(
                f"Target features of shape {tuple(features.shape)} do not fit this drafter, which takes "
                f"{len(self.config.target_layer_ids)} layers x {self.config.hidden_size} per position.")
        if len(features) == 0:
            return
        x = torch.from_numpy(np.ascontiguousarray(features)).to(device=self.device, dtype=self.dtype)
        start = self.context_len
        positions = torch.arange(start, start + len(features), device=self.device)
        self._cache.append(self.model.context_kv(x, positions))

    def truncate_context(self, n: int) -> None:
        """Keep only the first n committed positions (the user edited or regenerated a turn)."""
        self._cache.truncate(n)

    # --- drafting -------------------------------------------------------------------------------

    @property
    def scored_vocab_size(self) -> int:
        """Width of forward_block's logits: the draft vocabulary's size, else the target's."""
        return self._output.shape[0]

    @torch.inference_mode()
    def forward_block(self, rows: np.ndarray) -> np.ndarray:
        """Logits float32 [B, gamma, scored_vocab_size] for token rows int64 [B, gamma] (target ids,
        mask id where unknown) at positions context_len .. context_len+gamma-1. Column j stands for
        target id `vocab.ids[j]` when a draft vocabulary is set, else for target id j."""
        return self._logits(self._hidden(self._ids(rows))).cpu().numpy()

    @torch.inference_mode()
    def draft(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Fill each row's masked positions with the argmax token (a target id) and its softmax
        probability at temperature 1; visible positions keep their token with confidence 1."""
        ids = self._ids(rows)
        masked = ids == self.config.mask_token_id
        tokens = ids.clone()
        conf = torch.ones(ids.shape, dtype=torch.float32, device=self.device)
        if masked.any():
            # The output head is most of the cost; visible positions need no logits, so skip them.
            logits = self._logits(self._hidden(ids)[masked])
            best_logit, best = logits.max(dim=-1)
            conf[masked] = torch.exp(best_logit - torch.logsumexp(logits, dim=-1))
            tokens[masked] = self._to_target(best)
        return tokens.cpu().numpy(), conf.cpu().numpy()

    @torch.inference_mode()
    def draft_topk(self, rows: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Per position the k most likely tokens (target ids, int64 [B, gamma, k], best first) and
        their softmax probabilities at temperature 1 (float32 [B, gamma, k]); for tree drafting."""
        probs = torch.softmax(self._logits(self._hidden(self._ids(rows))), dim=-1)
        top_p, top = probs.topk(k, dim=-1)
        return self._to_target(top).cpu().numpy(), top_p.cpu().numpy()

    # --- internals ------------------------------------------------------------------------------

    def _ids(self, rows: np.ndarray) -> torch.Tensor:
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[0] == 0 or not 1 <= rows.shape[1] <= self.config.block_size:
            raise DrafterMismatch(
                f"Token rows of shape {rows.shape} do not fit; expected [B, gamma] with B >= 1 and "
                f"gamma at most the drafter's block size {self.config.block_size}.")
        if rows.min() < 0 or rows.max() >= self.head.info.n_vocab:
            raise DrafterMismatch(f"Token rows hold ids outside the target's vocabulary of {self.head.info.n_vocab}.")
        return torch.as_tensor(rows.astype(np.int64, copy=False), device=self.device)

    def _hidden(self, ids: torch.Tensor) -> torch.Tensor:
        emb = self._embedding[ids]
        if self.config.input_embedding_scale != 1.0:
            emb = emb * self.config.input_embedding_scale
        start = self.context_len
        positions = torch.arange(start, start + ids.shape[1], device=self.device)
        return self.model(emb, positions, self._cache.views())

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = (hidden @ self._output.T).float()
        if self.config.output_multiplier != 1.0:
            logits = logits * self.config.output_multiplier
        cap = self.config.final_logit_softcapping
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def _to_target(self, scored_ids: torch.Tensor) -> torch.Tensor:
        return scored_ids if self._vocab_ids is None else self._vocab_ids[scored_ids]
