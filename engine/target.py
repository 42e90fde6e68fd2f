"""The target model in llama.cpp: the committed conversation and the trie verify, over the ctypes layer
in engine.llama_context.

One context with a unified KV cache and several sequences: sequence 0 holds the committed tokens;
a verify pass gives each branch of the candidate trie its own sequence (the committed prefix is shared
with it by seq_cp, a metadata op), evaluates every trie node once in a single llama_decode, and the
commit keeps only the accepted path, again with metadata ops only.
"""
from __future__ import annotations

import codecs
import ctypes
from dataclasses import replace
from pathlib import Path

import llama_cpp
import numpy as np

from engine.gguf_check import GGUFInfo, ModelFileError, inspect
from engine.llama_context import LlamaContext, TargetError, clear_log, last_log
from engine.target_settings import TargetSettings
from engine.tree import FlatBatch, Trie, flatten

__all__ = ["ContextOverflow", "Target", "TargetError", "TargetSettings", "TextStream"]


class ContextOverflow(TargetError):
    pass


class TextStream:
    """Turns tokens into text as they arrive; a multi-byte character split across tokens waits for its end."""

    def __init__(self, target: "Target"):
        self._target = target
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(self._target.token_bytes(token))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


def _check_layers(info: GGUFInfo, layers: tuple[int, ...]) -> None:
    for layer in layers:
        # the last layer is computed only for rows that output logits, so it cannot feed drafters
        if not 0 <= layer < info.n_layer - 1:
            raise ModelFileError(
                f"feature layer {layer} must be in 0..{info.n_layer - 2} for this {info.n_layer}-layer target")


class Target:
    def __init__(self, info: GGUFInfo, settings: TargetSettings, model, llama: LlamaContext):
        self.info = info
        self.settings = settings
        self._model = model
        self.llama = llama              # the context: batch, KV memory, feature capture
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama.n_vocab
        self.n_ctx = llama.n_ctx
        self.n_seq_max = llama.n_seq_max   # sequences this context holds (set_sequences), at most settings'
        self.tokens: list[int] = []      # committed: in sequence 0 of the KV cache
        self.features: np.ndarray | None = None  # captured features of the last decode's tokens
        self.n_batch = llama.n_batch
        self._piece = ctypes.create_string_buffer(256)

    # ---- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, settings: TargetSettings = TargetSettings()) -> "Target":
        clear_log()  # a failure below quotes this load's messages, never an earlier warning
        info = inspect(path)
        _check_layers(info, settings.capture_layers)
        mparams = llama_cpp.llama_model_default_params()
        gpu = llama_cpp.llama_supports_gpu_offload()
        mparams.n_gpu_layers = (info.n_layer + 1 if settings.n_gpu_layers < 0 else settings.n_gpu_layers) if gpu else 0
        model = llama_cpp.llama_model_load_from_file(str(info.path).encode(), mparams)
        if not model:
            raise ModelFileError(f"llama.cpp could not load {info.path.name}{last_log()}")
        try:
            llama = LlamaContext(model, settings)
        except (TargetError, ValueError):
            llama_cpp.llama_model_free(model)
            raise
        return cls(info, settings, model, llama)

    def set_capture_layers(self, layers: tuple[int, ...]) -> None:
        """Capture other layers' features (a drafter was chosen): a new context, the cache starts empty."""
        layers = tuple(layers)
        if layers == self.settings.capture_layers:
            return
        _check_layers(self.info, layers)
        self._new_context(replace(self.settings, capture_layers=layers), self.n_seq_max)

    def set_sequences(self, n: int) -> None:
        """Hold at most `n` sequences (trie branches) in one verify pass: a new context when that changes,
        and the cache starts empty. llama.cpp decodes a token about 3% slower in a unified cache made for
        64 sequences than in one made for a single sequence (docs/benchmarks.md), which a method
        whose tries are chains need not pay."""
        if not 1 <= n <= self.settings.n_seq_max:
            raise ValueError(f"sequences must be in 1..{self.settings.n_seq_max} (n_seq_max), got {n}")
        if n != self.n_seq_max:
            self._new_context(self.settings, n)

    def _new_context(self, settings: TargetSettings, n_seq_max: int) -> None:
        llama = LlamaContext(self._model, replace(settings, n_seq_max=n_seq_max))
        self.llama.close()
        self.__init__(self.info, settings, self._model, llama)

    def close(self) -> None:
        if self._model:
            self.llama.close()
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- text --------------------------------------------------------------------------------------

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """`special`: add BOS if the model wants one and parse special tokens such as <|im_start|>."""
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, special, special)
        if n < 0:
            raise TargetError(f"tokenizer failed on a text of {len(data)} bytes")
        return list(buf[:n])

    def token_bytes(self, token: int) -> bytes:
        n = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, -n, 0, False)
            return buf.raw[:n]
        return self._piece.raw[:n]

    def detokenize(self, tokens: list[int]) -> str:
        return b"".join(self.token_bytes(t) for t in tokens).decode("utf-8", "replace")

    def text_stream(self) -> TextStream:
        return TextStream(self)

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))

    def chat_prompt(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """The GGUF's own chat template applied by llama.cpp (ChatML when the file has none)."""
        tmpl = llama_cpp.llama_model_chat_template(self._model, None) or b"chatml"
        keep = [(m["role"].encode(), m["content"].encode()) for m in messages]
        arr = (llama_cpp.llama_chat_message * len(keep))()
        for i, (role, content) in enumerate(keep):
            arr[i].role, arr[i].content = role, content
        size = 2 * sum(len(r) + len(c) for r, c in keep) + 256
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_chat_apply_template(tmpl, arr, len(keep), add_generation_prompt, buf, size)
            if n < 0:
                raise TargetError(f"{self.info.name}'s chat template is not supported by llama.cpp")
            if n <= size:
                return buf.raw[:n].decode("utf-8", "replace")
            size = n
        raise TargetError("chat template output did not fit")

    def chat_tokens(self, messages: list[dict]) -> list[int]:
        return self.tokenize(self.chat_prompt(messages))

    # ---- decoding ----------------------------------------------------------------------------------

    def _check_room(self, extra: int) -> None:
        if len(self.tokens) + extra > self.n_ctx:
            raise ContextOverflow(
                f"the conversation needs {len(self.tokens) + extra} tokens but the context holds "
                f"{self.n_ctx}; start a new chat or raise the context size")

    def prepare(self, prompt: list[int], max_reuse: int | None = None) -> tuple[int, int]:
        """Put all but the last prompt token in the KV cache, keeping the prefix shared with what is
        already there (earlier chat turns), at most `max_reuse` tokens of it.
        Returns (anchor = last prompt token, reused token count)."""
        if not prompt:
            raise TargetError("the prompt is empty")
        if len(prompt) >= self.n_ctx:
            raise ContextOverflow(
                f"the prompt has {len(prompt)} tokens but the context holds {self.n_ctx}; "
                "shorten it or raise the context size")
        keep = 0
        limit = min(len(self.tokens), len(prompt) - 1, len(prompt) if max_reuse is None else max_reuse)
        while keep < limit and self.tokens[keep] == prompt[keep]:
            keep += 1
        self.llama.seq_rm(-1, keep, -1)
        self.tokens = self.tokens[:keep]
        feats = []
        step = self.n_batch
        for start in range(keep, len(prompt) - 1, step):
            chunk = prompt[start:min(start + step, len(prompt) - 1)]
            captured = self.llama.decode(chunk, range(start, start + len(chunk)), [(0,)] * len(chunk), False)
            self.tokens.extend(chunk)
            if captured is not None:
                feats.append(captured)
        self.features = np.concatenate(feats) if feats else None
        return prompt[-1], keep

    def decode_tree(self, trie: Trie, copy_logits: bool = True) -> tuple[np.ndarray, FlatBatch]:
        """Evaluate every trie node in ONE llama_decode; returns logits [n_nodes, n_vocab] (float32).

        The root sits at the next free position; each node carries the sequence ids of every branch
        through it, and every branch sequence first receives the committed context by seq_cp.
        `copy_logits=False` returns llama.cpp's own buffer, valid only until the next decode: a 64-node
        tree holds 39 MB of logits, of which the acceptance walk reads the few rows it visits.
        """
        flat = flatten(trie)
        n_branches = len(flat.leaf_seq)
        if len(trie) > self.n_batch:
            raise TargetError(f"a trie of {len(trie)} nodes exceeds the batch size {self.n_batch}")
        if n_branches > self.n_seq_max:
            raise TargetError(f"a trie with {n_branches} branches exceeds n_seq_max={self.n_seq_max}")
        self._check_room(max(flat.depths) + 1)
        for s in range(1, n_branches):
            self.llama.seq_cp(0, s)
        base = len(self.tokens)
        captured = self.llama.decode(flat.tokens, [base + d for d in flat.depths], flat.seq_ids, True)
        if captured is not None:
            self.features = captured
        logits = self.llama.logits(len(trie))
        return (logits.copy() if copy_logits else logits), flat

    def commit(self, trie: Trie, flat: FlatBatch, path: list[int]) -> None:
        """Keep the accepted path (root first) in sequence 0 and drop every other branch, without recompute."""
        base = len(self.tokens)
        end = base + len(path)
        branch = min(flat.seq_ids[path[-1]])
        if branch == 0:
            self.llama.seq_rm(0, end, -1)
        else:
            self.llama.seq_rm(0, base, -1)
            self.llama.seq_cp(branch, 0, base, end)
        for s in range(1, len(flat.leaf_seq)):
            self.llama.seq_rm(s)
        self.tokens.extend(trie.tokens[i] for i in path)
        if self.llama.capture and self.features is not None:
            self.features = self.features[path]

    def reset(self) -> None:
        self.llama.clear()
        self.tokens = []
        self.features = None

    def warm_up(self) -> None:
        """One decode of a single token, then an empty cache, as llama.cpp's own programs do before they
        time anything: the first decode after a load pages the mapped weights in and sizes the compute
        buffers (seconds on a cold page cache), which would otherwise land in the first timed answer."""
        self.reset()
        self.llama.decode([0], [0], [(0,)], True)
        self.reset()

    def kv_positions(self, seq: int = 0) -> tuple[int, int]:
        """(min, max) position held by a sequence, (-1, -1) when empty: for tests and diagnostics."""
        return self.llama.positions(seq)
