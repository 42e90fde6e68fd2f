"""Edits AppSettings: model file and drafters, decoding method and its knobs, llama.cpp resources, and
serving the model to other tools."""
from __future__ import annotations

import os
from dataclasses import replace

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget)

from app.settings import METHOD_KNOBS, AppSettings
from engine.methods import METHODS
from engine.server.bind import is_loopback


class SettingsDialog(QDialog):
    remeasure_requested = Signal()

    def __init__(self, settings: AppSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._initial = settings

        self.model_path = QLineEdit(settings.model_path)
        self.model_path.setPlaceholderText("embedded default (Qwen2.5-Coder-1.5B-Instruct Q4_K_M)")
        self.drafter_dir = QLineEdit(settings.drafter_dir)
        self.drafter_dir.setPlaceholderText("the drafter shipped for the model")
        self.vp_drafter_dir = QLineEdit(settings.vp_drafter_dir)
        self.vp_drafter_dir.setPlaceholderText("shipped, or drafter 1 reused")

        # whatever engine.methods registers (a list, tuple or dict of names), in its order
        methods = list(METHODS)
        self.method = QComboBox()
        self.method.addItems(methods)
        self.method.setCurrentText(settings.method if settings.method in methods else methods[0])
        self.gamma = _spin(1, 64, settings.gamma)
        self.k = _spin(1, 16, settings.k)
        self.node_budget = _spin(1, 512, settings.node_budget)
        self.runner_up = QCheckBox("Re-anchor on drafter 1's runner-up tokens (d2sd)")
        self.runner_up.setToolTip("Each VP row starts from one of drafter 1's runner-up tokens where its chain is "
                                  "likely to break (the default: a higher acceptance with the pairs measured); "
                                  "unchecked, the paper's rows start at the likeliest rejection points")
        self.runner_up.setChecked(settings.runner_up)
        self.n_gpu_layers = _spin(-1, 999, settings.n_gpu_layers)
        self.n_gpu_layers.setSpecialValueText("all")
        self.n_threads = _spin(1, os.cpu_count() or 64, settings.n_threads)
        self.n_ctx = _spin(0, 262144, settings.n_ctx, step=256)
        self.n_ctx.setSpecialValueText("from the model")
        self.n_ctx.setToolTip("From the model: the context it was trained for, capped so that its cache takes "
                              "at most half of the memory left free once the model and drafters are loaded")
        self.max_tokens = _spin(1, 262144, settings.max_tokens, step=64)
        self.show_provenance = QCheckBox("Colour answers by the proposer of each token")
        self.show_provenance.setChecked(settings.show_provenance)
        self.serve = QCheckBox("Serve the loaded model to other tools (OpenAI API, as `d2sd serve`)")
        self.serve.setToolTip("Editors, agents and scripts that speak the OpenAI API can use the model at the "
                              "address the status bar shows; they take turns with this window's answers")
        self.serve.setChecked(settings.serve)
        self.serve_host = QLineEdit(settings.serve_host)
        self.serve_host.setToolTip("127.0.0.1: this machine only. Any other address needs an API key")
        self.serve_port = _spin(1, 65535, settings.serve_port)
        self.serve_api_key = QLineEdit(settings.serve_api_key)
        self.serve_api_key.setEchoMode(QLineEdit.Password)
        self.serve_api_key.setPlaceholderText("none (only on 127.0.0.1)")
        self.serve_api_key.setToolTip("Every request must then send 'Authorization: Bearer KEY'")
        self.problem = QLabel()
        self.problem.setStyleSheet("color:#c62828")
        self.problem.setWordWrap(True)
        self.problem.hide()

        form = QFormLayout(self)
        form.addRow("Model file", _with_browse(self.model_path, self._browse_model))
        form.addRow("Drafter 1 folder", _with_browse(self.drafter_dir, lambda: self._browse_folder(self.drafter_dir)))
        form.addRow("VP drafter folder",
                    _with_browse(self.vp_drafter_dir, lambda: self._browse_folder(self.vp_drafter_dir)))
        form.addRow("Method", self.method)
        self.remeasure = QPushButton("Re-measure this machine's verify cost", clicked=self._remeasure)
        self.remeasure.setToolTip("auto picks its drafts by what verifying them costs on this machine; "
                                  "measure again after a hardware change or under a different load")
        form.addRow("", self.remeasure)
        form.addRow("γ block length", self.gamma)
        form.addRow("K re-anchor rows", self.k)
        form.addRow("Node budget", self.node_budget)
        form.addRow(self.runner_up)
        form.addRow("GPU layers", self.n_gpu_layers)
        form.addRow("CPU threads", self.n_threads)
        form.addRow("Context size", self.n_ctx)
        form.addRow("Max answer tokens", self.max_tokens)
        form.addRow(self.show_provenance)
        form.addRow(self.serve)
        form.addRow("Server address", self.serve_host)
        form.addRow("Server port", self.serve_port)
        form.addRow("API key", self.serve_api_key)
        form.addRow(self.problem)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)
        self.method.currentTextChanged.connect(self._enable_knobs)
        self._enable_knobs(self.method.currentText())
        self.serve.toggled.connect(self._enable_server_fields)
        self._enable_server_fields(self.serve.isChecked())

    def accept(self) -> None:
        """Refused, saying why, when the server would be reachable from other machines without a key
        (the rule `d2sd serve` applies)."""
        host = self._host()
        if self.serve.isChecked() and not is_loopback(host) and not self.serve_api_key.text():
            self.problem.setText(f"The address {host} is reachable from other machines: set an API "
                                 "key as well, or serve on 127.0.0.1.")
            self.problem.show()
            return
        super().accept()

    def _host(self) -> str:
        return self.serve_host.text().strip() or "127.0.0.1"

    def _enable_server_fields(self, on: bool) -> None:
        for field in (self.serve_host, self.serve_port, self.serve_api_key):
            field.setEnabled(on)

    def _remeasure(self) -> None:
        self.remeasure.setEnabled(False)   # once per dialog: it holds the model for a while
        self.remeasure_requested.emit()

    def _enable_knobs(self, method: str) -> None:
        knobs = METHOD_KNOBS.get(method, ())
        for name in ("gamma", "k", "node_budget", "runner_up"):
            getattr(self, name).setEnabled(name in knobs)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model", self.model_path.text(),
                                              "GGUF models (*.gguf)")
        if path:
            self.model_path.setText(path)

    def _browse_folder(self, field: QLineEdit) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a drafter checkpoint folder", field.text())
        if path:
            field.setText(path)

    def result_settings(self) -> AppSettings:
        return replace(self._initial, model_path=self.model_path.text().strip(),
                       drafter_dir=self.drafter_dir.text().strip(), vp_drafter_dir=self.vp_drafter_dir.text().strip(),
                       method=self.method.currentText(), gamma=self.gamma.value(), k=self.k.value(),
                       node_budget=self.node_budget.value(), runner_up=self.runner_up.isChecked(),
                       n_gpu_layers=self.n_gpu_layers.value(),
                       n_threads=self.n_threads.value(), n_ctx=self.n_ctx.value(),
                       max_tokens=self.max_tokens.value(), show_provenance=self.show_provenance.isChecked(),
                       serve=self.serve.isChecked(), serve_host=self._host(),
                       serve_port=self.serve_port.value(), serve_api_key=self.serve_api_key.text())


def _with_browse(field: QLineEdit, browse) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addWidget(field, 1)
    row.addWidget(QPushButton("Browse…", clicked=browse))
    return row


def _spin(lo: int, hi: int, value: int, step: int = 1) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setSingleStep(step)
    box.setValue(value)
    return box
