"""Fixtures for the store tests: a private data dir, a loopback Hub, a catalog that points at it,
tiny real GGUF / drafter files, and a socket-level guard that proves offline code opens no socket."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store.model_store import ModelStore

sys.path.insert(0, str(Path(__file__).parent))
from fake_hub import FakeHub
from store_helpers import SOCKET_GUARD, SocketGuard, drafter_files, tiny_catalog, write_gguf


@pytest.fixture
def no_network() -> Iterator[SocketGuard]:
    """Any socket connect or DNS lookup raises and is recorded; tests assert none happened."""
    SOCKET_GUARD.attempts.clear()
    SOCKET_GUARD.on = True
    try:
        yield SOCKET_GUARD
    finally:
        SOCKET_GUARD.on = False


@pytest.fixture(autouse=True)
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("D2SD_DATA_DIR", str(root))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stray user token in requests
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    return root


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    with FakeHub() as server:
        yield server


@pytest.fixture
def tiny_repo(hub: FakeHub, tmp_path: Path) -> FakeHub:
    """org/tiny-GGUF holds a real tiny GGUF padded to 3 MiB; org/tiny-DFlash a matching drafter."""
    gguf_bytes = write_gguf(tmp_path / "tiny.gguf").read_bytes()
    hub.add_file("org/tiny-GGUF", "tiny-Q4_K_M.gguf", gguf_bytes + bytes(3 * (1 << 20) - len(gguf_bytes)))
    for name, data in drafter_files().items():
        hub.add_file("org/tiny-DFlash", name, data)
    return hub


@pytest.fixture
def store(hub: FakeHub, data_dir: Path) -> ModelStore:
    return ModelStore(endpoint=hub.endpoint, catalog=tiny_catalog())
