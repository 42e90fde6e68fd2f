"""Markdown to the HTML subset QTextBrowser renders: code blocks highlighted by Pygments with inline styles
(Qt's rich text has no stylesheet classes for them), and provenance-coloured plain text."""
from __future__ import annotations

import html

from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

from app.theme import DARK, LIGHT, Colours
from engine.events import ARDRAFT, DRAFTER1, LOOKUP, TARGET, VP

COPY_MARK = '<a name="d2sd-code"></a>'   # where a code block's copy link goes, replaced per message

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


def _highlighter(colours: Colours):
    formatter = HtmlFormatter(noclasses=True, nowrap=True, style=colours.code_style)

    def highlight_code(code: str, lang: str, _attrs) -> str:
        # No guessing for unlabelled fences: guess_lexer is slow on long text and often wrong.
        try:
            lexer = get_lexer_by_name(lang) if lang else None
        except ClassNotFound:
            lexer = None
        body = highlight(code, lexer, formatter) if lexer else html.escape(code)
        # A one-cell table is the only way to give a block a full-width background in Qt rich text.
        return (f'<pre>{COPY_MARK}<table width="100%" cellpadding="8" bgcolor="{colours.code_background}"><tr><td>'
                f'<pre style="margin:0">{body}</pre></td></tr></table></pre>\n')

    return highlight_code


def _qt_html(html_text: str) -> str:
    # markdown-it keeps a highlighter's output only when it starts with <pre>; that outer <pre> is a
    # marker, not markup we want (nested <pre> adds blank lines in Qt). Markdown tables get borders,
    # which Qt does not draw by default.
    return (html_text.replace(f"<pre>{COPY_MARK}<table", f"{COPY_MARK}<table").replace("</table></pre>", "</table>")
            .replace("<table>\n", '<table border="1" cellspacing="0" cellpadding="4">\n'))


def _parser(colours: Colours) -> MarkdownIt:
    return MarkdownIt("commonmark", {"html": False, "linkify": False,
                                     "highlight": _highlighter(colours)}).enable("table")


_md = {colours.dark: _parser(colours) for colours in (LIGHT, DARK)}


def render_markdown(text: str, colours: Colours = LIGHT, copy_href: str | None = None) -> str:
    """Unclosed code fences (mid-stream) render as code to the end, which is what a reader expects.
    With `copy_href`, each code block gets a "copy code" link to copy_href + its index."""
    out = _qt_html(_md[colours.dark].render(text))
    pieces = out.split(COPY_MARK)
    if copy_href is None:
        return "".join(pieces)
    links = [f'<p align="right" style="margin:0"><a href="{copy_href}{i}">copy code</a></p>'
             for i in range(len(pieces) - 1)]
    return pieces[0] + "".join(link + piece for link, piece in zip(links, pieces[1:]))


def code_blocks(text: str) -> list[str]:
    """The code of each fenced block in `text`, in the order render_markdown numbers their links."""
    return [t.content for t in _md[False].parse(text) if t.type == "fence"]


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


def provenance_legend(colours: Colours = LIGHT) -> str:
    parts = []
    for source, label in PROVENANCE_LABELS.items():
        colour = PROVENANCE_COLOURS[source] or ("#e6edf3" if colours.dark else "#24292f")
        parts.append(f'<span style="color:{colour}">■ {label}</span>')
    return " &nbsp; ".join(parts)
