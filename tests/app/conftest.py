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
def tiny_drafters(endless_gguf, tmp_path):
    """Folders of two untrained drafters (drafter 1, VP) for the tiny model, as the settings name them.
    Function-scoped so the shared head is cached in the test's isolated cache folder, not the user's."""
    import torch

    from engine.drafters import Drafter, DrafterConfig, SharedHead

    head = SharedHead.from_gguf(endless_gguf)
    config = DrafterConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=head.info.n_vocab, block_size=8,
                           mask_token_id=head.info.n_vocab - 1, target_layer_ids=(0, 1), num_target_layers=3)
    folders = []
    for seed, name in ((1, "block"), (2, "vp")):
        folder = tmp_path / "drafters" / name
        Drafter.random(config, head, seed=seed, std=0.2).save(folder)
        folders.append(folder)
    # Drafters this small gain nothing from torch's worker threads, and on a busy machine their waiting
    # slows each pass down many times over (24 tokens beside a busy job: 9 s with one thread, 140 s without).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tuple(folders)
    torch.set_num_threads(threads)


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
