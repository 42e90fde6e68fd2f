"""Entry point of d2sd-desktop: open the window on the configured model (the embedded default unless
the settings or --model name another GGUF)."""
from __future__ import annotations

import argparse
import os
import sys

NO_DISPLAY = ("d2sd-desktop: no display found (DISPLAY and WAYLAND_DISPLAY are unset); run it in a desktop "
              "session, set QT_QPA_PLATFORM=offscreen to run it headless, or chat in a terminal with `d2sd chat`.")


def has_display() -> bool:
    if not sys.platform.startswith("linux"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="d2sd-desktop", description="Local LLM chat with D2SD speculative decoding.")
    parser.add_argument("--model", metavar="PATH", help="GGUF target model for this session (settings unchanged)")
    return parser.parse_args(argv)


def resolve_model(settings, parent=None) -> str | None:
    """The settings' model file, or the embedded default (assembled on first use); None with a message
    when the default is not installed."""
    from PySide6.QtWidgets import QMessageBox

    from app.default_model import ensure_default_model
    from engine.store.embedded import EmbeddedModelError

    if settings.model_path:
        return settings.model_path
    try:
        return str(ensure_default_model(parent))
    except EmbeddedModelError as e:
        QMessageBox.warning(parent, "Built-in model unavailable",
                            f"{e}\n\nChoose a GGUF file in File → Settings to start chatting.")
        return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    # Qt and the engine load only once a display is known to exist.
    from PySide6.QtWidgets import QApplication

    from app.main_window import MainWindow
    from app.settings import load_settings
    from engine.store.history import History

    app = QApplication(sys.argv[:1])
    app.setApplicationName("D2SD Desktop")
    settings = load_settings()
    history = History()
    window = MainWindow(history, settings, resolve_model=resolve_model)
    window.show()
    path = args.model or resolve_model(settings, window)
    if path:
        window.load_model(path)
    code = app.exec()
    history.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
