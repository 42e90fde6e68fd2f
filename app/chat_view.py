"""The conversation as rich text: markdown with highlighted code, per-message actions as links."""
from __future__ import annotations

import html

from PySide6.QtCore import QUrl, Signal
from PySide6.QtWidgets import QTextBrowser, QWidget

from app.markdown import render_markdown, render_provenance
from engine.store.history import Message

ROLE_TITLES = {"user": "You", "assistant": "Assistant"}


class ChatView(QTextBrowser):
    action = Signal(str, int)   # "copy" | "edit" | "regenerate", message id

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setOpenLinks(False)
        self.setOpenExternalLinks(False)
        self.anchorClicked.connect(self._on_anchor)
        self._cache: dict[int, tuple[tuple, str]] = {}
        self.messages: list[Message] = []

    def show_messages(self, messages: list[Message], *, streaming_id: int | None, busy: bool,
                      show_provenance: bool) -> None:
        """Re-render; finished messages come from a cache so a streaming answer costs one render."""
        bar = self.verticalScrollBar()
        at_bottom = bar.value() >= bar.maximum() - 4
        self.messages = messages
        last_assistant = next((m.id for m in reversed(messages) if m.role == "assistant"), None)
        parts = []
        for m in messages:
            actions = ["copy"]
            if not busy and m.role == "user":
                actions.append("edit")
            if not busy and m.id == last_assistant:
                actions.append("regenerate")
            parts.append(self._message_html(m, m.id == streaming_id, actions, show_provenance))
        ids = {m.id for m in messages}
        self._cache = {k: v for k, v in self._cache.items() if k in ids}
        self.setHtml("".join(parts) or '<p style="color:#57606a">Ask anything. Enter sends, '
                     "Shift+Enter adds a line, Esc stops the answer.</p>")
        if at_bottom:  # follow the stream unless the user scrolled up to read
            bar.setValue(bar.maximum())

    def _message_html(self, m: Message, streaming: bool, actions: list[str], show_provenance: bool) -> str:
        key = (m.content, m.status, streaming, tuple(actions), show_provenance, bool(m.stats))
        cached = self._cache.get(m.id)
        if cached and cached[0] == key:
            return cached[1]
        if m.role == "assistant" and show_provenance and m.provenance:
            body = render_provenance(m.content, m.provenance)
        else:
            body = render_markdown(m.content) if m.content else ""
        links = " · ".join(f'<a href="{a}:{m.id}">{a}</a>' for a in actions)
        note = _status_note(m, streaming)
        meta = _stats_line(m.stats) if m.stats else ""
        out = (f'<p style="margin-top:12px"><b>{ROLE_TITLES[m.role]}</b>'
               f' <span style="color:#57606a">&nbsp; {links}</span></p>'
               f"{body}{note}{meta}<hr/>")
        self._cache[m.id] = (key, out)
        return out

    def _on_anchor(self, url: QUrl) -> None:
        name, _, ident = url.toString().partition(":")
        if ident.isdigit():
            self.action.emit(name, int(ident))


def _status_note(m: Message, streaming: bool) -> str:
    if streaming:
        return '<p style="color:#57606a">▍ generating…</p>'
    text = {"streaming": "⚠ interrupted (the app closed mid-answer)", "stopped": "■ stopped",
            "error": "⚠ the engine failed"}.get(m.status)
    if not text:
        return ""
    detail = (m.stats or {}).get("error")
    if detail:
        text += ": " + html.escape(detail)
    return f'<p style="color:#9a6700">{text}</p>'


def _stats_line(s: dict) -> str:
    if "tokens_per_s" not in s:
        return ""
    model = f"{html.escape(s['model'])} · " if s.get("model") else ""
    return (f'<p style="color:#57606a; font-size:small">{model}{html.escape(s.get("method", ""))} · '
            f'{s.get("new_tokens", 0)} tokens · {s["tokens_per_s"]:.1f} tok/s · τ {s.get("tau", 0):.2f}</p>')
