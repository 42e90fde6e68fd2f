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
    parser.add_argument("--smoke-test", metavar="MODEL", help="check an installed bundle without a window: load "
                        "MODEL, generate 8 tokens with method ar, print them and exit")
    return parser.parse_args(argv)


def smoke_test(model: str) -> int:
    """Checks an installed bundle without a window: Qt starts (offscreen unless QT_QPA_PLATFORM says
    otherwise), the window's modules and the drafters' torch import, and the engine the window drives
    loads `model` and decodes 8 tokens greedily."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    import app.main_window  # noqa: F401
    import engine.drafters  # noqa: F401
    from engine.generate import generate
    from engine.methods import make_method
    from engine.gguf_check import ModelFileError
    from engine.target import Target, TargetError
    from engine.target_settings import TargetSettings

    _app = QApplication.instance() or QApplication(sys.argv[:1])
    try:
        with Target.load(model, TargetSettings(n_ctx=512)) as target:
            prompt = target.chat_tokens([{"role": "user", "content": "Say hello."}])
            *_, done = generate(target, prompt, make_method("ar", target), max_tokens=8)  # Finished comes last
    except (ModelFileError, TargetError, OSError) as e:
        print(f"smoke test failed: {e}", file=sys.stderr)
        return 1
    print(f"smoke test: {len(done.token_ids)} tokens {done.text!r} (stop: {done.stats.stop_reason})")
    return 0 if done.token_ids else 1


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


def start(args: argparse.Namespace):
    """(the shown main window, its history, the history notice or None). A damaged or unopenable history
    file is moved aside and the window starts on an empty history, with a notice dialog naming the file."""
    from PySide6.QtWidgets import QMessageBox

    from app.main_window import MainWindow
    from app.settings import load_settings
    from engine.store.history import open_history

    settings = load_settings()
    history, problem = open_history()
    window = MainWindow(history, settings, resolve_model=resolve_model)
    window.show()
    notice = None
    if problem:
        notice = QMessageBox(QMessageBox.Warning, "Chat history unreadable", problem, QMessageBox.Ok, window)
        notice.open()  # window-modal without a nested event loop: the model loads meanwhile
    path = args.model or resolve_model(settings, window)
    if path:
        window.load_model(path)
    return window, history, notice


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.smoke_test:
        return smoke_test(args.smoke_test)
    if not has_display():
        print(NO_DISPLAY, file=sys.stderr)
        return 2
    # Qt and the engine load only once a display is known to exist.
    from PySide6.QtWidgets import QApplication

    app = QApplication(sys.argv[:1])
    app.setApplicationName("D2SD Desktop")
    _window, history, _notice = start(args)
    code = app.exec()
    history.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
