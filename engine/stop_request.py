"""Ctrl-C (and a kill) as a request the caller checks between steps, not an exception.

Raised from a signal handler, KeyboardInterrupt lands inside llama.cpp's eval callback more often than
not, where ctypes prints and drops it; the capture then comes back short. A flag set by the handler,
checked between decode passes, stops as soon but in a clean state."""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_requested(signals=(signal.SIGINT,), on_request: Callable[[], None] = lambda: None
                   ) -> Iterator[threading.Event]:
    """An event that the first of `signals` sets (calling `on_request`). A second Ctrl-C raises
    KeyboardInterrupt as usual, for a run that does not check the event soon enough. The previous
    handlers come back on exit. Main thread only, like `signal.signal`."""
    event = threading.Event()

    def handle(signum, frame) -> None:
        if event.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        event.set()
        on_request()

    previous = {sig: signal.signal(sig, handle) for sig in signals}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
