"""What the window is doing with the history and the engine: the current conversation, the answer being
streamed, and the rule that text is shown only after it is saved.

The streaming answer is written to SQLite every THROTTLE_MS and only then re-rendered, so everything a
user has seen survives a crash (kill -9 included); the final write also stores the run's statistics.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from PySide6.QtCore import QCoreApplication, QEvent, QObject, QTimer, Signal

from app.settings import AppSettings
from app.worker import Engine, GenerationRequest, StepView
from engine.events import TARGET, Finished
from engine.store.history import Conversation, History, Message
from engine.verify import SamplerSettings

THROTTLE_MS = 150
DEFAULT_TITLE = "New chat"
SAMPLER_KEYS = tuple(f.name for f in fields(SamplerSettings))


@dataclass
class _Answer:
    request: GenerationRequest
    conversation_id: int
    message: Message                      # holds only what has been saved, so only that can be shown
    pending: str = ""                     # streamed text not saved yet
    left_out: int = 0                     # oldest messages left out so the prompt fits the context
    runs: list[list] = field(default_factory=list)


class ChatSession(QObject):
    conversations_changed = Signal()
    messages_changed = Signal()           # the current conversation's messages, re-render them
    busy_changed = Signal(bool)
    notice = Signal(str)                  # something the user must see: refusals, failures
    model_changed = Signal(str)           # status text: "Loading …", model name, or failure
    answer_started = Signal()
    decoding_started = Signal()           # after any measuring and drafter loading: the engine's TTFT clock starts
    step = Signal(object)                 # StepView of the streaming answer
    answer_finished = Signal(object)      # engine.events.RunStats
    measuring_changed = Signal(bool)      # the engine is measuring this machine's verify cost (auto's first run)

    def __init__(self, history: History, engine: Engine, settings: AppSettings,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.history = history
        self.engine = engine
        self.settings = settings
        self.current: Conversation | None = None
        self.messages: list[Message] = []
        self.model_path = ""
        self.model_name = ""
        self.model_n_ctx = 0              # the loaded model's context size in tokens
        self.model_ready = False
        self.model_loading = False
        self._answer: _Answer | None = None
        self._flush_timer = QTimer(self, singleShot=True, interval=THROTTLE_MS, timeout=self._flush)
        w = engine.worker
        w.loaded.connect(self._on_loaded)
        w.load_failed.connect(self._on_load_failed)
        w.text.connect(self._on_text)
        w.step.connect(self._on_step)
        w.finished.connect(self._on_finished)
        w.failed.connect(self._on_failed)
        w.generating.connect(self._on_generating)
        w.trimmed.connect(self._on_trimmed)
        w.measuring.connect(self._on_measuring)   # bound slots, so they run on this (the GUI) thread
        w.measured.connect(self._on_measured)

    # ---- model ---------------------------------------------------------------------------------------

    def load_model(self, path: str) -> None:
        """Stops a running answer (it is kept, marked stopped) before the engine switches models; the
        server, when the settings turn it on, moves to the new model."""
        self.model_ready = False
        self.model_loading = True
        self.model_path = path
        self.model_changed.emit(f"Loading {path} …")
        self.engine.load(path, replace(self.settings))   # a copy: the engine reads it on its own thread

    def _on_loaded(self, path: str, name: str, n_ctx: int) -> None:
        if path != self.model_path:
            return  # superseded by a later load request
        self.model_ready = True
        self.model_loading = False
        self.model_name = name
        self.model_n_ctx = n_ctx
        self.model_changed.emit(name)

    def _on_load_failed(self, path: str, reason: str) -> None:
        if path != self.model_path:
            return
        self.model_loading = False
        self.model_changed.emit("No model loaded")
        self.notice.emit(f"Could not load the model: {reason}")

    # ---- conversations -------------------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self._answer is not None

    @property
    def streaming_message_id(self) -> int | None:
        return self._answer.message.id if self._answer else None

    def shutdown(self) -> None:
        """Stop the engine and keep an unfinished answer, saved in full and marked stopped."""
        self.engine.shutdown()
        # The worker may have finished the answer just before it stopped: take its queued result.
        QCoreApplication.sendPostedEvents(self, QEvent.MetaCall)
        if self._answer is not None:
            answer = self._answer
            self._end(answer.message.content + answer.pending, "stopped", {"model": self.model_name})

    def new_conversation(self) -> None:
        """The conversation row is created on the first message, so empty chats do not pile up."""
        self.current = None
        self.messages = []
        self.messages_changed.emit()

    def select(self, conversation_id: int) -> None:
        self.current = self.history.conversation(conversation_id)
        self.messages = self.history.messages(conversation_id)
        if self._answer and self._answer.conversation_id == conversation_id:
            # the streaming answer's own object, which later flushes update in place
            self.messages = [self._answer.message if m.id == self._answer.message.id else m
                             for m in self.messages]
        self.messages_changed.emit()

    def rename(self, conversation_id: int, title: str) -> None:
        self.history.update_conversation(conversation_id, title=title.strip() or DEFAULT_TITLE)
        if self.current and self.current.id == conversation_id:
            self.current = self.history.conversation(conversation_id)
        self.conversations_changed.emit()

    def delete(self, conversation_id: int) -> None:
        if self._answer and self._answer.conversation_id == conversation_id:
            self.engine.stop()
        self.history.delete_conversation(conversation_id)
        if self.current and self.current.id == conversation_id:
            self.new_conversation()
        self.conversations_changed.emit()

    def ensure_conversation(self) -> Conversation:
        if self.current is None:
            self.current = self.history.create_conversation(DEFAULT_TITLE)
            self.conversations_changed.emit()
        return self.current

    def configure(self, system_prompt: str, sampling: dict) -> None:
        """System prompt and sampler for the current conversation; `sampling` must be valid (see dialog)."""
        conv = self.ensure_conversation()
        self.history.update_conversation(conv.id, system_prompt=system_prompt, sampling=sampling)
        self.current = self.history.conversation(conv.id)

    # ---- answering -----------------------------------------------------------------------------------

    def send(self, text: str, replace_from: int | None = None) -> bool:
        """Ask; with `replace_from`, that user message and everything after it are replaced (edit)."""
        if not text.strip() or not self._can_start():
            return False
        conv = self.ensure_conversation()
        if replace_from is not None:
            self.history.delete_messages_from(conv.id, replace_from)
        if conv.title == DEFAULT_TITLE:
            self.history.update_conversation(conv.id, title=_title_from(text))
            self.current = self.history.conversation(conv.id)
        self.history.add_message(conv.id, "user", text)
        self._start_answer(conv)
        return True

    def regenerate(self) -> bool:
        """Answer the last user message again, dropping the answer(s) after it."""
        if self.current is None or not self._can_start():
            return False
        last_user = next((m for m in reversed(self.messages) if m.role == "user"), None)
        if last_user is None:
            return False
        following = [m for m in self.messages if m.id > last_user.id]
        if following:
            self.history.delete_messages_from(self.current.id, following[0].id)
        self._start_answer(self.current)
        return True

    def stop(self) -> None:
        self.engine.stop()

    def recalibrate(self) -> bool:
        """Re-measure the loaded model's verify cost (queued behind a running answer)."""
        if not self.model_ready:
            self.notice.emit("No model is loaded: there is nothing to measure.")
            return False
        self.engine.recalibrate()
        return True

    def _can_start(self) -> bool:
        if self.busy:
            self.notice.emit("Still answering: press Esc (or Stop) before sending another message.")
            return False
        if self.model_loading:
            self.notice.emit("The model is still loading; send again once it is ready.")
            return False
        if not self.model_ready:
            self.notice.emit("No model is loaded: choose a GGUF file in File → Open model….")
            return False
        return True

    def _start_answer(self, conv: Conversation) -> None:
        history = [m for m in self.history.messages(conv.id) if m.content]
        prompt = ([{"role": "system", "content": conv.system_prompt}] if conv.system_prompt.strip() else [])
        prompt += [{"role": m.role, "content": m.content} for m in history]
        message = self.history.add_message(conv.id, "assistant", "", status="streaming")
        sampler = sampler_from(conv.sampling)
        s = self.settings
        request = self.engine.start(prompt, s.method, s.method_params(), sampler, s.max_tokens,
                                    (s.drafter_dir, s.vp_drafter_dir))
        self._answer = _Answer(request, conv.id, message)
        self.messages = self.history.messages(conv.id)
        self.messages[-1] = message
        self.answer_started.emit()
        self.busy_changed.emit(True)
        self.conversations_changed.emit()
        self.messages_changed.emit()

    def _mine(self, request_id: int) -> bool:
        return self._answer is not None and self._answer.request.id == request_id

    def _on_text(self, request_id: int, text: str, runs: list) -> None:
        if not self._mine(request_id):
            return
        self._answer.pending += text
        merged = self._answer.runs
        for length, source in runs:
            if merged and merged[-1][1] == source:
                merged[-1][0] += length
            else:
                merged.append([length, source])
        if not self._flush_timer.isActive():
            self._flush_timer.start()

    def _on_generating(self, request_id: int) -> None:
        if self._mine(request_id):
            self.decoding_started.emit()

    def _on_trimmed(self, request_id: int, left_out: int) -> None:
        if self._mine(request_id):
            self._answer.left_out = left_out
            self.notice.emit(f"The conversation no longer fits the context ({self.model_n_ctx} tokens): its "
                             f"oldest {left_out} messages were left out of this answer.")

    def _on_measuring(self) -> None:
        self.measuring_changed.emit(True)

    def _on_measured(self, _curve) -> None:
        self.measuring_changed.emit(False)

    def _on_step(self, request_id: int, view: StepView) -> None:
        if self._mine(request_id):
            self.step.emit(view)

    def _flush(self) -> None:
        answer = self._answer
        if answer is None:
            return
        m = answer.message
        content = m.content + answer.pending
        provenance = _fit_runs(answer.runs, len(content))
        self.history.update_message(m.id, content=content, provenance=provenance)
        m.content, m.provenance, answer.pending = content, provenance, ""
        self._show_if_current(answer)

    def _on_finished(self, request_id: int, finished: Finished) -> None:
        if not self._mine(request_id):
            return
        stats = {"model": self.model_name, **finished.stats.to_dict()}
        status = "stopped" if finished.stats.stop_reason == "cancel" else "done"
        self._end(finished.text, status, stats)
        self.answer_finished.emit(finished.stats)

    def _on_failed(self, request_id: int, reason: str) -> None:
        if not self._mine(request_id):
            return
        self._end(self._answer.message.content + self._answer.pending, "error", {"model": self.model_name, "error": reason})
        self.notice.emit(f"The answer failed: {reason}")

    def _end(self, text: str, status: str, stats: dict) -> None:
        self._flush_timer.stop()
        self.measuring_changed.emit(False)   # a failure may end a measurement without its result
        answer, self._answer = self._answer, None
        if answer.left_out:
            stats = {**stats, "left_out": answer.left_out}
        m = answer.message
        m.content, m.status, m.stats = text, status, stats
        m.provenance = _fit_runs(answer.runs, len(text))
        self.history.update_message(m.id, content=text, status=status, stats=stats, provenance=m.provenance)
        self.busy_changed.emit(False)
        self.conversations_changed.emit()
        self._show_if_current(answer)

    def _show_if_current(self, answer: _Answer) -> None:
        if self.current is not None and self.current.id == answer.conversation_id:
            self.messages_changed.emit()


def sampler_from(sampling: dict) -> SamplerSettings:
    """A conversation's saved sampler; keys this version does not know are ignored."""
    return SamplerSettings(**{k: v for k, v in sampling.items() if k in SAMPLER_KEYS})


def _title_from(text: str) -> str:
    line = text.strip().splitlines()[0]
    return line if len(line) <= 48 else line[:47].rstrip() + "…"


def _fit_runs(runs: list[list], length: int) -> list[list]:
    """Provenance covering exactly `length` characters: a stop string can cut the text short, and the
    final flush of an unfinished UTF-8 sequence adds a character that belongs to the last token."""
    out, left = [], length
    for n, source in runs:
        if left <= 0:
            break
        out.append([min(n, left), source])
        left -= n
    if left > 0:
        if out:
            out[-1][0] += left
        else:
            out.append([left, TARGET])
    return out
