"""Runs the real window offscreen, sends one message, and prints each render of the streaming answer
as a JSON line, so a test can kill -9 this process mid-answer and compare the database with what was
on screen. Usage: stream_child.py HISTORY_DB MODEL_GGUF"""
from __future__ import annotations

import json
import sys

from PySide6.QtWidgets import QApplication

from app.main_window import MainWindow
from app.settings import AppSettings
from engine.store.history import History


def main() -> None:
    history_path, model = sys.argv[1], sys.argv[2]
    app = QApplication([])
    window = MainWindow(History(history_path), AppSettings(method="ar", n_ctx=4096, n_threads=1,
                                                           max_tokens=3000))
    session = window.session

    def on_render() -> None:
        # connected after the window's own slot: this runs right after the chat view was redrawn
        if session.busy and session.messages[-1].content:
            message = session.messages[-1]
            print(json.dumps({"id": message.id, "shown": message.content}), flush=True)

    session.messages_changed.connect(on_render)
    session.model_changed.connect(lambda _text: session.model_ready and session.send("tell me everything"))
    window.load_model(model)
    app.exec()


if __name__ == "__main__":
    main()
