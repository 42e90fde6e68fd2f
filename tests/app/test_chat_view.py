"""The chat view while an answer streams (scroll and selection kept, the end followed only from the
end), copy buttons on code blocks, and the dark theme."""
from __future__ import annotations

from PySide6.QtCore import Qt, QUrl
from PySide6.QtGui import QPalette, QTextCursor
from PySide6.QtWidgets import QApplication

from app.theme import DARK, LIGHT
from tests.app.conftest import WAIT_MS, type_and_send, wait_idle

CODE = "def f(x):\n    return x + 1\n"


def _flushes(qtbot, window, count: int) -> None:
    """Wait until the streaming answer has been saved and shown `count` more times."""
    seen = []
    window.session.messages_changed.connect(lambda: seen.append(1))
    qtbot.waitUntil(lambda: len(seen) >= count, timeout=WAIT_MS)


def test_streaming_keeps_the_readers_scroll_position_and_selection(qtbot, window, settings):
    window.resize(1000, 600)
    settings.max_tokens = 2000
    type_and_send(qtbot, window, "first question")
    wait_idle(qtbot, window)
    settings.max_tokens = 3000
    type_and_send(qtbot, window, "second")
    _flushes(qtbot, window, 2)
    view, bar = window.chat, window.chat.verticalScrollBar()
    assert bar.maximum() > 200, "the conversation should be taller than the view"

    selection = view.document().find("first question")
    view.setTextCursor(selection)
    bar.setValue(bar.maximum() // 3)
    value = bar.value()
    _flushes(qtbot, window, 3)
    assert window.session.busy
    assert bar.value() == value
    assert view.textCursor().selectedText() == "first question"

    qtbot.keyClick(window.prompt, Qt.Key_Escape)   # the last render shows the stopped answer in full
    wait_idle(qtbot, window)
    assert "stopped" in view.toPlainText()
    assert bar.value() == value and view.textCursor().selectedText() == "first question"


def test_streaming_follows_the_end_while_the_reader_is_there(qtbot, window, settings):
    settings.max_tokens = 3000
    type_and_send(qtbot, window, "go on")
    _flushes(qtbot, window, 2)
    bar = window.chat.verticalScrollBar()
    bar.setValue(bar.maximum())
    start = bar.maximum()
    qtbot.waitUntil(lambda: bar.maximum() > start + 50, timeout=WAIT_MS)
    _flushes(qtbot, window, 1)
    assert bar.value() == bar.maximum()
    qtbot.keyClick(window.prompt, Qt.Key_Escape)
    wait_idle(qtbot, window)


def _conversation_with_code(window):
    history = window.session.history
    conv = history.create_conversation("code")
    history.add_message(conv.id, "user", "write f")
    answer = history.add_message(conv.id, "assistant", f"Here:\n\n```python\n{CODE}```\n\nand\n\n```\nls -l\n```\n",
                                 status="done")
    window.session.select(conv.id)
    return answer


def test_each_code_block_has_a_copy_link(qtbot, window):
    answer = _conversation_with_code(window)
    assert window.chat.toPlainText().count("copy code") == 2
    window.chat.anchorClicked.emit(QUrl(f"copycode:{answer.id}:0"))
    assert QApplication.clipboard().text() == CODE
    window.chat.anchorClicked.emit(QUrl(f"copycode:{answer.id}:1"))
    assert QApplication.clipboard().text() == "ls -l\n"
    assert window.statusBar().currentMessage() == "Code copied."


def test_dark_theme_is_a_setting_and_colours_the_chat(qtbot, window):
    _conversation_with_code(window)
    assert window.settings.theme == "system"
    system_window = QApplication.palette().color(QPalette.Window)
    try:
        window.theme_actions["dark"].trigger()
        assert window.settings.theme == "dark"
        assert QApplication.palette().color(QPalette.Window).lightness() < 128
        assert DARK.code_background in window.chat.toHtml() and LIGHT.code_background not in window.chat.toHtml()
        assert window.chat.colours is DARK
    finally:
        window.theme_actions["system"].trigger()
    # the offscreen platform's palette is light, so following the system is light here
    assert QApplication.palette().color(QPalette.Window) == system_window
    assert window.chat.colours is LIGHT and LIGHT.code_background in window.chat.toHtml()
