"""Choosing what to chat with from the main window: a GGUF dropped on it is imported into the store and
becomes the chat's model, with a compatible drafter from the store paired to it; the status bar names
the target, the drafters and the method."""
from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent

from app.main_window import MainWindow
from engine.store.history import History
from engine.store.model_store import ModelStore
from tests.app.conftest import WAIT_MS, type_and_send, wait_idle


def test_a_dropped_gguf_is_imported_and_chats_with_a_compatible_drafter(qtbot, tmp_path, settings, endless_gguf,
                                                                       tiny_drafters):
    store = ModelStore(root=tmp_path / "models")
    drafter = store.import_drafter(tiny_drafters[0])
    history = History(tmp_path / "history.sqlite3")
    window = MainWindow(history, settings, store=store)
    qtbot.addWidget(window)
    window.show()
    try:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(tmp_path / "notes.txt")), QUrl.fromLocalFile(str(endless_gguf))])
        window.dropEvent(QDropEvent(QPointF(20, 20), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
        qtbot.waitUntil(lambda: window.session.model_ready, timeout=WAIT_MS)

        [target] = [listing for listing in store.installed() if listing.model.kind == "target"]
        assert target.model.name == "endless.gguf"
        assert window.session.model_path == str(target.path) == settings.model_path
        assert settings.drafter_dir == str(store.path_of(drafter.id)) and settings.vp_drafter_dir == ""
        assert window.model_label.text() == f"tiny-random-llama · drafters {drafter.id} · ar"

        settings.method, settings.gamma, settings.max_tokens = "dflash", 4, 8   # drafts with the paired drafter
        window.apply_settings(settings)
        assert window.model_label.text().endswith(" · dflash")
        type_and_send(qtbot, window, "hello")
        wait_idle(qtbot, window, 4 * WAIT_MS)
        answer = window.session.messages[-1]
        assert answer.status == "done" and answer.stats["method"] == "dflash"
    finally:
        window.close()
        history.close()
