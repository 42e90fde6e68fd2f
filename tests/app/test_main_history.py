"""The app started offscreen on a damaged history file: it starts, keeps the old file beside the new one
and names it in a dialog."""
import pytest
from PySide6.QtWidgets import QMessageBox

from app.main import parse_args, start
from tests.damaged_history import KINDS, contents, damage


@pytest.mark.parametrize("kind", KINDS)
def test_the_app_starts_on_a_damaged_history(qtbot, tmp_path, monkeypatch, tiny_gguf, kind):
    monkeypatch.setenv("D2SD_DATA_DIR", str(tmp_path))
    path = tmp_path / "history.sqlite3"
    damage(path, kind)
    before = contents(path)
    window, history, notice = start(parse_args(["--model", str(tiny_gguf)]))
    try:
        qtbot.waitExposed(window)
        [aside] = tmp_path.glob("history.sqlite3.broken-*")
        assert contents(aside) == before   # kept beside the new history as it was
        assert isinstance(notice, QMessageBox) and notice.isVisible()
        assert str(path) in notice.text() and str(aside) in notice.text()
        # an empty history: nothing of the damaged file's (its one chat was titled "kept") was read
        assert "kept" not in [c.title for c in history.conversations()]
        assert window.conversations.list.count() == len(history.conversations()) <= 1
        qtbot.waitUntil(lambda: window.session.model_ready, timeout=30_000)
    finally:
        window.close()
        history.close()


def test_the_app_starts_without_a_notice_on_a_good_history(qtbot, tmp_path, monkeypatch, tiny_gguf):
    monkeypatch.setenv("D2SD_DATA_DIR", str(tmp_path))
    window, history, notice = start(parse_args(["--model", str(tiny_gguf)]))
    try:
        assert notice is None and (tmp_path / "history.sqlite3").is_file()
    finally:
        window.close()
        history.close()
