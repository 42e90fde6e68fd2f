"""`d2sd serve`: the OpenAI-compatible server on one loaded target, run by uvicorn.

The address is checked before anything loads (engine.server.bind) and bound before the method is built,
so a port in use fails at once; clients are let in once the method is ready (drafters loaded, cost curve
read or measured), so the first request does not wait for it."""
from __future__ import annotations

import socket
import threading
import time
from contextlib import AbstractContextManager, nullcontext
from typing import Callable

import uvicorn

from engine.ready_method import SHIPPED, ReadyMethod
from engine.server.bind import check_bind, is_loopback
from engine.server.app import create_app
from engine.server.generation import GenerationWorker


def model_id(target) -> str:
    """What clients name in `model`: the GGUF's file name without .gguf."""
    return target.info.path.stem


class LocalServer:
    """The server on `ready`'s target with the method `ready` builds; both stay with their owner, who
    closes them after `stop`. `run` blocks (the CLI: Ctrl-C stops it); `start` serves from a background
    thread until `stop` (tests, the app).

    `turn`: what the generation thread holds while it runs a request. The app passes its own, which its
    chat thread holds for an answer, so a chat in the window and a client's request never run on the
    target (nor on `ready`) at once; alone, the generation thread is the only one using them."""

    def __init__(self, ready: ReadyMethod, method: str = "auto", params: dict | None = None,
                 drafters: tuple[str, str] = SHIPPED, host: str = "127.0.0.1", port: int = 8080,
                 api_key: str | None = None, queue_size: int = 8,
                 turn: Callable[[], AbstractContextManager] = nullcontext):
        check_bind(host, api_key)
        if queue_size < 1:
            raise ValueError(f"--queue must be at least 1, got {queue_size}")
        self.ready = ready
        self._choice = (method, params, drafters)
        self.host, self.port = host, port
        # bound now (clients are let in once uvicorn listens): a port in use is this constructor's error,
        # found before the drafters load or the cost curve is measured, not a log line later
        self._socket = self._bind()
        try:
            self._method()  # drafters and cost curve now, not on the first request
        except BaseException:
            self._socket.close()
            raise
        self.worker = GenerationWorker(ready.target, self._method, queue_size, turn)
        self.model_id = model_id(ready.target)
        self.app = create_app(self.worker, self.model_id, method, api_key, loopback=is_loopback(host))
        self._uvicorn = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=3))
        self._thread: threading.Thread | None = None

    def _method(self):
        """The server's method, kept by its ReadyMethod across requests (called on the generation thread)."""
        return self.ready.get(*self._choice)

    def _bind(self) -> socket.socket:
        """The bound socket uvicorn serves on; port 0 takes a free port (`port` says which)."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host.strip("[]"), self.port))
        except OSError as e:
            sock.close()
            raise OSError(f"cannot listen on {self.host}:{self.port}: {e.strerror or e}") from None
        self.port = sock.getsockname()[1]
        return sock

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def run(self) -> None:
        self.worker.start()
        try:
            self._uvicorn.run(sockets=[self._socket])
        finally:
            self._close()

    def start(self, timeout_s: float = 30.0) -> None:
        self.worker.start()
        self._thread = threading.Thread(target=self._uvicorn.run, args=([self._socket],), name="uvicorn",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._uvicorn.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self._uvicorn.started:
            self.stop()
            raise RuntimeError(f"the server could not listen on {self.host}:{self.port}")

    def stop(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()
        self._close()

    def _close(self) -> None:
        self.worker.close()
        self._socket.close()
