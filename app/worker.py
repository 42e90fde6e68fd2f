"""The engine in its own thread: a QObject living in a QThread, driven by queued signals.

The GUI thread never calls into llama.cpp. Requests run in order on the worker thread, so a model
switch queued behind a cancelled answer starts only once that answer has finished cleanly.

When the settings ask for it, the loaded model is also served to other tools (engine.server, as
`d2sd serve`). The server's generation thread and this one take turns on the one target and its
ReadyMethod (llama.cpp is not thread-safe): an answer in the window and a client's request run one
after the other, in the order they asked. A model switch stops the server first and starts it again on
the new model.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal, Slot

from app.prompt_tokens import AnswerTokens, fit_context
from app.settings import AppSettings
from engine.context_size import default_context
from engine.events import Finished, RunStats, StepStats, TextDelta
from engine.generate import generate
from engine.ready_method import ReadyMethod, cached_curve
from engine.target import Target
from engine.target_settings import TargetSettings
from engine.verify import SamplerSettings


@dataclass
class GenerationRequest:
    id: int
    messages: list[dict]            # [{"role", "content"}], system prompt first if any
    method: str
    method_params: dict
    sampler: SamplerSettings
    max_tokens: int
    drafters: tuple[str, str]               # drafter 1 and VP folders; "" for the pair shipped with the target
    cancel: threading.Event = field(default_factory=threading.Event)


@dataclass
class StepView:
    """A step's statistics plus the text the GUI needs to draw its trie (token ids mean nothing there)."""
    stats: StepStats
    node_texts: list[str]           # one per trie node
    emitted: list[tuple[str, str]]  # (text, provenance) of the tokens this step emitted, bonus last


class TakeTurns:
    """The target's turns, granted in the order they were asked for: a plain Lock lets the thread that
    just released it take it again, so a busy client could keep the window waiting, or the reverse."""

    def __init__(self):
        self._changed = threading.Condition()
        self._line: list[object] = []   # the holder first, then those waiting, in order

    @contextmanager
    def turn(self, cancel: threading.Event | None = None):
        """Yields True while holding the turn, or False at once when `cancel` is set before it came (a
        stopped answer, a model switch or quitting need not wait for a client's long request)."""
        me = object()
        with self._changed:
            self._line.append(me)
            while self._line[0] is not me and not (cancel is not None and cancel.is_set()):
                self._changed.wait(0.1 if cancel is not None else None)
            mine = self._line[0] is me
            if not mine:
                self._line.remove(me)
        try:
            yield mine
        finally:
            if mine:
                with self._changed:
                    self._line.pop(0)
                    self._changed.notify_all()


class EngineWorker(QObject):
    cost_curve = Signal(object)           # a model loaded: its calibrated CostCurve, or None; before `loaded`
    loaded = Signal(str, str, int)        # model path, model name, context size in tokens
    load_failed = Signal(str, str)        # model path, reason
    text = Signal(int, str, object)       # request id, new text, provenance runs [[n_chars, source]]
    step = Signal(int, object)            # request id, StepView
    finished = Signal(int, object)        # request id, engine.events.Finished
    failed = Signal(int, str)             # request id, reason
    generating = Signal(int)              # request id: method ready, drafters loaded, prompt built; decoding starts
    trimmed = Signal(int, int)            # request id, oldest messages left out so the prompt fits the context
    measuring = Signal()                  # the verify cost curve is being measured (tens of seconds on a CPU)
    measured = Signal(object)             # ...and here it is (a CostCurve), or None when measuring failed
    serving = Signal(str, str)            # the server's URL and model id; ("", "") once it stopped
    serve_failed = Signal(str)            # why serving could not start

    def __init__(self):
        super().__init__()
        self._target: Target | None = None
        self._ready: ReadyMethod | None = None
        self._measured_now = False
        self._answers = AnswerTokens()   # per loaded model: ids mean nothing to another vocabulary
        self._turns = TakeTurns()        # the target's: this thread's answers and the server's requests
        self._server = None              # engine.server.serve.LocalServer while serving
        self._serve_options: dict | None = None   # LocalServer's keywords (AppSettings.server_options)

    @Slot(str, object)
    def load(self, path: str, settings: AppSettings) -> None:
        """Loads the model as the settings say (a context size of 0: the model's own, capped by free
        memory), then serves it when they ask for that."""
        self.unload()
        self._serve_options = settings.server_options()
        try:
            n_ctx = settings.n_ctx or default_context(path)
            self._target = Target.load(path, TargetSettings(n_ctx=n_ctx, n_threads=settings.n_threads,
                                                            n_gpu_layers=settings.n_gpu_layers))
        except Exception as e:  # any load failure is shown to the user, the app keeps running
            self.load_failed.emit(path, str(e))
            return
        self._ready = ReadyMethod(self._target, on_measure=self._on_measure)
        # only the cache: measuring would hold the model for a while before the first answer
        self.cost_curve.emit(cached_curve(self._target))
        self.loaded.emit(path, self._target.info.name, self._target.n_ctx)
        self._start_serving()

    def _on_measure(self) -> None:
        self._measured_now = True
        self.measuring.emit()

    @contextmanager
    def _turn(self, cancel: threading.Event | None = None):
        """The target and its ReadyMethod for one job: an answer here, or a client's request on the
        server's generation thread, whose cost curve measurement the window reports as its own.
        Yields False, holding nothing, when `cancel` is set while waiting."""
        with self._turns.turn(cancel) as mine:
            self._measured_now = False
            try:
                yield mine
            finally:
                if self._measured_now:   # calibrate() filed the new curve; None if measuring failed
                    self.measured.emit(cached_curve(self._target))

    @Slot()
    def unload(self) -> None:
        self._stop_serving()   # first: its generation thread uses the target
        if self._target is not None:
            self._ready.close()
            self._target.close()
            self._target = self._ready = None
            self._answers.clear()

    @Slot(object)
    def serve(self, options: dict | None) -> None:
        """Serve the loaded model with these LocalServer keywords (None: stop serving), or remember
        them for the next model. Unchanged options leave a running server alone."""
        if options == self._serve_options and (self._server is not None or options is None):
            return
        self._serve_options = options
        self._stop_serving()
        self._start_serving()

    def _start_serving(self) -> None:
        if self._serve_options is None or self._target is None:
            return
        from engine.server.serve import LocalServer  # fastapi and uvicorn: imported once serving is asked for

        try:
            with self._turn():   # the method it builds is this thread's too
                server = LocalServer(self._ready, **self._serve_options, turn=self._turn)
            server.start()
        except Exception as e:  # a port in use, an address that needs a key, drafters that fail to load
            self.serve_failed.emit(str(e))
            return
        self._server = server
        self.serving.emit(server.url, server.model_id)

    def _stop_serving(self) -> None:
        """Closes the port, cancels the client requests running or waiting, joins the server's threads."""
        if self._server is not None:
            self._server.stop()
            self._server = None
            self.serving.emit("", "")

    @Slot()
    def recalibrate(self) -> None:
        """Settings' re-measure: between answers, as the requests run in order on this thread."""
        if self._ready is None:
            self.measured.emit(None)
            return
        with self._turns.turn():
            try:
                curve = self._ready.recalibrate()
            except Exception:  # llama.cpp failing mid-measurement: the old curve stays in use
                curve = None
        self.measured.emit(curve)

    @Slot(object)
    def run(self, request: GenerationRequest) -> None:
        target = self._target
        if target is None:
            self.failed.emit(request.id, "no model is loaded")
            return
        with self._turn(request.cancel) as mine:
            if mine:
                self._answer(target, request)
            else:   # stopped while a client's request had the model: nothing was read or written
                self.finished.emit(request.id, Finished("", [], _nothing_done(request.method)))

    def _answer(self, target: Target, request: GenerationRequest) -> None:
        try:
            method = self._ready.get(request.method, request.method_params, request.drafters)
            if self._measured_now:   # said now, not after the answer
                self._measured_now = False
                self.measured.emit(self._ready.curve())
            # room for the answer: what it may grow to, but at most half the context
            prompt, left_out = fit_context(target, request.messages, self._answers,
                                           min(request.max_tokens, target.n_ctx // 2))
            if left_out:
                self.trimmed.emit(request.id, left_out)
            self.generating.emit(request.id)
            pieces = target.text_stream()
            last_emitted: list[tuple[str, str]] = []
            for event in generate(target, prompt, method, request.sampler, max_tokens=request.max_tokens,
                                  cancel=request.cancel):
                if isinstance(event, TextDelta):
                    # Per-token text, decoded separately, is what lets the GUI colour characters by
                    # the proposer of their token.
                    last_emitted = [(pieces.push(t), p) for t, p in zip(event.token_ids, event.provenance)]
                    runs = [[len(s), p] for s, p in last_emitted if s]
                    if event.text or runs:
                        self.text.emit(request.id, event.text, runs)
                elif isinstance(event, StepStats):
                    node_texts = [target.token_bytes(t).decode("utf-8", "replace") for t in event.tree.tokens]
                    self.step.emit(request.id, StepView(event, node_texts, last_emitted))
                elif isinstance(event, Finished):
                    if event.stats.stop_reason != "stop":   # a stop string cut the text short of its ids
                        self._answers.remember(event.text, event.token_ids)
                    self.finished.emit(request.id, event)
        except Exception as e:  # context overflow, bad method parameters, llama.cpp errors
            self.failed.emit(request.id, str(e))


def _nothing_done(method: str) -> RunStats:
    return RunStats(method=method, prompt_tokens=0, reused_tokens=0, new_tokens=0, target_passes=0, proposed=0,
                    accepted=0, ttft_s=0.0, total_s=0.0, prefill_s=0.0, draft_s=0.0, vp_s=0.0, verify_s=0.0,
                    other_s=0.0, stop_reason="cancel")


class Engine(QObject):
    """GUI-thread handle: owns the thread, forwards requests as queued signals, cancels directly."""
    _load = Signal(str, object)
    _run = Signal(object)
    _unload = Signal()
    _recalibrate = Signal()
    _serve = Signal(object)

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = EngineWorker()
        self._thread = QThread()
        self._thread.setObjectName("engine")
        self.worker.moveToThread(self._thread)
        self._load.connect(self.worker.load)
        self._run.connect(self.worker.run)
        self._unload.connect(self.worker.unload)
        self._recalibrate.connect(self.worker.recalibrate)
        self._serve.connect(self.worker.serve)
        self._next_id = 0
        self._active: GenerationRequest | None = None
        self.worker.finished.connect(self._on_done)
        self.worker.failed.connect(self._on_done)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._active is not None

    def load(self, path: str, settings: AppSettings) -> None:
        """Stops a running answer first; the load is queued behind it on the worker. `settings`: a copy
        the app no longer changes (the model's resources; the server, when they turn it on)."""
        self.stop()
        self._load.emit(path, settings)

    def serve(self, options: dict | None) -> None:
        """Start, move or stop serving the loaded model (None: stop), after any running answer."""
        self._serve.emit(options)

    def start(self, messages: list[dict], method: str, method_params: dict, sampler: SamplerSettings,
              max_tokens: int, drafters: tuple[str, str]) -> GenerationRequest:
        if self._active is not None:
            raise RuntimeError("a generation is already running")
        self._next_id += 1
        request = GenerationRequest(self._next_id, messages, method, method_params, sampler, max_tokens, drafters)
        self._active = request
        self._run.emit(request)
        return request

    def recalibrate(self) -> None:
        """Measure the loaded model's verify cost again, after any running answer."""
        self._recalibrate.emit()

    def stop(self) -> None:
        if self._active is not None:
            self._active.cancel.set()

    def _on_done(self, request_id: int, _payload) -> None:
        if self._active is not None and self._active.id == request_id:
            self._active = None

    def shutdown(self) -> None:
        """Cancel, free the model on its own thread, and join the thread."""
        self.stop()
        self._unload.emit()
        self._thread.quit()
        self._thread.wait()
