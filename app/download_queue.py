"""The download queue: one row per download with a progress bar, speed, time left, Cancel and Retry.

Downloads run one after another on a JobRunner; a row keeps its work so Retry can submit it again, and
the store resumes from the partial file. Errors are shown in the store's own one-sentence words.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QVBoxLayout, QWidget

from app.store_jobs import Job, JobRunner, ProgressFn

BAR_STEPS = 1000  # QProgressBar holds a 32-bit int; byte counts of big models do not fit
RATE_WINDOW_S = 3.0
ERROR_STYLE = "color:#b00020"

Work = Callable[[ProgressFn, threading.Event], object]


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.2f} TB"


def human_duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


class RateMeter:
    """Bytes per second over the last few seconds: steady enough to read, quick to follow a change."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()

    def reset(self) -> None:
        self._samples.clear()

    def add(self, done: int) -> float | None:
        now = self._clock()
        self._samples.append((now, done))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW_S:
            self._samples.popleft()
        (t0, d0), (t1, d1) = self._samples[0], self._samples[-1]
        return (d1 - d0) / (t1 - t0) if t1 > t0 and d1 > d0 else None


class DownloadRow(QWidget):
    retry_requested = Signal(object)  # this row

    def __init__(self, title: str, work: Work):
        super().__init__()
        self.work = work
        self.job: Job | None = None
        self.state = "queued"  # queued, running, done, failed, cancelled
        self.done_bytes = 0
        self.total_bytes = 0
        self._rate = RateMeter()

        self.title = QLabel(title)
        self.bar = QProgressBar()
        self.bar.setRange(0, BAR_STEPS)
        self.bar.setTextVisible(False)
        self.status = QLabel("Waiting…")
        self.status.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel", clicked=self.cancel)
        self.retry_button = QPushButton("Retry", clicked=lambda: self.retry_requested.emit(self))
        self.retry_button.hide()

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.cancel_button)
        top.addWidget(self.retry_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(4, 4, 4, 4)
        column.addLayout(top)
        column.addWidget(self.bar)
        column.addWidget(self.status)

    def attach(self, job: Job) -> None:
        self.job = job
        self.state = "queued"
        self._rate.reset()
        self.status.setStyleSheet("")
        self.status.setText("Waiting…")
        self.cancel_button.show()
        self.retry_button.hide()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel.set()
            self.cancel_button.setEnabled(False)
            self.status.setText("Cancelling…")

    def on_started(self) -> None:
        self.state = "running"
        self.cancel_button.setEnabled(True)
        self.status.setText("Starting…")

    def on_progress(self, done: int, total: int) -> None:
        self.done_bytes, self.total_bytes = done, total
        self.bar.setValue(int(BAR_STEPS * done / total) if total else 0)
        rate = self._rate.add(done)
        text = f"{human_bytes(done)} of {human_bytes(total)}"
        if rate is not None:
            text += f" — {human_bytes(rate)}/s, {human_duration((total - done) / rate)} left"
        if not (self.job and self.job.cancel.is_set()):
            self.status.setText(text)

    def on_finished(self) -> None:
        self.state = "done"
        self.bar.setValue(BAR_STEPS)
        self.status.setText(f"Installed ({human_bytes(self.total_bytes)})." if self.total_bytes else "Installed.")
        self.cancel_button.hide()

    def on_failed(self, message: str) -> None:
        self.state = "failed"
        self.status.setStyleSheet(ERROR_STYLE)
        self.status.setText(message)
        self._offer_retry()

    def on_cancelled(self, message: str) -> None:
        self.state = "cancelled"
        kept = f" {human_bytes(self.done_bytes)} kept." if self.done_bytes else ""
        self.status.setText(message + kept)
        self._offer_retry()

    def _offer_retry(self) -> None:
        self.cancel_button.hide()
        self.retry_button.show()


class DownloadQueue(QWidget):
    finished = Signal(object, object)  # row, result (what the work returned, e.g. the InstalledModel)

    def __init__(self, runner: JobRunner, parent: QWidget | None = None):
        super().__init__(parent)
        self.runner = runner
        self.rows: list[DownloadRow] = []
        self._by_job: dict[int, DownloadRow] = {}
        w = runner.worker
        w.started.connect(self._on_started)  # bound slots: they run on the GUI thread (see JobRunner)
        w.progress.connect(self._on_progress)
        w.failed.connect(self._on_failed)
        w.cancelled.connect(self._on_cancelled)
        w.finished.connect(self._on_finished)

        self.empty = QLabel("No downloads yet.")
        self.clear_button = QPushButton("Clear finished", clicked=self.clear_finished)
        self._list = QVBoxLayout()
        self._list.addStretch(1)
        holder = QWidget()
        holder.setLayout(self._list)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        header = QHBoxLayout()
        header.addWidget(QLabel("<b>Downloads</b>"), 1)
        header.addWidget(self.clear_button)
        column = QVBoxLayout(self)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(header)
        column.addWidget(self.empty)
        column.addWidget(scroll, 1)

    def add(self, title: str, work: Work) -> DownloadRow:
        row = DownloadRow(title, work)
        row.retry_requested.connect(self._submit)
        self.rows.append(row)
        self._list.insertWidget(self._list.count() - 1, row)
        self.empty.hide()
        self._submit(row)
        return row

    def clear_finished(self) -> None:
        for row in [r for r in self.rows if r.state == "done"]:
            self.rows.remove(row)
            row.deleteLater()
        self._by_job = {job_id: row for job_id, row in self._by_job.items() if row in self.rows}
        self.empty.setVisible(not self.rows)

    def _submit(self, row: DownloadRow) -> None:
        job = self.runner.submit(row.title.text(), row.work)
        self._by_job[job.id] = row
        row.attach(job)

    @Slot(int)
    def _on_started(self, job_id: int) -> None:
        if row := self._by_job.get(job_id):
            row.on_started()

    @Slot(int, object, object)
    def _on_progress(self, job_id: int, done: int, total: int) -> None:
        if row := self._by_job.get(job_id):
            row.on_progress(done, total)

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        if row := self._by_job.get(job_id):
            row.on_failed(message)

    @Slot(int, str)
    def _on_cancelled(self, job_id: int, message: str) -> None:
        if row := self._by_job.get(job_id):
            row.on_cancelled(message)

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: object) -> None:
        row = self._by_job.get(job_id)
        if row is not None:
            row.on_finished()
            self.finished.emit(row, result)
