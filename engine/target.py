"""The target model in llama.cpp: the only module that imports llama_cpp.

One context with a unified KV cache and several sequences: sequence 0 holds the committed tokens;
a verify pass gives each branch of the candidate trie its own sequence (the committed prefix is shared
with it by seq_cp, a metadata op), evaluates every trie node once in a single llama_decode, and the
commit keeps only the accepted path, again with metadata ops only.
"""
from __future__ import annotations

import codecs
import ctypes
import logging
import os
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import llama_cpp
import numpy as np

from engine.gguf_check import GGUFInfo, ModelFileError, inspect
from engine.tree import FlatBatch, Trie, flatten


class TargetError(RuntimeError):
    pass


class ContextOverflow(TargetError):
    pass


# ggml's log levels; this build reports its errors (a misaligned tensor, a failed allocation) at ERROR.
LOG_WARN, LOG_ERROR = 3, 4
_log_tail: deque[tuple[int, str]] = deque(maxlen=20)
log = logging.getLogger("llama.cpp")
log.addHandler(logging.NullHandler())  # into the app's log when it has one; never onto a terminal as-is


@llama_cpp.llama_log_callback
def _log_to_tail(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # llama.cpp is chatty on stderr (INFO): keep its warnings and errors, the last ones to explain a failure.
    if level in (LOG_WARN, LOG_ERROR):
        line = text.decode("utf-8", "replace").strip()
        if line:
            _log_tail.append((level, line))
            log.log(logging.ERROR if level == LOG_ERROR else logging.WARNING, "%s", line)


llama_cpp.llama_log_set(_log_to_tail, ctypes.c_void_p(0))
llama_cpp.llama_backend_init()


def _last_log() -> str:
    """llama.cpp's reason for the failure just seen: the first error since the last failure (it names the
    tensor or the size at fault; the ones after say what gave up) and the last, else its last warning.
    The tail is emptied for the next failure."""
    errors = [line for level, line in _log_tail if level == LOG_ERROR]
    lines = errors[:1] + errors[-1:] if len(errors) > 1 else errors or [line for _, line in _log_tail][-1:]
    _log_tail.clear()
    return f" (llama.cpp: {'; '.join(lines)})" if lines else ""


@dataclass(frozen=True)
class TargetSettings:
    n_ctx: int = 4096
    n_threads: int | None = None       # None: all cores
    n_gpu_layers: int = -1             # -1: every layer when this build can offload, else none
    n_seq_max: int = 64                # most branches one verify pass may hold
    n_batch: int = 512
    capture_layers: tuple[int, ...] = ()  # target layers whose per-token outputs the drafters read
    # True: all sequences share the cells (trie branches need that). False: each sequence has its own
    # n_ctx / n_seq_max cells, so independent sequences decoded side by side (data generation) do not
    # pay attention over each other's tokens.
    kv_unified: bool = True

    def __post_init__(self):
        if self.n_ctx < 16:
            raise ValueError(f"context size must be at least 16 tokens, got {self.n_ctx}")
        top = min(llama_cpp.llama_max_parallel_sequences(), self.n_ctx)
        if not 1 <= self.n_seq_max <= top:
            raise ValueError(f"n_seq_max must be in 1..{top} for a context of {self.n_ctx} tokens")


class TextStream:
    """Turns tokens into text as they arrive; a multi-byte character split across tokens waits for its end."""

    def __init__(self, target: "Target"):
        self._target = target
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token: int) -> str:
        return self._decoder.decode(self._target.token_bytes(token))

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)


class _FeatureCapture:
    """Copies chosen layer outputs (`l_out-<i>`, [n_tokens, n_embd] float32) out of every decode.

    Runs as the ggml scheduler's eval callback: asked first whether a tensor is wanted, then called
    with it computed. Reads go through ggml_backend_tensor_get so GPU-resident tensors work too.
    """

    class _Tensor(ctypes.Structure):
        _fields_ = [
            ("type", ctypes.c_int), ("buffer", ctypes.c_void_p),
            ("ne", ctypes.c_int64 * 4), ("nb", ctypes.c_size_t * 4),
            ("op", ctypes.c_int), ("op_params", ctypes.c_int32 * 16), ("flags", ctypes.c_int32),
            ("src", ctypes.c_void_p * 10), ("view_src", ctypes.c_void_p), ("view_offs", ctypes.c_size_t),
            ("data", ctypes.c_void_p), ("name", ctypes.c_char * 64),
            ("extra", ctypes.c_void_p), ("padding", ctypes.c_char * 8),
        ]

    def __init__(self, layers: tuple[int, ...]):
        from llama_cpp._ggml import libggml

        self.layers = layers
        self._wanted = {f"l_out-{i}".encode(): k for k, i in enumerate(layers)}
        self._get = libggml.ggml_backend_tensor_get
        self._get.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t]
        self._get.restype = None
        self.parts: list[list[np.ndarray]] = [[] for _ in layers]
        self.error: BaseException | None = None
        self.callback = llama_cpp.ggml_backend_sched_eval_callback(self._on_tensor)

    def _on_tensor(self, tensor_p, ask, user_data) -> bool:
        # ctypes prints and drops an exception raised in a callback, and Ctrl-C or a SIGTERM handler
        # lands here more often than not: keep it for `raise_pending` once llama_decode has returned.
        # A signal can still fire on this function's first line, before the try; `take` then finds
        # the copies short and says so.
        try:
            return self._copy(tensor_p, ask)
        except BaseException as e:
            self.error = self.error or e
            return True

    def _copy(self, tensor_p, ask) -> bool:
        t = ctypes.cast(tensor_p, ctypes.POINTER(self._Tensor)).contents
        k = self._wanted.get(t.name)
        if ask:
            return k is not None
        if k is not None and t.type == 0:  # GGML_TYPE_F32
            rows, cols = int(t.ne[1]), int(t.ne[0])
            out = np.empty((rows, cols), dtype=np.float32)
            self._get(tensor_p, out.ctypes.data, 0, out.nbytes)
            self.parts[k].append(out)
        return True

    def raise_pending(self) -> None:
        """Re-raise what the callback caught during the last decode; its partial copies go too."""
        if self.error is not None:
            error, self.error = self.error, None
            self.parts = [[] for _ in self.layers]
            raise error

    def take(self) -> np.ndarray:
        """[n_tokens, len(layers) * n_embd] for the tokens decoded since the last take."""
        if not all(self.parts):
            self.parts = [[] for _ in self.layers]
            raise TargetError("the feature capture was interrupted (a signal inside llama.cpp's eval callback)")
        layers = [np.concatenate(p) if len(p) > 1 else p[0] for p in self.parts]
        self.parts = [[] for _ in self.layers]
        return np.concatenate(layers, axis=1)


def _check_layers(info: GGUFInfo, layers: tuple[int, ...]) -> None:
    for layer in layers:
        # the last layer is computed only for rows that output logits, so it cannot feed drafters
        if not 0 <= layer < info.n_layer - 1:
            raise ModelFileError(
                f"feature layer {layer} must be in 0..{info.n_layer - 2} for this {info.n_layer}-layer target")


def _new_context(model, settings: TargetSettings):
    threads = settings.n_threads or os.cpu_count() or 1
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = settings.n_ctx
    # llama.cpp caps the batch at the context and asserts unless a batch can output one row per sequence
    n_batch = max(min(settings.n_batch, settings.n_ctx), settings.n_seq_max)
    cparams.n_batch = n_batch
    cparams.n_ubatch = n_batch
    cparams.n_seq_max = settings.n_seq_max
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.kv_unified = settings.kv_unified
    cparams.no_perf = True
    capture = _FeatureCapture(settings.capture_layers) if settings.capture_layers else None
    if capture:
        cparams.cb_eval = capture.callback
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        raise TargetError(f"llama.cpp could not create a context of {settings.n_ctx} tokens{_last_log()}")
    return ctx, capture


class Target:
    def __init__(self, info: GGUFInfo, settings: TargetSettings, model, ctx, capture: _FeatureCapture | None):
        self.info = info
        self.settings = settings
        self._model = model
        self._ctx = ctx
        self._mem = llama_cpp.llama_get_memory(ctx)
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self._capture = capture
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.n_ctx = llama_cpp.llama_n_ctx(ctx)
        self.n_seq_max = settings.n_seq_max
        self.tokens: list[int] = []      # committed: in sequence 0 of the KV cache
        self.features: np.ndarray | None = None  # captured features of the last decode's tokens
        self.n_batch = llama_cpp.llama_n_batch(ctx)
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, settings.n_seq_max)
        self._piece = ctypes.create_string_buffer(256)

    # ---- loading ---------------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, settings: TargetSettings = TargetSettings()) -> "Target":
        _log_tail.clear()  # a failure below quotes this load's messages, never an earlier warning
        info = inspect(path)
        _check_layers(info, settings.capture_layers)
        mparams = llama_cpp.llama_model_default_params()
        gpu = llama_cpp.llama_supports_gpu_offload()
        mparams.n_gpu_layers = (info.n_layer + 1 if settings.n_gpu_layers < 0 else settings.n_gpu_layers) if gpu else 0
        model = llama_cpp.llama_model_load_from_file(str(info.path).encode(), mparams)
        if not model:
            raise ModelFileError(f"llama.cpp could not load {info.path.name}{_last_log()}")
        try:
            ctx, capture = _new_context(model, settings)
        except TargetError:
            llama_cpp.llama_model_free(model)
            raise
        return cls(info, settings, model, ctx, capture)

    def set_capture_layers(self, layers: tuple[int, ...]) -> None:
        """Capture other layers' features (a drafter was chosen): a new context, the cache starts empty."""
        layers = tuple(layers)
        if layers == self.settings.capture_layers:
            return
        _check_layers(self.info, layers)
        settings = replace(self.settings, capture_layers=layers)
        ctx, capture = _new_context(self._model, settings)
        llama_cpp.llama_batch_free(self._batch)
        llama_cpp.llama_free(self._ctx)
        self.__init__(self.info, settings, self._model, ctx, capture)

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            llama_cpp.llama_model_free(self._model)
            self._ctx = self._model = None

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

    def _decode(self, tokens, positions, seq_ids, want_logits) -> None:
        """`want_logits`: one bool for every row, or a bool per row."""
        b = self._batch
        b.n_tokens = len(tokens)
        per_row = not isinstance(want_logits, bool)
        for i, tok in enumerate(tokens):
            b.token[i] = tok
            b.pos[i] = positions[i]
            ids = seq_ids[i]
            b.n_seq_id[i] = len(ids)
            for j, s in enumerate(ids):
                b.seq_id[i][j] = s
            b.logits[i] = want_logits[i] if per_row else want_logits
        rc = llama_cpp.llama_decode(self._ctx, b)
        if self._capture:
            self._capture.raise_pending()
        if rc != 0:
            raise TargetError(f"llama_decode failed with code {rc}{_last_log()}")

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
        llama_cpp.llama_memory_seq_rm(self._mem, -1, keep, -1)
        self.tokens = self.tokens[:keep]
        feats = []
        step = self.n_batch
        for start in range(keep, len(prompt) - 1, step):
            chunk = prompt[start:min(start + step, len(prompt) - 1)]
            self._decode(chunk, range(start, start + len(chunk)), [(0,)] * len(chunk), False)
            self.tokens.extend(chunk)
            if self._capture:
                feats.append(self._capture.take())
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
            llama_cpp.llama_memory_seq_cp(self._mem, 0, s, -1, -1)
        base = len(self.tokens)
        self._decode(flat.tokens, [base + d for d in flat.depths], flat.seq_ids, True)
        ptr = llama_cpp.llama_get_logits(self._ctx)
        logits = np.ctypeslib.as_array(ptr, shape=(len(trie), self.n_vocab))
        if self._capture:
            self.features = self._capture.take()
        return (logits.copy() if copy_logits else logits), flat

    def commit(self, trie: Trie, flat: FlatBatch, path: list[int]) -> None:
        """Keep the accepted path (root first) in sequence 0 and drop every other branch, without recompute."""
        base = len(self.tokens)
        end = base + len(path)
        branch = min(flat.seq_ids[path[-1]])
        if branch == 0:
            llama_cpp.llama_memory_seq_rm(self._mem, 0, end, -1)
        else:
            llama_cpp.llama_memory_seq_rm(self._mem, 0, base, -1)
            llama_cpp.llama_memory_seq_cp(self._mem, branch, 0, base, end)
        for s in range(1, len(flat.leaf_seq)):
            llama_cpp.llama_memory_seq_rm(self._mem, s, -1, -1)
        self.tokens.extend(trie.tokens[i] for i in path)
        if self._capture and self.features is not None:
            self.features = self.features[path]

    # ---- independent sequences side by side (data generation; not with `tokens`/trie decoding) -------

    def prefill_sequence(self, seq: int, tokens: list[int], all_logits: bool = False) -> np.ndarray:
        """Start sequence `seq` afresh with `tokens` at positions 0..; returns the last token's logits
        [n_vocab], or with `all_logits` every token's [len(tokens), n_vocab].
        Features of every token are in `features` afterwards."""
        if not tokens or len(tokens) > self.n_ctx // (1 if self.settings.kv_unified else self.n_seq_max):
            raise ContextOverflow(f"a sequence of {len(tokens)} tokens does not fit its share of the context")
        llama_cpp.llama_memory_seq_rm(self._mem, seq, -1, -1)
        feats, logits = [], []
        for start in range(0, len(tokens), self.n_batch):
            chunk = tokens[start:start + self.n_batch]
            last = start + len(chunk) == len(tokens)
            self._decode(chunk, range(start, start + len(chunk)), [(seq,)] * len(chunk),
                         all_logits or [last and i == len(chunk) - 1 for i in range(len(chunk))])
            if self._capture:
                feats.append(self._capture.take())
            if all_logits:
                ptr = llama_cpp.llama_get_logits(self._ctx)
                logits.append(np.ctypeslib.as_array(ptr, shape=(len(chunk), self.n_vocab)).copy())
        self.features = np.concatenate(feats) if feats else None
        if all_logits:
            return np.concatenate(logits)
        ptr = llama_cpp.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).copy()

    def decode_sequences(self, rows: list[tuple[int, int, int]]) -> np.ndarray:
        """One llama_decode of (seq, position, token) rows, one row per sequence; logits [rows, n_vocab]."""
        seqs, positions, tokens = zip(*rows)
        self._decode(tokens, positions, [(s,) for s in seqs], True)
        ptr = llama_cpp.llama_get_logits(self._ctx)
        logits = np.ctypeslib.as_array(ptr, shape=(len(rows), self.n_vocab)).copy()
        if self._capture:
            self.features = self._capture.take()
        return logits

    def set_threads(self, n: int) -> None:
        """Threads for the next decodes (the data stage picks 1 or all cores by measured speed)."""
        llama_cpp.llama_set_n_threads(self._ctx, n, n)

    def reset(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)
        self.tokens = []
        self.features = None

    def kv_positions(self, seq: int = 0) -> tuple[int, int]:
        """(min, max) position held by a sequence, (-1, -1) when empty: for tests and diagnostics."""
        return (llama_cpp.llama_memory_seq_pos_min(self._mem, seq),
                llama_cpp.llama_memory_seq_pos_max(self._mem, seq))
