"""A real MainWindow on the real engine with the tiny random-weight GGUF, history in a temp SQLite file."""
from __future__ import annotations

import shutil

import pytest
from gguf import GGUFReader
from PySide6.QtCore import Qt

from app.main_window import MainWindow
from app.settings import AppSettings
from engine.store.history import History

WAIT_MS = 30_000


@pytest.fixture(scope="session")
def endless_gguf(tiny_gguf, tmp_path_factory):
    """The tiny model with zeroed output rows for its control tokens, so it never ends an answer on its
    own: streaming, stop and crash tests need answers that run until they are stopped."""
    path = tmp_path_factory.mktemp("endless") / "endless.gguf"
    shutil.copy(tiny_gguf, path)
    reader = GGUFReader(path, "r+")
    output = next(t for t in reader.tensors if t.name == "output.weight")
    output.data[:5] = 0   # ids 0-4: <unk> <s> </s> <|im_start|> <|im_end|>; other logits are mostly > 0
    output.data.flush()
    del reader
    return path


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


def wait_idle(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.session.busy, timeout=WAIT_MS)
