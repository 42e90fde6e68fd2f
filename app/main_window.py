"""The main window: conversations on the left, the chat in the middle, statistics and the candidate tree
on the right. It wires widgets to the ChatSession and holds no conversation state of its own beyond
which user message is being edited."""
from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QCloseEvent, QKeySequence, QShortcut
from PySide6.QtWidgets import (QApplication, QFileDialog, QHBoxLayout, QLabel, QMainWindow, QProgressBar,
                               QPushButton, QSplitter, QTabWidget, QVBoxLayout, QWidget)

from app.chat_session import ChatSession
from app.chat_view import ChatView
from app.conversation_dialog import ConversationDialog
from app.conversation_list import ConversationList
from app.markdown import code_blocks, provenance_legend
from app.models_window import ModelsWindow
from app.prompt_edit import PromptEdit
from app.settings import AppSettings, save_settings
from app.settings_dialog import SettingsDialog
from app.stats_panel import StatsPanel
from app.theme import THEMES, apply_theme
from app.tree_view import TreeView
from app.worker import Engine
from engine.store.embedded import DEFAULT_TARGET
from engine.store.history import History
from engine.store.model_store import ModelStore

NOTICE_MS = 10_000
RELOAD_FIELDS = ("model_path", "n_gpu_layers", "n_threads", "n_ctx")


class MainWindow(QMainWindow):
    def __init__(self, history: History, settings: AppSettings, resolve_model=None,
                 store: ModelStore | None = None):
        """`resolve_model(settings, parent) -> path | None` turns the settings' model choice into a file
        (app.main's assembles the embedded default when needed); a None result keeps the current model.
        `store`: the installed models (default: the user's)."""
        super().__init__()
        self.setAcceptDrops(True)   # a .gguf dropped on the window is imported and used
        self._store = store
        self.setWindowTitle("D2SD Desktop")
        self.resize(1400, 860)
        self.settings = settings
        self._resolve_model = resolve_model or (lambda s, _parent: s.model_path or None)
        self.engine = Engine(self)
        self.session = ChatSession(history, self.engine, settings, self)
        self.editing: int | None = None   # id of the user message being edited, if any
        self.models_window: ModelsWindow | None = None   # created on first use: it starts two threads

        self.conversations = ConversationList()
        self.chat = ChatView()
        self.prompt = PromptEdit()
        self.prompt.setPlaceholderText("Message (Enter sends, Shift+Enter for a new line)")
        self.prompt.setMaximumHeight(120)
        self.send_button = QPushButton("Send", clicked=self.send)
        self.stop_button = QPushButton("Stop", clicked=self.session.stop, enabled=False)
        self.edit_banner = QLabel("Editing a message: sending replaces it and everything after it. "
                                  "Esc cancels.")
        self.edit_banner.hide()
        self.title = QLabel()
        self.title.setStyleSheet("font-weight:bold")
        self.legend = QLabel(provenance_legend())
        self.legend.setVisible(settings.show_provenance)

        conv_settings = QPushButton("System prompt && sampling…", clicked=self.edit_conversation)
        header = QHBoxLayout()
        header.addWidget(self.title, 1)
        header.addWidget(conv_settings)
        input_row = QHBoxLayout()
        input_row.addWidget(self.prompt, 1)
        buttons = QVBoxLayout()
        buttons.addWidget(self.send_button)
        buttons.addWidget(self.stop_button)
        input_row.addLayout(buttons)
        centre = QWidget()
        column = QVBoxLayout(centre)
        column.addLayout(header)
        column.addWidget(self.chat, 1)
        column.addWidget(self.legend)
        column.addWidget(self.edit_banner)
        column.addLayout(input_row)

        self.stats = StatsPanel()
        self.tree = TreeView()
        self.side = QTabWidget()
        self.side.addTab(self.stats, "Statistics")
        self.side.addTab(self.tree, "Candidate tree")

        splitter = QSplitter(Qt.Horizontal)
        splitter.addWidget(self.conversations)
        splitter.addWidget(centre)
        splitter.addWidget(self.side)
        splitter.setSizes([240, 760, 400])
        self.setCentralWidget(splitter)

        self.model_label = QLabel("No model loaded")
        self.loading = QProgressBar()
        self.loading.setRange(0, 0)  # llama.cpp reports no load progress: an honest busy indicator
        self.loading.setMaximumWidth(160)
        self.loading.hide()
        self.measure_label = QLabel()
        self.measure_label.hide()
        self._measure_started = 0.0
        self._measure_timer = QTimer(self, interval=1000, timeout=self._show_measuring)
        self.serve_label = QLabel()   # where the model is served to other tools, when it is
        self.serve_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.serve_label.hide()
        self.statusBar().addPermanentWidget(self.serve_label)
        self.statusBar().addPermanentWidget(self.measure_label)
        self.statusBar().addPermanentWidget(self.loading)
        self.statusBar().addPermanentWidget(self.model_label)

        self._build_menus()
        self.apply_theme()
        QShortcut(QKeySequence(Qt.Key_Escape), self, activated=self.escape)
        self._connect()
        self.refresh_conversations()
        self.show_current()

    # ---- construction ------------------------------------------------------------------------------------

    def _build_menus(self) -> None:
        file = self.menuBar().addMenu("&File")
        file.addAction(_action(self, "New chat", self.new_chat, QKeySequence.New))
        file.addAction(_action(self, "Open model…", self.open_model, QKeySequence.Open))
        file.addAction(_action(self, "Settings…", self.edit_settings, QKeySequence("Ctrl+,")))
        file.addAction(_action(self, "Models…", self.open_models, QKeySequence("Ctrl+M")))
        file.addSeparator()
        file.addAction(_action(self, "Quit", self.close, QKeySequence.Quit))
        chat = self.menuBar().addMenu("&Chat")
        chat.addAction(_action(self, "Regenerate last answer", self.session.regenerate, QKeySequence("Ctrl+R")))
        chat.addAction(_action(self, "Stop", self.session.stop))
        chat.addAction(_action(self, "System prompt && sampling…", self.edit_conversation))
        view = self.menuBar().addMenu("&View")
        self.provenance_action = _action(self, "Colour answers by token source", self.toggle_provenance)
        self.provenance_action.setCheckable(True)
        self.provenance_action.setChecked(self.settings.show_provenance)
        view.addAction(self.provenance_action)
        themes = view.addMenu("Theme")
        group = QActionGroup(self)
        self.theme_actions = {}
        for name in THEMES:
            action = _action(self, name.capitalize() if name != "system" else "Follow the system",
                             lambda n=name: self.set_theme(n))
            action.setCheckable(True)
            action.setChecked(name == self.settings.theme)
            group.addAction(action)
            themes.addAction(action)
            self.theme_actions[name] = action

    def _connect(self) -> None:
        s = self.session
        s.conversations_changed.connect(self.refresh_conversations)
        s.messages_changed.connect(self.show_current)
        s.busy_changed.connect(self._on_busy)
        s.notice.connect(self.notify)
        s.model_changed.connect(self._on_model_changed)
        s.answer_started.connect(self.stats.begin)
        s.answer_started.connect(self.tree.begin)
        s.decoding_started.connect(self.stats.decoding_started)
        s.step.connect(lambda view: self.stats.add_step(view.stats))
        s.step.connect(self.tree.show_step)
        s.answer_finished.connect(self.stats.finish)
        s.answer_finished.connect(lambda _stats: self.tree.flush())
        self.engine.worker.cost_curve.connect(self.stats.model_changed)
        self.engine.worker.measured.connect(self.stats.set_curve)
        self.engine.worker.serving.connect(self._on_serving)
        self.engine.worker.serve_failed.connect(self._on_serve_failed)
        s.measuring_changed.connect(self._on_measuring)
        self.prompt.submitted.connect(self.send)
        self.chat.action.connect(self._on_message_action)
        self.chat.copy_code.connect(self._copy_code)
        c = self.conversations
        c.new_requested.connect(self.new_chat)
        c.selected.connect(self._select)
        c.rename_requested.connect(s.rename)
        c.delete_requested.connect(s.delete)
        c.search_changed.connect(lambda _text: self.refresh_conversations())

    # ---- actions -------------------------------------------------------------------------------------------

    def load_model(self, path: str) -> None:
        self.session.load_model(path)

    def new_chat(self) -> None:
        self._stop_editing()
        self.session.new_conversation()
        if not self.session.busy:   # a streaming answer elsewhere keeps its live numbers
            self.stats.clear()
            self.tree.clear()

    def send(self) -> None:
        text = self.prompt.toPlainText()
        if self.session.send(text, replace_from=self.editing):
            self.prompt.clear()
            self._stop_editing()

    def escape(self) -> None:
        if self.session.busy:
            self.session.stop()
        elif self.editing is not None:
            self._stop_editing()
            self.prompt.clear()

    def notify(self, text: str) -> None:
        self.statusBar().showMessage(text, NOTICE_MS)

    def toggle_provenance(self) -> None:
        self.settings.show_provenance = self.provenance_action.isChecked()
        self.legend.setVisible(self.settings.show_provenance)
        save_settings(self.settings)
        self.show_current()

    def set_theme(self, theme: str) -> None:
        self.settings.theme = theme
        save_settings(self.settings)
        self.apply_theme()

    def apply_theme(self) -> None:
        colours = apply_theme(self.settings.theme)
        self.chat.set_colours(colours)
        self.stats.set_dark(colours.dark)
        self.edit_banner.setStyleSheet(f"background:{colours.banner}; padding:4px")
        self.legend.setText(provenance_legend(colours))
        self.show_current()

    def edit_conversation(self) -> None:
        conv = self.session.current
        dialog = ConversationDialog(conv.system_prompt if conv else "", conv.sampling if conv else {}, self)
        if dialog.exec():
            self.session.configure(dialog.system_prompt.toPlainText(), dialog.sampling())

    def edit_settings(self) -> None:
        dialog = SettingsDialog(self.settings, self)
        dialog.remeasure_requested.connect(self.session.recalibrate)
        if dialog.exec():
            self.apply_settings(dialog.result_settings())

    def open_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a GGUF model", self.settings.model_path,
                                              "GGUF models (*.gguf)")
        if path:
            self.apply_settings(replace(self.settings, model_path=path))

    def open_models(self) -> None:
        self.models().show()
        self.models_window.raise_()
        self.models_window.activateWindow()

    def models(self) -> ModelsWindow:
        if self.models_window is None:
            self.models_window = ModelsWindow(self._store or ModelStore(), self)
            self.models_window.use_requested.connect(self.use_model)
        return self.models_window

    def use_model(self, path: str, drafters: tuple[str, str]) -> None:
        """A model chosen in the Models window (or dropped): chat with it and the drafters paired with it."""
        self.apply_settings(replace(self.settings, model_path=path, drafter_dir=drafters[0],
                                    vp_drafter_dir=drafters[1]))

    def dragEnterEvent(self, event) -> None:
        if _dropped_gguf(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = _dropped_gguf(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.open_models()
            self.models_window.import_gguf(path)
            self.notify(f"Importing {path}…")

    def apply_settings(self, new: AppSettings) -> None:
        """Saves, then reloads the model if a setting that shapes it changed (stopping any answer; the
        server follows the model), else starts, moves or stops the server as its settings say."""
        reload = any(getattr(new, f) != getattr(self.settings, f) for f in RELOAD_FIELDS)
        serving = new.server_options() != self.settings.server_options()
        for name, value in vars(new).items():
            setattr(self.settings, name, value)   # the session shares this object
        save_settings(self.settings)
        self.provenance_action.setChecked(self.settings.show_provenance)
        self.legend.setVisible(self.settings.show_provenance)
        self.show_current()
        self._show_model_status()
        path = self._resolve_model(self.settings, self) if reload else None
        if path:
            self.load_model(str(path))
        elif serving:
            self.engine.serve(self.settings.server_options())

    # ---- views -----------------------------------------------------------------------------------------------

    def refresh_conversations(self) -> None:
        s = self.session
        self.conversations.show_conversations(s.history.conversations(self.conversations.search.text()),
                                              s.current.id if s.current else None)

    def show_current(self) -> None:
        s = self.session
        self.title.setText(s.current.title if s.current else "New chat")
        self.conversations.mark_current(s.current.id if s.current else None)
        self.chat.show_messages(s.messages, streaming_id=s.streaming_message_id,
                                show_provenance=self.settings.show_provenance)

    def _select(self, conversation_id: int) -> None:
        self._stop_editing()
        self.session.select(conversation_id)
        if not self.session.busy:
            last = next((m for m in reversed(self.session.messages) if m.role == "assistant"), None)
            self.stats.show_saved(last.stats if last else None)

    def _on_message_action(self, action: str, message_id: int) -> None:
        message = next((m for m in self.session.messages if m.id == message_id), None)
        if message is None:
            return
        if action == "copy":
            QApplication.clipboard().setText(message.content)
            self.notify("Copied.")
        elif action == "edit":
            self.editing = message_id
            self.prompt.setPlainText(message.content)
            self.prompt.setFocus()
            self.edit_banner.show()
        elif action == "regenerate":
            self.session.regenerate()

    def _copy_code(self, message_id: int, block: int) -> None:
        message = next((m for m in self.session.messages if m.id == message_id), None)
        blocks = code_blocks(message.content) if message else []
        if block < len(blocks):
            QApplication.clipboard().setText(blocks[block])
            self.notify("Code copied.")

    def _stop_editing(self) -> None:
        self.editing = None
        self.edit_banner.hide()

    def _on_busy(self, busy: bool) -> None:
        self.stop_button.setEnabled(busy)
        self.send_button.setEnabled(not busy)

    def _on_measuring(self, measuring: bool) -> None:
        """auto's first run measures the verify cost for a while: say so, with the time it has taken."""
        if measuring == self.measure_label.isVisible():
            return
        self.measure_label.setVisible(measuring)
        self.loading.setVisible(measuring or self.session.model_loading)
        if measuring:
            self._measure_started = time.monotonic()
            self._show_measuring()
            self._measure_timer.start()
        else:
            self._measure_timer.stop()

    def _show_measuring(self) -> None:
        seconds = time.monotonic() - self._measure_started
        self.measure_label.setText(f"Measuring this machine's verify cost… {seconds:.0f} s")

    def _on_serving(self, url: str, model_id: str) -> None:
        self.serve_label.setVisible(bool(url))
        self.serve_label.setText(f"Serving at {url}")
        self.serve_label.setToolTip(f"The OpenAI API for other tools on this model (model id {model_id!r}); "
                                    "turn it off in File → Settings")

    def _on_serve_failed(self, reason: str) -> None:
        self.serve_label.show()
        self.serve_label.setText("Not serving")
        self.serve_label.setToolTip(reason)
        self.notify(f"Could not serve the model: {reason}")

    def _on_model_changed(self, text: str) -> None:
        loading = not self.session.model_ready and text.startswith("Loading")
        self.loading.setVisible(loading)
        self.model_label.setText(text)
        if self.session.model_ready:
            self.setWindowTitle(f"D2SD Desktop — {text}")
            self._show_model_status()

    def _show_model_status(self) -> None:
        """Target · drafters · method, once a model is loaded."""
        s = self.session
        if s.model_ready:
            self.model_label.setText(f"{s.model_name} · {_drafters_text(self.settings, s.model_path)} · "
                                     f"{self.settings.method}")
            chosen = "as set in Settings" if self.settings.n_ctx else "the model's own, capped by free memory"
            self.model_label.setToolTip(f"{s.model_path}\nContext: {s.model_n_ctx} tokens ({chosen})")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.session.shutdown()
        if self.models_window is not None:
            self.models_window.shutdown()
        super().closeEvent(event)


def _dropped_gguf(mime) -> str | None:
    paths = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []
    return next((p for p in paths if p.lower().endswith(".gguf")), None)


def _drafters_text(settings: AppSettings, model_path: str) -> str:
    if settings.drafter_dir:
        folders = (settings.drafter_dir, settings.vp_drafter_dir)
        return "drafters " + " + ".join(Path(f).name for f in folders if f)
    # only the embedded default ships with a pair (engine.drafters.pair, not imported here: it loads torch)
    embedded = model_path and Path(model_path).resolve() == DEFAULT_TARGET.path().resolve()
    return "built-in drafters" if embedded else "no drafters"


def _action(parent: QWidget, text: str, slot, shortcut=None) -> QAction:
    action = QAction(text, parent)
    action.triggered.connect(lambda *_: slot())
    if shortcut is not None:
        action.setShortcut(shortcut)
    return action
