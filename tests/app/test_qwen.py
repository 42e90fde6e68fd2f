"""The window on the embedded default target (skipped when it is not installed)."""
from __future__ import annotations

import pytest

from app.main_window import MainWindow
from app.settings import AppSettings
from engine.store.history import History
from tests.app.conftest import type_and_send


@pytest.mark.qwen
def test_answers_with_the_embedded_default(qtbot, tmp_path, qwen_path):
    history = History(tmp_path / "history.sqlite3")
    window = MainWindow(history, AppSettings(method="lookup", n_ctx=2048, n_threads=2, max_tokens=32))
    try:
        window.load_model(str(qwen_path))
        qtbot.waitUntil(lambda: window.session.model_ready, timeout=120_000)
        assert "Qwen" in window.windowTitle() or "qwen" in window.windowTitle()
        type_and_send(qtbot, window, "Write a Python one-liner that reverses a string s.")
        qtbot.waitUntil(lambda: not window.session.busy, timeout=300_000)
        answer = window.session.messages[-1]
        assert answer.status == "done", answer.stats
        assert "[::-1]" in answer.content
        assert answer.stats["new_tokens"] > 0
    finally:
        window.close()
        history.close()
