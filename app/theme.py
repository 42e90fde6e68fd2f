"""Light and dark: the Qt palette for the widgets and the colours written into the chat's HTML (Qt rich
text takes no palette there). "system" follows the desktop's palette, as Qt reports it at start."""
from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

THEMES = ("system", "light", "dark")


@dataclass(frozen=True)
class Colours:
    dark: bool
    muted: str              # secondary text: message actions, notes, statistics lines
    warning: str
    code_background: str
    code_style: str         # Pygments style of highlighted code
    banner: str             # the edit banner's background


LIGHT = Colours(False, "#57606a", "#9a6700", "#f6f8fa", "default", "#fff8c5")
DARK = Colours(True, "#8b949e", "#d29922", "#161b22", "github-dark", "#3b2e00")

_system_palette: QPalette | None = None


def _dark_palette() -> QPalette:
    p = QPalette()
    for role, colour in ((QPalette.Window, "#1e2228"), (QPalette.WindowText, "#e6edf3"),
                         (QPalette.Base, "#0d1117"), (QPalette.AlternateBase, "#161b22"),
                         (QPalette.Text, "#e6edf3"), (QPalette.Button, "#21262d"),
                         (QPalette.ButtonText, "#e6edf3"), (QPalette.ToolTipBase, "#161b22"),
                         (QPalette.ToolTipText, "#e6edf3"), (QPalette.PlaceholderText, "#8b949e"),
                         (QPalette.Highlight, "#1f6feb"), (QPalette.HighlightedText, "#ffffff"),
                         (QPalette.Link, "#58a6ff"), (QPalette.BrightText, "#ffffff")):
        p.setColor(role, QColor(colour))
    p.setColor(QPalette.Disabled, QPalette.Text, QColor("#6e7681"))
    p.setColor(QPalette.Disabled, QPalette.ButtonText, QColor("#6e7681"))
    p.setColor(QPalette.Disabled, QPalette.WindowText, QColor("#6e7681"))
    return p


def is_dark(palette: QPalette) -> bool:
    return palette.color(QPalette.Window).lightness() < 128


def apply_theme(choice: str) -> Colours:
    """Set the application palette for `choice` and return the chat's colours for it."""
    global _system_palette
    choice = choice if choice in THEMES else "system"   # a settings file from elsewhere
    app = QApplication.instance()
    if _system_palette is None:
        _system_palette = app.palette()   # the desktop's, before any choice replaced it
    if choice == "system" or choice == ("dark" if is_dark(_system_palette) else "light"):
        app.setPalette(_system_palette)
        return DARK if is_dark(_system_palette) else LIGHT
    app.setPalette(_dark_palette() if choice == "dark" else app.style().standardPalette())
    return DARK if choice == "dark" else LIGHT
