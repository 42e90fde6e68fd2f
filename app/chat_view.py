"""The conversation as rich text: markdown with highlighted code, per-message actions as links.

While an answer streams only its own part of the document is replaced (it is always the last message),
so the text above keeps its layout: the scroll position and a selection there stay where the reader
left them, and the view follows the end only while the reader is at the end.
"""
from __future__ import annotations

import html

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QTextBrowser, QWidget

from app.markdown import render_markdown, render_provenance
from app.theme import LIGHT, Colours
from engine.store.history import Message

ROLE_TITLES = {"user": "You", "assistant": "Assistant"}
AT_END_PX = 4   # this close to the bottom counts as reading the end
RULE = "<hr/>"  # between messages


class ChatView(QTextBrowser):
    action = Signal(str, int)   # "copy" | "edit" | "regenerate", message id
    copy_code = Signal(int, int)   # message id, index of the code block in it

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self._cache: dict[int, tuple[tuple, str]] = {}
        self.messages: list[Message] = []
        self.colours: Colours = LIGHT
        self._above: tuple | None = None        # what the messages above the last were rendered from
        self._last_start: int | None = None     # document position where the last message begins

    def set_colours(self, colours: Colours) -> None:
        self.colours = colours
        self._cache.clear()
        self._above = None   # the next show_messages renders everything anew

    def show_messages(self, messages: list[Message], *, streaming_id: int | None, show_provenance: bool) -> None:
        """Re-render what changed: when only the last message did (an answer streaming or ending), only
        its part of the document. Each message offers the same actions busy or not (the session refuses
        what cannot run yet), so an answer's end changes nothing above it."""
        self.messages = messages
        last_assistant = next((m.id for m in reversed(messages) if m.role == "assistant"), None)
        parts, layout = [], [(self.colours, show_provenance)]
        for m in messages:
            actions = ["copy", "edit"] if m.role == "user" else ["copy"]
            if m.id == last_assistant:
                actions.append("regenerate")
            streaming = m.id == streaming_id
            parts.append(self._message_html(m, streaming, actions, show_provenance))
            layout.append((m.id, m.status, streaming, tuple(actions), bool(m.stats), m.content))
        ids = {m.id for m in messages}
        self._cache = {k: v for k, v in self._cache.items() if k in ids}

        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - AT_END_PX
        above = (tuple(layout[:-1]), messages[-1].id if messages else None)
        if messages and above == self._above and self._last_start is not None:
            self._replace_from(self._last_start, _last_html(parts))
        else:
            self._render_all(parts)
        self._above = above
        if at_end:  # follow the stream unless the reader scrolled up
            bar.setValue(bar.maximum())

    def _render_all(self, parts: list[str]) -> None:
        """The whole document anew, at the same scroll position."""
        bar = self.verticalScrollBar()
        value = bar.value()
        self.setHtml(RULE.join(parts[:-1]) or (
            "" if parts else f'<p style="color:{self.colours.muted}">Ask anything. Enter sends, '
                             "Shift+Enter adds a line, Esc stops the answer.</p>"))
        self._last_start = None
        if parts:
            # the last message, rule first, goes after the end of the text above (the rule opens a block)
            self._last_start = self._end_position() if len(parts) > 1 else 0
            self._replace_from(self._last_start, _last_html(parts))
        bar.setValue(value)

    def _replace_from(self, start: int, part: str) -> None:
        edit = QTextCursor(self.document())
        edit.setPosition(start)
        edit.movePosition(QTextCursor.End, QTextCursor.KeepAnchor)
        edit.insertHtml(part)

    def _end_position(self) -> int:
        end = QTextCursor(self.document())
        end.movePosition(QTextCursor.End)
        return end.position()

    def _message_html(self, m: Message, streaming: bool, actions: list[str], show_provenance: bool) -> str:
        key = (m.content, m.status, streaming, tuple(actions), show_provenance, bool(m.stats))
        cached = self._cache.get(m.id)
        if cached and cached[0] == key:
            return cached[1]
        if m.role == "assistant" and show_provenance and m.provenance:
            body = render_provenance(m.content, m.provenance)
        else:
            body = render_markdown(m.content, self.colours, f"copycode:{m.id}:") if m.content else ""
        muted = self.colours.muted
        links = " · ".join(f'<a href="{a}:{m.id}">{a}</a>' for a in actions)
        note = _status_note(m, streaming, self.colours)
        meta = _stats_line(m.stats, muted) if m.stats else ""
        out = (f'<p style="margin-top:12px"><b>{ROLE_TITLES[m.role]}</b>'
               f' <span style="color:{muted}">&nbsp; {links}</span></p>'
               f"{body}{note}{meta}")
        self._cache[m.id] = (key, out)
        return out

    def _on_anchor(self, url: QUrl) -> None:
        name, _, ident = url.toString().partition(":")
        if name == "copycode":
            message, _, block = ident.partition(":")
            if message.isdigit() and block.isdigit():
                self.copy_code.emit(int(message), int(block))
        elif ident.isdigit():
            self.action.emit(name, int(ident))


def _last_html(parts: list[str]) -> str:
    return (RULE if len(parts) > 1 else "") + parts[-1]


def _status_note(m: Message, streaming: bool, colours: Colours) -> str:
    if streaming:
        return f'<p style="color:{colours.muted}">▍ generating…</p>'
    text = {"streaming": "⚠ interrupted (the app closed mid-answer)", "stopped": "■ stopped",
            "error": "⚠ the engine failed"}.get(m.status)
    if not text:
        return ""
    detail = (m.stats or {}).get("error")
    if detail:
        text += ": " + html.escape(detail)
    return f'<p style="color:{colours.warning}">{text}</p>'


def _stats_line(s: dict, muted: str) -> str:
    if "tokens_per_s" not in s:
        return ""
    model = f"{html.escape(s['model'])} · " if s.get("model") else ""
    left_out = s.get("left_out")
    trimmed = (f" · the oldest {left_out} messages did not fit the context and were left out"
               if isinstance(left_out, int) and left_out > 0 else "")
    return (f'<p style="color:{muted}; font-size:small">{model}{html.escape(s.get("method", ""))} · '
            f'{s.get("new_tokens", 0)} tokens · {s["tokens_per_s"]:.1f} tok/s · τ {s.get("tau", 0):.2f}{trimmed}</p>')
