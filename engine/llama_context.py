"""The ctypes work under `engine.target.Target`: llama.cpp's log, one context with its batch and KV memory,
and the feature capture that copies chosen layer outputs out of every decode.

`Target` (committed tokens, trie verify) and the data stage's side-by-side sequences
(`engine.train.sequences`) both drive a `LlamaContext`; nothing above this module fills a batch or
touches the KV memory itself.
"""
from __future__ import annotations

import ctypes
import logging
import os
from collections import deque

import llama_cpp
import numpy as np

from engine.target_settings import TargetSettings


class TargetError(RuntimeError):
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


def clear_log() -> None:
    """Forget earlier messages: a failure from here on quotes only its own."""
    _log_tail.clear()


def last_log() -> str:
    """llama.cpp's reason for the failure just seen: the first error since the last failure (it names the
    tensor or the size at fault; the ones after say what gave up) and the last, else its last warning.
    The tail is emptied for the next failure."""
    errors = [line for level, line in _log_tail if level == LOG_ERROR]
    lines = errors[:1] + errors[-1:] if len(errors) > 1 else errors or [line for _, line in _log_tail][-1:]
    _log_tail.clear()
    return f" (llama.cpp: {'; '.join(lines)})" if lines else ""


class FeatureCapture:
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


class LlamaContext:
    """A llama.cpp context on a loaded model: its batch, its KV memory (sequences of cells) and, when
    `settings.capture_layers` names layers, the feature capture. Freed by `close`."""

    def __init__(self, model, settings: TargetSettings):
        top = llama_cpp.llama_max_parallel_sequences()
        if settings.n_seq_max > top:
            raise ValueError(f"n_seq_max must be at most {top}, llama.cpp's limit, got {settings.n_seq_max}")
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
        self.capture = FeatureCapture(settings.capture_layers) if settings.capture_layers else None
        if self.capture:
            cparams.cb_eval = self.capture.callback
        self._ctx = llama_cpp.llama_init_from_model(model, cparams)
        if not self._ctx:
            raise TargetError(f"llama.cpp could not create a context of {settings.n_ctx} tokens{last_log()}")
        self._mem = llama_cpp.llama_get_memory(self._ctx)
        self.n_ctx = llama_cpp.llama_n_ctx(self._ctx)
        self.n_batch = llama_cpp.llama_n_batch(self._ctx)
        self.n_seq_max = settings.n_seq_max
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(llama_cpp.llama_model_get_vocab(model))
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, settings.n_seq_max)

    def close(self) -> None:
        if self._ctx:
            llama_cpp.llama_batch_free(self._batch)
            llama_cpp.llama_free(self._ctx)
            self._ctx = None

    def decode(self, tokens, positions, seq_ids, want_logits) -> np.ndarray | None:
        """One llama_decode of rows (token, position, the sequences it belongs to). `want_logits`: one bool
        for every row, or a bool per row. Returns the captured features of the rows, if any."""
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
        if self.capture:
            self.capture.raise_pending()
        if rc != 0:
            raise TargetError(f"llama_decode failed with code {rc}{last_log()}")
        return self.capture.take() if self.capture else None

    def logits(self, rows: int) -> np.ndarray:
        """The last decode's output rows [rows, n_vocab]: llama.cpp's own buffer, valid until the next decode."""
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits(self._ctx), shape=(rows, self.n_vocab))

    def last_logits(self) -> np.ndarray:
        """A copy of the last decode's last output row [n_vocab]."""
        return np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(self._ctx, -1), shape=(self.n_vocab,)).copy()

    def seq_rm(self, seq: int, start: int = -1, end: int = -1) -> None:
        """Drop positions [start, end) of sequence `seq` (-1: every sequence, or no bound)."""
        llama_cpp.llama_memory_seq_rm(self._mem, seq, start, end)

    def seq_cp(self, src: int, dst: int, start: int = -1, end: int = -1) -> None:
        """Let sequence `dst` share `src`'s cells at positions [start, end): metadata only, no recompute."""
        llama_cpp.llama_memory_seq_cp(self._mem, src, dst, start, end)

    def positions(self, seq: int) -> tuple[int, int]:
        """(min, max) position held by a sequence, (-1, -1) when empty."""
        return llama_cpp.llama_memory_seq_pos_min(self._mem, seq), llama_cpp.llama_memory_seq_pos_max(self._mem, seq)

    def clear(self) -> None:
        llama_cpp.llama_memory_clear(self._mem, True)

    def set_threads(self, n: int) -> None:
        llama_cpp.llama_set_n_threads(self._ctx, n, n)
