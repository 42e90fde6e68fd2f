"""The server's one generation thread: llama.cpp is not thread-safe, so every request runs here in turn
(in the app, also in turn with the window's own answers: see GenerationWorker's `turn`).

Requests wait in a bounded queue; a full queue is refused at once (the caller answers 503). Each job
streams its events back to the request's event loop. The target is never reset between jobs, so a
request that continues a conversation reuses the target's cached prefix and, through the method kept
by engine.ready_method, the drafters' context cache.
"""
from __future__ import annotations

import asyncio
import math
import queue
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Callable

from engine.events import Finished, TextDelta
from engine.generate import generate
from engine.target import ContextOverflow
from engine.verify import SamplerSettings


class QueueFull(Exception):
    pass


@dataclass
class Started:
    """The prompt fits and generation begins: a stream can now open."""
    prompt_tokens: int


@dataclass
class Refused:
    """The request cannot run (its prompt does not fit the context): a 400 for the client."""
    message: str


@dataclass
class Failed:
    """The engine failed on a request that looked valid: a 500, logged, without a traceback to the client."""
    message: str


@dataclass
class Job:
    prompt: Callable[[object], list[int]]   # the target -> prompt tokens, run on the generation thread
    sampler: SamplerSettings
    max_tokens: int | None                  # None: until the context is full
    stop: list[str]
    loop: asyncio.AbstractEventLoop
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancel: threading.Event = field(default_factory=threading.Event)

    def send(self, event) -> None:
        """From the generation thread to the request's event loop."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, event)
        except RuntimeError:  # the loop is gone (server shutting down): nobody is listening
            self.cancel.set()


class GenerationWorker:
    """Uses the target and its ready method from `start` to `close`, each request while holding `turn()`
    (the app's chat thread shares them); `submit` may be called from any thread."""

    def __init__(self, target, method: Callable[[], object], queue_size: int,
                 turn: Callable[[], AbstractContextManager] = nullcontext):
        self.target = target
        self._method = method           # the server's method, built before the first request
        self._turn = turn
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self._current: Job | None = None
        self._job_s = 1.0               # recent seconds per job (moving average), for Retry-After

    def start(self) -> None:
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._current is not None

    @property
    def waiting(self) -> int:
        return self._jobs.qsize()

    def retry_after(self) -> int:
        """Seconds until the running job and those waiting have likely finished (recent job times)."""
        return max(1, min(120, math.ceil(self._job_s * (self.waiting + 1))))

    def submit(self, job: Job) -> None:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise QueueFull from None

    def close(self) -> None:
        """Cancel the running job and everything waiting, then stop the thread (again: nothing)."""
        if not self._thread.is_alive():
            return
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.cancel.set()
                job.send(Failed("the server is shutting down"))
        if (job := self._current) is not None:
            job.cancel.set()
        self._jobs.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            if job.cancel.is_set():  # the client left while it waited
                continue
            self._current = job
            t0 = time.perf_counter()
            try:
                with self._turn():
                    if not job.cancel.is_set():   # nor while it waited for its turn
                        self._serve(job)
            finally:
                self._current = None
                self._job_s = 0.8 * self._job_s + 0.2 * (time.perf_counter() - t0)

    def _serve(self, job: Job) -> None:
        target = self.target
        try:
            prompt = job.prompt(target)
            if not 0 < len(prompt) < target.n_ctx:
                job.send(Refused(f"the prompt has {len(prompt)} tokens but the context holds {target.n_ctx}"
                                 if prompt else "the prompt is empty"))
                return
            job.send(Started(len(prompt)))
            max_tokens = job.max_tokens or target.n_ctx - len(prompt)
            for event in generate(target, prompt, self._method(), job.sampler, max_tokens, job.stop, job.cancel):
                if isinstance(event, (TextDelta, Finished)):
                    job.send(event)
        except ContextOverflow as e:
            job.send(Refused(str(e)))
        except Exception as e:  # llama.cpp or drafter failure: the client gets a 500, the server stays up
            job.send(Failed(f"{type(e).__name__}: {e}"))
