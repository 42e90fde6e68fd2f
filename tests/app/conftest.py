"""A real MainWindow on the real engine with the tiny random-weight GGUF, history in a temp SQLite file."""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from app.main_window import MainWindow
from app.settings import AppSettings
from engine.store.history import History

WAIT_MS = 30_000


@pytest.fixture
def history_path(tmp_path):
    return tmp_path / "history.sqlite3"


@pytest.fixture
def settings():
    return AppSettings(method="ar", n_ctx=8192, n_threads=1, max_tokens=48)


@pytest.fixture
def open_window(qtbot, history_path, settings, endless_gguf):
    """Opens windows on the same history file and model; closes them all at the end."""
    opened = []

    def open_() -> MainWindow:
        history = History(history_path)
        window = MainWindow(history, settings)
        opened.append((window, history))
        window.show()   # shortcuts such as Esc only fire in a visible, active window
        window.activateWindow()
        qtbot.waitExposed(window)
        window.load_model(str(endless_gguf))
        qtbot.waitUntil(lambda: window.session.model_ready, timeout=WAIT_MS)
        return window

    yield open_
    for window, history in opened:
        window.close()
        history.close()


@pytest.fixture
def window(open_window):
    return open_window()


def type_and_send(qtbot, window: MainWindow, text: str) -> None:
    window.prompt.setFocus()
    qtbot.keyClicks(window.prompt, text)
    qtbot.keyClick(window.prompt, Qt.Key_Return)


def wait_idle(qtbot, window: MainWindow, timeout_ms: int = WAIT_MS) -> None:
    qtbot.waitUntil(lambda: not window.session.busy, timeout=timeout_ms)
