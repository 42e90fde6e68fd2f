"""Offline (in-app switch or HF_HUB_OFFLINE): what is installed keeps working and no socket is opened."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from fake_hub import FakeHub
from store_helpers import SocketGuard, tiny_catalog, write_drafter, write_gguf

from engine.store.errors import NetworkError, OfflineError
from engine.store.model_store import ModelStore
from engine.store.search import list_gguf_quants, search_gguf


def test_guard_really_blocks_sockets(no_network: SocketGuard) -> None:
    import socket

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)
    assert no_network.attempts


@pytest.mark.parametrize("how", ["switch", "env"])
def test_offline_store_uses_installed_models_and_touches_no_network(
    tiny_repo: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_network: SocketGuard, how: str
) -> None:
    with no_network.paused():  # installed earlier, while online
        ModelStore(endpoint=tiny_repo.endpoint, catalog=tiny_catalog()).install_bundle("tiny")

    if how == "env":
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    store = ModelStore(endpoint=tiny_repo.endpoint, catalog=tiny_catalog(), offline=how == "switch")
    assert store.is_offline

    assert store.install_bundle("tiny")  # already installed: returns without a request
    assert store.path_of("tiny-target").is_file()
    assert {item.model.id for item in store.installed()} == {"tiny-target", "tiny-drafter"}
    assert store.compatible_drafters("tiny-target") == ["tiny-drafter"]
    imported = store.import_gguf(write_gguf(tmp_path / "local.gguf"))
    drafter = store.import_drafter(write_drafter(tmp_path / "my-drafter"))
    store.delete(imported.id)
    store.delete(drafter.id)

    with pytest.raises(OfflineError, match="offline"):
        store.install_hf_gguf("org/tiny-GGUF", ["tiny-Q4_K_M.gguf"])
    with pytest.raises(OfflineError):
        search_gguf("tiny", endpoint=tiny_repo.endpoint, app_offline=store.offline)
    with pytest.raises(OfflineError):
        list_gguf_quants("org/tiny-GGUF", endpoint=tiny_repo.endpoint, app_offline=store.offline)
    assert no_network.attempts == []


LOOKUPS: list[str] = []
sys.addaudithook(lambda event, args: LOOKUPS.append(str(args[0])) if event == "socket.getaddrinfo" else None)


def test_a_hub_name_that_does_not_resolve_is_one_quick_error(tiny_repo: FakeHub, tmp_path: Path) -> None:
    # .invalid never resolves (RFC 2606): what a machine without a network sees for huggingface.co
    store = ModelStore(endpoint="https://hub.invalid", catalog=tiny_catalog())
    LOOKUPS.clear()
    t0 = time.monotonic()
    with pytest.raises(NetworkError, match="hub.invalid does not resolve") as err:
        store.install_bundle("tiny")
    assert time.monotonic() - t0 < 10   # a bound, not a speed claim: the Hub client's retries took 24.5 s
    assert LOOKUPS.count("hub.invalid") == 1 and "\n" not in str(err.value)
    assert store.installed() == []


def test_a_search_without_a_network_is_one_quick_error() -> None:
    LOOKUPS.clear()
    with pytest.raises(NetworkError, match="search the Hub for 'qwen': hub.invalid does not resolve"):
        search_gguf("qwen", endpoint="https://hub.invalid", app_offline=False)
    assert LOOKUPS.count("hub.invalid") == 1
