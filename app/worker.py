"""The engine in its own thread: a QObject living in a QThread, driven by queued signals.

The GUI thread never calls into llama.cpp. Requests run in order on the worker thread, so a model
switch queued behind a cancelled answer starts only once that answer has finished cleanly.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.calibrate import CONTEXT_TOKENS, SIZES, CostCurve, cache_key, cache_path
from engine.events import Finished, StepStats, TextDelta
from engine.generate import generate
from engine.methods import DRAFTER_METHODS, make_method
from engine.target import Target, TargetSettings
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


class EngineWorker(QObject):
    cost_curve = Signal(object)           # a model loaded: its calibrated CostCurve, or None; before `loaded`
    loaded = Signal(str, str)             # model path, model name
    load_failed = Signal(str, str)        # model path, reason
    text = Signal(int, str, object)       # request id, new text, provenance runs [[n_chars, source]]
    step = Signal(int, object)            # request id, StepView
    finished = Signal(int, object)        # request id, engine.events.Finished
    failed = Signal(int, str)             # request id, reason

    def __init__(self):
        super().__init__()
        self._target: Target | None = None

    @Slot(str, object)
    def load(self, path: str, settings: TargetSettings) -> None:
        self.unload()
        try:
            self._target = Target.load(path, settings)
        except Exception as e:  # any load failure is shown to the user, the app keeps running
            self.load_failed.emit(path, str(e))
            return
        self.cost_curve.emit(_cached_curve(self._target))
        self.loaded.emit(path, self._target.info.name)

    @Slot()
    def unload(self) -> None:
        if self._target is not None:
            self._target.close()
            self._target = None

    @Slot(object)
    def run(self, request: GenerationRequest) -> None:
        target = self._target
        if target is None:
            self.failed.emit(request.id, "no model is loaded")
            return
        try:
            method = make_method(request.method, target, **request.method_params, **_drafters(request, target))
            prompt = target.chat_tokens(request.messages)
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
                    self.finished.emit(request.id, event)
        except Exception as e:  # context overflow, bad method parameters, llama.cpp errors
            self.failed.emit(request.id, str(e))


def _cached_curve(target) -> CostCurve | None:
    """The verify cost curve `d2sd bench` calibrated for this model file and settings, if any. The app
    only reads the cache: measuring would hold the model for a while before the first answer."""
    key = {**cache_key(target), "sizes": list(SIZES), "context": CONTEXT_TOKENS}  # as calibrate() files it
    try:
        curve = CostCurve.read(cache_path(key))
    except (OSError, ValueError):
        return None
    return curve if curve.key == key else None


def _drafters(request: GenerationRequest, target) -> dict:
    """The drafter folders chosen in the settings, loaded for this answer's method."""
    block, vp = request.drafters
    if not block or request.method not in DRAFTER_METHODS | {"auto"}:   # auto drafts when it has drafters
        return {}
    from engine.drafters.pair import load_pair  # torch: imported only once a drafter is used

    drafter, vp_drafter = load_pair(target.info.path, Path(block), Path(vp) if vp else None)
    return {"drafter": drafter, "vp_drafter": vp_drafter}


class Engine(QObject):
    """GUI-thread handle: owns the thread, forwards requests as queued signals, cancels directly."""
    _load = Signal(str, object)
    _run = Signal(object)
    _unload = Signal()

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = EngineWorker()
        self._thread = QThread()
        self._thread.setObjectName("engine")
        self.worker.moveToThread(self._thread)
        self._load.connect(self.worker.load)
        self._run.connect(self.worker.run)
        self._unload.connect(self.worker.unload)
        self._next_id = 0
        self._active: GenerationRequest | None = None
        self.worker.finished.connect(self._on_done)
        self.worker.failed.connect(self._on_done)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._active is not None

    def load(self, path: str, settings: TargetSettings) -> None:
        """Stops a running answer first; the load is queued behind it on the worker."""
        self.stop()
        self._load.emit(path, settings)

    def start(self, messages: list[dict], method: str, method_params: dict, sampler: SamplerSettings,
              max_tokens: int, drafters: tuple[str, str]) -> GenerationRequest:
        if self._active is not None:
            raise RuntimeError("a generation is already running")
        self._next_id += 1
        request = GenerationRequest(self._next_id, messages, method, method_params, sampler, max_tokens, drafters)
        self._active = request
        self._run.emit(request)
        return request

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
