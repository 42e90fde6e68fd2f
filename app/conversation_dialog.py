"""Per-conversation system prompt and sampler settings, validated by the engine's own SamplerSettings."""
from __future__ import annotations

from dataclasses import asdict

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QLabel,
                               QPlainTextEdit, QSpinBox, QWidget)

from app.chat_session import sampler_from
from engine.verify import SamplerError, SamplerSettings


class ConversationDialog(QDialog):
    def __init__(self, system_prompt: str, sampling: dict, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle("Conversation settings")
        s = sampler_from(sampling)
        self.system_prompt = QPlainTextEdit(system_prompt)
        self.system_prompt.setPlaceholderText("Optional instructions the model sees before the chat")
        self.temperature = _double(0.0, 5.0, s.temperature, 0.05)
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 1000)
        self.top_k.setValue(s.top_k)
        self.top_p = _double(0.01, 1.0, s.top_p, 0.01)
        self.min_p = _double(0.0, 0.99, s.min_p, 0.01)
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setSpecialValueText("random")
        self.seed.setValue(-1 if s.seed is None else s.seed)
        self.error = QLabel("")
        self.error.setStyleSheet("color: #cf222e")

        form = QFormLayout(self)
        form.addRow("System prompt", self.system_prompt)
        form.addRow("Temperature (0 = greedy)", self.temperature)
        form.addRow("Top-k (0 = off)", self.top_k)
        form.addRow("Top-p", self.top_p)
        form.addRow("Min-p", self.min_p)
        form.addRow("Seed", self.seed)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self._accept_if_valid)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def sampling(self) -> dict:
        seed = self.seed.value()
        return asdict(SamplerSettings(temperature=self.temperature.value(), top_k=self.top_k.value(),
                                      top_p=self.top_p.value(), min_p=self.min_p.value(),
                                      seed=None if seed < 0 else seed))

    def _accept_if_valid(self) -> None:
        try:
            self.sampling()
        except SamplerError as e:
            self.error.setText(str(e))
            return
        self.accept()


def _double(lo: float, hi: float, value: float, step: float) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(2)
    box.setSingleStep(step)
    box.setValue(value)
    return box
