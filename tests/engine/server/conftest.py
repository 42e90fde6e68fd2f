"""A real `d2sd serve` (uvicorn in a thread, on 127.0.0.1 and a free port) over a real GGUF, and the
real `openai` client against it."""
import socket
from contextlib import contextmanager

import openai
import pytest

from engine.ready_method import ReadyMethod
from engine.server.serve import LocalServer
from engine.target import Target, TargetSettings

CTX = 512


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(gguf, method: str = "auto", n_ctx: int = CTX, **options):
    """A server on its own target; stopped (its generation thread joined) on exit."""
    with Target.load(gguf, TargetSettings(n_ctx=n_ctx, n_threads=1)) as target, ReadyMethod(target) as ready:
        server = LocalServer(ready, method, port=0, **options)
        server.start()
        try:
            yield server
        finally:
            server.stop()


def client(url: str, api_key: str = "unused", **options) -> openai.OpenAI:
    """No retries: a 503 or a timeout is what a test looks at."""
    return openai.OpenAI(base_url=url, api_key=api_key, max_retries=0, **options)


@pytest.fixture(scope="module")
def isolated_cache(tmp_path_factory):
    """Module-scoped servers start before the per-test folder isolation: give auto's cost curve its own."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("D2SD_CACHE_DIR", str(tmp_path_factory.mktemp("server-cache")))
        yield


@pytest.fixture(scope="module")
def server(tiny_gguf, isolated_cache):
    """The tiny model with the default method, auto."""
    with served(tiny_gguf) as s:
        yield s


@pytest.fixture(scope="module")
def endless_server(endless_gguf, isolated_cache):
    """Answers that run until stopped (filling this context would take minutes); one waiting place, so a
    third request is turned away."""
    with served(endless_gguf, "ar", n_ctx=16384, queue_size=1) as s:
        yield s
