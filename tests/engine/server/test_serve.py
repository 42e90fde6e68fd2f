"""`d2sd serve` as a user starts it: the bind check before anything loads, and a greedy answer through the
server that is the one `d2sd generate` prints for the same prompt."""
import signal
import subprocess
import sys
import time

import httpx2
import pytest

from engine.ready_method import ReadyMethod
from engine.server.bind import check_bind, is_loopback
from engine.server.serve import LocalServer
from engine.target import Target, TargetSettings
from tests.engine.server.conftest import client, free_port, served
from tests.engine.test_cli import d2sd


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "my-laptop.local"])
def test_a_non_loopback_bind_without_a_key_is_refused_before_the_model_loads(host, tmp_path):
    r = d2sd("serve", "--host", host, "--model", str(tmp_path / "absent.gguf"))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip() == (f"d2sd: error: --host {host} is reachable from other machines: give --api-key KEY "
                                "as well (every request must then send 'Authorization: Bearer KEY')")
    check_bind(host, "a-key")  # with a key it is the user's choice


def test_loopback_addresses(tiny_gguf):
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    with Target.load(tiny_gguf, TargetSettings(n_ctx=64, n_threads=1)) as target:
        with pytest.raises(ValueError, match="--api-key"):
            LocalServer(ReadyMethod(target), "ar", host="0.0.0.0")


def test_a_port_in_use_is_one_clear_error(tiny_gguf, isolated_cache):
    with served(tiny_gguf, "ar") as running, Target.load(tiny_gguf, TargetSettings(n_ctx=64, n_threads=1)) as target:
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{running.port}: Address already in use"):
            LocalServer(ReadyMethod(target), "ar", port=running.port)


def _wait_until_up(proc, port: int, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"d2sd serve exited: {proc.stderr.read()}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health").json()["model_loaded"]:
                return
        except httpx2.TransportError:
            time.sleep(0.1)
    raise AssertionError("d2sd serve did not come up")


def test_served_greedy_answer_equals_d2sd_generate_and_ctrl_c_stops(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))  # auto's cost curve: not in the session's cache
    prompt = "def hello world"
    options = ["--model", str(tiny_gguf), "--ctx", "512", "--threads", "1"]
    generated = d2sd("generate", prompt, *options, "--max-tokens", "24")
    assert generated.returncode == 0, generated.stderr
    port = free_port()
    # Ctrl-C as in a foreground shell: a test run started with `&` or nohup passes SIGINT on ignored
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "serve", *options, "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_until_up(proc, port)
        c = client(f"http://127.0.0.1:{port}/v1")
        [model] = c.models.list().data
        answer = c.chat.completions.create(model=model.id, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=24, temperature=0)
        assert answer.model_extra["timings"]["method"] == "auto"
        assert answer.choices[0].message.content + "\n" == generated.stdout
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130 and "Traceback" not in err  # stopped by Ctrl-C, as a shell expects
    assert f"at http://127.0.0.1:{port}/v1" in err
