"""Settings' "serve the loaded model": the real app serves its model to the real `openai` client, the
window and the clients take turns on the one target, a model switch moves the server and switching it
off closes the port."""
from __future__ import annotations

import socket
import threading
import time
from dataclasses import replace

import httpx2
import openai
import pytest

from app.settings import AppSettings
from app.settings_dialog import SettingsDialog
from app.worker import TakeTurns
from tests.app.conftest import WAIT_MS, type_and_send, wait_idle
from tests.engine.server.conftest import client, free_port

PROMPT = "def hello world"


def _serve(qtbot, window, **changes) -> str:
    """Turns serving on (or changes it) as the Settings dialog would; the URL the status bar shows."""
    window.apply_settings(replace(window.settings, serve=True, **changes))
    qtbot.waitUntil(lambda: window.serve_label.isVisible() and window.serve_label.text().startswith("Serving"),
                    timeout=WAIT_MS)
    return window.serve_label.text().removeprefix("Serving at ")


def _window_answer(qtbot, window, text: str) -> str:
    window.new_chat()
    type_and_send(qtbot, window, text)
    wait_idle(qtbot, window)
    answer = window.session.messages[-1]
    assert answer.status == "done", answer.stats
    return answer.content


def _ask(url: str, text: str, max_tokens: int):
    c = client(url, timeout=WAIT_MS / 1000)
    [model] = c.models.list().data
    return c.chat.completions.create(model=model.id, messages=[{"role": "user", "content": text}],
                                     max_tokens=max_tokens, temperature=0)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_the_served_answer_is_the_windows_and_switching_off_closes_the_port(qtbot, window, settings):
    port = free_port()
    url = _serve(qtbot, window, serve_port=port)
    assert url == f"http://127.0.0.1:{port}/v1" and "endless" in window.serve_label.toolTip()

    in_window = _window_answer(qtbot, window, PROMPT)
    served = _ask(url, PROMPT, settings.max_tokens)
    assert served.choices[0].message.content == in_window
    assert served.model_extra["timings"]["method"] == settings.method

    window.apply_settings(replace(window.settings, serve=False))
    qtbot.waitUntil(lambda: not window.serve_label.isVisible(), timeout=WAIT_MS)
    assert not _port_open(port)


def test_a_window_answer_and_a_client_request_at_once_both_come_out_as_alone(qtbot, window, settings):
    url = _serve(qtbot, window, serve_port=free_port())
    alone_window = _window_answer(qtbot, window, PROMPT)
    long = 6 * settings.max_tokens   # the client's answer outlasts the window's
    alone_client = _ask(url, "and the data", long).choices[0].message.content

    done = {}
    asking = threading.Thread(target=lambda: done.update(answer=_ask(url, "and the data", long)))
    asking.start()
    # the window asks while the client's request holds the target
    qtbot.waitUntil(lambda: httpx2.get(url.removesuffix("/v1") + "/health").json()["busy"], timeout=WAIT_MS)
    both = _window_answer(qtbot, window, PROMPT)
    asking.join(WAIT_MS / 1000)
    assert both == alone_window
    assert done["answer"].choices[0].message.content == alone_client


def test_stop_and_a_model_switch_need_not_wait_for_a_clients_long_request(qtbot, window, tiny_gguf):
    url = _serve(qtbot, window, serve_port=free_port())
    outcome = {}

    def ask_long():
        try:
            outcome["answer"] = _ask(url, PROMPT, 16000)   # minutes on the endless model
        except openai.APIError as e:
            outcome["error"] = e

    asking = threading.Thread(target=ask_long)
    asking.start()
    qtbot.waitUntil(lambda: httpx2.get(url.removesuffix("/v1") + "/health").json()["busy"], timeout=WAIT_MS)
    type_and_send(qtbot, window, PROMPT)   # waits for the client's request
    window.session.stop()
    wait_idle(qtbot, window, 5_000)
    stopped = window.session.messages[-1]
    assert stopped.status == "stopped" and stopped.content == "" and asking.is_alive()

    window.apply_settings(replace(window.settings, model_path=str(tiny_gguf)))   # cancels the client's request
    qtbot.waitUntil(lambda: window.session.model_ready, timeout=WAIT_MS)
    asking.join(10)
    assert not asking.is_alive() and "answer" not in outcome


def test_the_target_is_taken_in_the_order_asked():
    turns, order = TakeTurns(), []

    def take(name: str) -> None:
        with turns.turn() as mine:
            order.append((name, mine))

    with turns.turn():
        waiting = []
        for name in "abc":
            waiting.append(threading.Thread(target=take, args=(name,)))
            waiting[-1].start()
            while len(turns._line) < len(waiting) + 1:   # in line behind the ones before
                time.sleep(0.001)
        gave_up = threading.Event()
        gave_up.set()
        with turns.turn(gave_up) as mine:   # a cancelled wait holds nothing and leaves the line
            assert mine is False
    for t in waiting:
        t.join(5)
    assert order == [("a", True), ("b", True), ("c", True)] and turns._line == []


def test_a_model_switch_moves_the_server_to_the_new_model(qtbot, window, tiny_gguf):
    port = free_port()
    _serve(qtbot, window, serve_port=port)
    window.apply_settings(replace(window.settings, model_path=str(tiny_gguf)))
    qtbot.waitUntil(lambda: window.session.model_ready and "'tiny'" in window.serve_label.toolTip(),
                    timeout=WAIT_MS)
    answer = _ask(f"http://127.0.0.1:{port}/v1", PROMPT, 4)
    assert answer.model == "tiny" and answer.usage.completion_tokens <= 4


def test_a_port_in_use_is_said_in_the_status_bar(qtbot, window):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        window.apply_settings(replace(window.settings, serve=True, serve_port=port))
        qtbot.waitUntil(lambda: window.serve_label.text() == "Not serving", timeout=WAIT_MS)
    assert f"cannot listen on 127.0.0.1:{port}" in window.serve_label.toolTip()
    type_and_send(qtbot, window, PROMPT)   # the window still answers
    wait_idle(qtbot, window)
    assert window.session.messages[-1].status == "done"


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20"])
def test_settings_refuse_an_outside_address_without_a_key(qtbot, host):
    dialog = SettingsDialog(AppSettings())
    qtbot.addWidget(dialog)
    dialog.serve.setChecked(True)
    dialog.serve_host.setText(host)
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and "set an API key" in dialog.problem.text()
    dialog.serve_api_key.setText("a-key")
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    chosen = dialog.result_settings()
    assert chosen.server_options()["host"] == host and chosen.server_options()["api_key"] == "a-key"


def test_serving_is_off_by_default_and_on_loopback():
    assert AppSettings().server_options() is None
    assert AppSettings(serve=True).server_options()["host"] == "127.0.0.1"
