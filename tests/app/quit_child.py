"""Runs the real entry point (app.main.main) on MODEL: once the model is loaded it opens the Models window,
visits its tabs and quits as File → Quit does, so a test can check the process ends cleanly.
Usage: quit_child.py MODEL"""
from __future__ import annotations

import sys

from PySide6.QtCore import QTimer

import app.main

_start = app.main.start


def start(args):
    window, history, notice = _start(args)

    def models_then_quit(_text: str) -> None:
        if not window.session.model_ready or window.models_window is not None:
            return
        window.open_models()
        tabs = window.models_window.tabs
        for i in range(tabs.count()):
            tabs.setCurrentIndex(i)
        QTimer.singleShot(200, window.close)   # File → Quit

    window.session.model_changed.connect(models_then_quit)
    return window, history, notice


app.main.start = start
sys.exit(app.main.main(["--model", sys.argv[1]]))
