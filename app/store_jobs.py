"""Model-store work off the GUI thread: a JobWorker (QObject) in its own QThread runs jobs one at a time,
in submission order, and reports through queued signals.

The models window keeps two runners: one for downloads (a queue: one transfer at a time gets the whole
line) and one for short tasks (search, verify, delete), so a search never waits behind a 10 GB download.
"""
from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.store.errors import DownloadCancelledError, StoreError

ProgressFn = Callable[[int, int], None]
log = logging.getLogger(__name__)
_job_ids = itertools.count(1)


@dataclass
class Job:
    title: str
    work: Callable[[ProgressFn, threading.Event], object]  # (progress, cancel) -> result
    id: int = field(default_factory=lambda: next(_job_ids))
    cancel: threading.Event = field(default_factory=threading.Event)


class JobWorker(QObject):
    # Byte counts travel as object: Qt's int is 32-bit and model files are larger than 2 GiB.
    started = Signal(int)                   # job id
    progress = Signal(int, object, object)  # job id, done, total
    finished = Signal(int, object)          # job id, result
    failed = Signal(int, str)               # job id, one sentence for the user
    cancelled = Signal(int, str)            # job id, one sentence for the user

    @Slot(object)
    def run(self, job: Job) -> None:
        if job.cancel.is_set():
            self.cancelled.emit(job.id, "Cancelled before it started.")
            return
        self.started.emit(job.id)
        try:
            result = job.work(lambda done, total: self.progress.emit(job.id, done, total), job.cancel)
        except DownloadCancelledError as exc:
            self.cancelled.emit(job.id, str(exc))
        except StoreError as exc:
            self.failed.emit(job.id, str(exc))
        except Exception as exc:  # a bug or an OS error must not kill the thread; the user still sees it
            log.exception("Job %r failed", job.title)
            self.failed.emit(job.id, f"Unexpected error: {type(exc).__name__}: {exc}.")
        else:
            self.finished.emit(job.id, result)  # even when cancel came too late to stop it: it is installed


class JobRunner(QObject):
    """GUI-thread handle of one worker thread."""
    _submit = Signal(object)

    def __init__(self, name: str, parent: QObject | None = None):
        super().__init__(parent)
        self.worker = JobWorker()
        self._thread = QThread()
        self._thread.setObjectName(name)
        self.worker.moveToThread(self._thread)
        self._submit.connect(self.worker.run)
        self._pending: dict[int, Job] = {}
        self._callbacks: dict[int, tuple[Callable[[object], None] | None, Callable[[str], None] | None]] = {}
        # Bound slots of this GUI-thread object, never lambdas: a lambda has no thread of its own, so
        # Qt would run it on the worker thread, touching widgets from there.
        self.worker.finished.connect(self._on_finished)
        self.worker.failed.connect(self._on_failed)
        self.worker.cancelled.connect(self._on_failed)
        self._thread.start()

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def submit(
        self,
        title: str,
        work: Callable[[ProgressFn, threading.Event], object],
        on_done: Callable[[object], None] | None = None,
        on_error: Callable[[str], None] | None = None,
    ) -> Job:
        """Queue work; on_done(result) or on_error(message) runs on the GUI thread afterwards."""
        job = Job(title, work)
        self._pending[job.id] = job
        self._callbacks[job.id] = (on_done, on_error)
        self._submit.emit(job)
        return job

    @Slot(int, object)
    def _on_finished(self, job_id: int, result: object) -> None:
        self._done(job_id, result, failed=False)

    @Slot(int, str)
    def _on_failed(self, job_id: int, message: str) -> None:
        self._done(job_id, message, failed=True)

    def _done(self, job_id: int, payload: object, *, failed: bool) -> None:
        self._pending.pop(job_id, None)
        on_done, on_error = self._callbacks.pop(job_id, (None, None))
        callback = on_error if failed else on_done
        if callback is not None:
            callback(payload)

    def shutdown(self) -> None:
        """Cancel everything queued or running and join the thread (a transfer stops at its next read)."""
        for job in self._pending.values():
            job.cancel.set()
        self._thread.quit()
        self._thread.wait()
