"""Markdown to the HTML subset QTextBrowser renders: code blocks highlighted by Pygments with inline styles
(Qt's rich text has no stylesheet classes for them), and provenance-coloured plain text."""
from __future__ import annotations

import html

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from engine.events import ARDRAFT, DRAFTER1, LOOKUP, TARGET, VP

CODE_BACKGROUND = "#f6f8fa"
_FORMATTER = HtmlFormatter(noclasses=True, nowrap=True, style="default")

# One colour per proposer; the target's own tokens stay in the normal text colour.
PROVENANCE_COLOURS = {
    DRAFTER1: "#1f6feb",
    VP: "#8250df",
    LOOKUP: "#bc4c00",
    ARDRAFT: "#1a7f37",
    TARGET: "",
}
PROVENANCE_LABELS = {
    DRAFTER1: "drafter 1", VP: "VP row", LOOKUP: "lookup", ARDRAFT: "draft model", TARGET: "target",
}


def _highlight(code: str, lang: str, _attrs) -> str:
    # No guessing for unlabelled fences: guess_lexer is slow on long text and often wrong.
    try:
        lexer = get_lexer_by_name(lang) if lang else None
    except ClassNotFound:
        lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer else html.escape(code)
    # A one-cell table is the only way to give a block a full-width background in Qt rich text.
    return (f'<pre><table width="100%" cellpadding="8" bgcolor="{CODE_BACKGROUND}"><tr><td>'
            f'<pre style="margin:0">{body}</pre></td></tr></table></pre>\n')


def _qt_html(html_text: str) -> str:
    # markdown-it keeps a highlighter's output only when it starts with <pre>; that outer <pre> is a
    # marker, not markup we want (nested <pre> adds blank lines in Qt). Markdown tables get borders,
    # which Qt does not draw by default.
    return (html_text.replace("<pre><table", "<table").replace("</table></pre>", "</table>")
            .replace("<table>\n", '<table border="1" cellspacing="0" cellpadding="4">\n'))


_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "highlight": _highlight}).enable("table")


def render_markdown(text: str) -> str:
    """Unclosed code fences (mid-stream) render as code to the end, which is what a reader expects."""
    return _qt_html(_md.render(text))


def render_provenance(text: str, runs: list[list]) -> str:
    """Plain text with each run of characters coloured by the proposer its tokens came from."""
    out, pos = [], 0
    for length, source in runs:
        piece = text[pos:pos + length]
        pos += length
        if not piece:
            continue
        colour = PROVENANCE_COLOURS.get(source, "")
        escaped = html.escape(piece)
        out.append(f'<span style="color:{colour}">{escaped}</span>' if colour else escaped)
    if pos < len(text):
        out.append(html.escape(text[pos:]))
    return f'<p style="white-space:pre-wrap">{"".join(out)}</p>'


def provenance_legend() -> str:
    parts = []
    for source, label in PROVENANCE_LABELS.items():
        colour = PROVENANCE_COLOURS[source] or "#24292f"
        parts.append(f'<span style="color:{colour}">■ {label}</span>')
    return " &nbsp; ".join(parts)
