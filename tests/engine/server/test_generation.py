"""One generation thread for many clients: a client that leaves mid-stream frees the target at the next
step, and requests beyond the bounded queue get a clear 503 with Retry-After."""
import threading
import time

import httpx2
import openai
import pytest

from tests.engine.server.conftest import client

LONG = 16000  # tokens: minutes of generation on the endless model, were it not cancelled


def _health(server) -> dict:
    return httpx2.get(server.url.removesuffix("/v1") + "/health").json()


def _idle_within(server, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        h = _health(server)
        if not h["busy"] and not h["waiting"]:
            return True
        time.sleep(0.05)
    return False


def test_a_client_leaving_mid_stream_frees_the_target(endless_server):
    c = client(endless_server.url)
    stream = c.chat.completions.create(model=endless_server.model_id, messages=[{"role": "user", "content": "hi"}],
                                       max_tokens=LONG, stream=True)
    got = [next(stream) for _ in range(5)]
    assert got[-1].choices[0].delta.content is not None and _health(endless_server)["busy"]
    stream.close()  # the connection goes; the server notices and sets the job's cancel event
    assert _idle_within(endless_server, 10)
    after = c.completions.create(model=endless_server.model_id, prompt="hello", max_tokens=5, timeout=30,
                                 temperature=0)
    assert after.usage.completion_tokens == 5


def test_a_client_leaving_a_plain_request_frees_the_target(endless_server):
    def ask():
        try:
            client(endless_server.url).completions.create(model=endless_server.model_id, prompt="hello",
                                                      max_tokens=LONG, timeout=1.0)
        except openai.APITimeoutError:
            pass   # the client gives up and closes its connection

    caller = threading.Thread(target=ask)
    caller.start()
    caller.join()
    assert _idle_within(endless_server, 10)


def _wait_and_leave(base: str, body: dict) -> None:
    """A plain request whose client gives up after 2 s, before or after it starts."""
    try:
        httpx2.post(base + "/completions", json=body, timeout=2.0)
    except httpx2.TimeoutException:
        pass


def test_beyond_the_queue_a_503_with_retry_after(endless_server):
    """One request runs, one waits (queue_size=1), the third is turned away at once."""
    body = {"model": endless_server.model_id, "prompt": "hello", "max_tokens": LONG, "stream": True}
    base = endless_server.url
    with httpx2.Client(timeout=30) as http:
        with http.stream("POST", base + "/completions", json=body) as running:
            assert running.status_code == 200
            lines = running.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)
            waiting = threading.Thread(target=_wait_and_leave, args=(base, {**body, "stream": False}), daemon=True)
            waiting.start()
            deadline = time.monotonic() + 10
            while _health(endless_server)["waiting"] < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            with pytest.raises(openai.APIStatusError) as e:
                client(endless_server.url).completions.create(model=endless_server.model_id, prompt="hi",
                                                              max_tokens=3)
            assert e.value.status_code == 503 and int(e.value.response.headers["Retry-After"]) >= 1
            assert e.value.response.json()["error"]["code"] == "server_busy"
    waiting.join()
    assert _idle_within(endless_server, 10)
