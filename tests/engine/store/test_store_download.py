"""Downloads with the real huggingface-hub client against the loopback Hub (fake_hub.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import ssl
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from fake_hub import FakeHub
from huggingface_hub import close_session, constants
from store_helpers import tiny_catalog

from engine.store.download import download_hf_file, part_paths
from engine.store.errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    DownloadCancelledError,
    InsufficientSpaceError,
    NetworkError,
    RemoteNotFoundError,
    UnsafeFilenameError,
)
from engine.store.model_store import ModelStore

REPO_ROOT = Path(__file__).resolve().parents[3]
MiB = 1 << 20


def test_full_download_of_a_bundle_verifies_and_registers(tiny_repo: FakeHub, store: ModelStore) -> None:
    seen: list[tuple[int, int]] = []
    models = store.install_bundle("tiny", progress=lambda done, total: seen.append((done, total)))

    assert [m.id for m in models] == ["tiny-target", "tiny-drafter"]
    target = store.path_of("tiny-target")
    blob = tiny_repo.repos["org/tiny-GGUF"].files["tiny-Q4_K_M.gguf"]
    assert target.read_bytes() == blob.data
    assert models[0].files[0].sha256 == blob.sha256 and models[0].source["commit"]
    assert (store.path_of("tiny-drafter") / "config.json").is_file()
    # The LFS file came from the "CDN" origin after the Hub's redirect; progress is monotone and complete.
    assert tiny_repo.requests("cdn", "GET")
    target_progress = [d for d, t in seen if t == blob.size]
    assert target_progress == sorted(target_progress) and target_progress[-1] == blob.size
    assert not list(store.root.rglob("*.part*"))
    listing = {item.model.id: item for item in store.installed()}
    assert listing["tiny-target"].present and listing["tiny-target"].model.size == blob.size


def test_dropped_connection_resumes_with_a_range_request(tiny_repo: FakeHub, store: ModelStore) -> None:
    blob = tiny_repo.repos["org/tiny-GGUF"].files["tiny-Q4_K_M.gguf"]
    tiny_repo.drop_after[blob.sha256] = [MiB + 123]

    store.install("tiny-target")

    ranges = [r.range for r in tiny_repo.requests("cdn", "GET")]
    assert ranges == [None, f"bytes={MiB + 123}-"]
    assert store.path_of("tiny-target").read_bytes() == blob.data


def test_connection_that_keeps_failing_gives_up_and_keeps_the_partial(hub: FakeHub, data_dir: Path) -> None:
    data = os.urandom(2 * MiB)
    blob = hub.add_file("org/flaky", "m.gguf", data)
    hub.drop_after[blob.sha256] = [MiB] + [0] * 6  # then 6 failures in a row: one more than allowed
    dest = data_dir / "m.gguf"

    with pytest.raises(NetworkError, match="resume"):
        _download(hub, "org/flaky", "m.gguf", dest)
    assert part_paths(dest)[0].stat().st_size == MiB

    _download(hub, "org/flaky", "m.gguf", dest)
    assert dest.read_bytes() == data
    assert hub.requests("cdn", "GET")[-1].range == f"bytes={MiB}-"


def test_server_ignoring_range_restarts_cleanly(hub: FakeHub, data_dir: Path) -> None:
    data = os.urandom(2 * MiB)
    blob = hub.add_file("org/norange", "m.gguf", data)
    hub.drop_after[blob.sha256] = [MiB]
    hub.ignore_range.add(blob.sha256)
    dest = data_dir / "m.gguf"

    _download(hub, "org/norange", "m.gguf", dest)

    assert [r.range for r in hub.requests("cdn", "GET")] == [None, f"bytes={MiB}-"]
    assert dest.read_bytes() == data  # not the first MiB twice


def test_chunked_transfer_from_a_cdn_is_read_whole(hub: FakeHub, data_dir: Path) -> None:
    # Large bodies are read past httpx when their length is known; a chunked one must take httpx's path.
    data = os.urandom(3 * MiB + 17)
    blob = hub.add_file("org/chunked", "m.gguf", data)
    hub.chunked.add(blob.sha256)
    dest = data_dir / "m.gguf"

    assert _download(hub, "org/chunked", "m.gguf", dest) == blob.sha256
    assert dest.read_bytes() == data


def test_stalled_transfer_times_out_and_resumes(
    hub: FakeHub, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1.0)
    data = os.urandom(3 * MiB)
    blob = hub.add_file("org/stall", "m.gguf", data)
    hub.stall_after[blob.sha256] = [2 * MiB]  # past the first read, in the middle of the body
    dest = data_dir / "m.gguf"

    _download(hub, "org/stall", "m.gguf", dest)

    # The resumed offset is 2 MiB unless a loaded machine starved the server for a second before that.
    first, resumed = hub.requests("cdn", "GET")
    assert first.range is None and resumed.range is not None and resumed.range.startswith("bytes=")
    assert dest.read_bytes() == data


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_download_from_an_https_cdn(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real CDN speaks TLS, and the bulk of a body is read from httpcore's network stream directly.
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        + ["-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    # huggingface-hub's own client, trusting the test CA the way a user's corporate CA is configured.
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    close_session()
    data = os.urandom(3 * MiB + 5)
    try:
        with FakeHub(cdn_tls=server_tls) as hub:
            blob = hub.add_file("org/tls", "m.gguf", data)
            assert hub.cdn_url.startswith("https://")
            dest = data_dir / "m.gguf"
            assert _download(hub, "org/tls", "m.gguf", dest) == blob.sha256
            assert dest.read_bytes() == data
            assert [r.range for r in hub.requests("cdn", "GET")] == [None]
    finally:
        close_session()  # the next test's client goes back to the system CAs


def test_cdn_refusing_the_transfer_is_a_clear_error(hub: FakeHub, data_dir: Path) -> None:
    blob = hub.add_file("org/expired", "m.gguf", os.urandom(MiB))
    hub.expired.add(blob.sha256)
    with pytest.raises(AccessDeniedError, match="403"):
        _download(hub, "org/expired", "m.gguf", data_dir / "m.gguf")


def test_corrupted_byte_is_detected_and_the_file_removed(hub: FakeHub, data_dir: Path) -> None:
    blob = hub.add_file("org/bad", "m.gguf", os.urandom(MiB))
    hub.corrupt.add(blob.sha256)
    dest = data_dir / "m.gguf"

    with pytest.raises(ChecksumMismatchError, match="sha256") as err:
        _download(hub, "org/bad", "m.gguf", dest)
    assert "\n" not in str(err.value)
    assert not dest.exists() and not any(p.exists() for p in part_paths(dest))


def test_catalog_pin_disagreeing_with_the_hub_downloads_nothing(tiny_repo: FakeHub, hub: FakeHub) -> None:
    store = ModelStore(endpoint=hub.endpoint, catalog=tiny_catalog(target_sha="0" * 64))
    with pytest.raises(ChecksumMismatchError, match="catalog pins"):
        store.install("tiny-target")
    assert not hub.requests("cdn", "GET")


def test_small_git_file_is_checked_against_its_git_blob_hash(hub: FakeHub, data_dir: Path) -> None:
    hub.add_file("org/small", "config.json", b'{"a": 1}')
    dest = data_dir / "config.json"
    sha = _download(hub, "org/small", "config.json", dest)
    assert sha == hashlib.sha256(b'{"a": 1}').hexdigest() and dest.read_bytes() == b'{"a": 1}'
    assert not hub.requests("cdn")


@pytest.mark.parametrize(
    ("repo", "filename", "what"),
    [("org/tiny-GGUF", "missing.gguf", "file"), ("org/nope", "x.gguf", "repository")],
)
def test_404_is_a_clear_error(tiny_repo: FakeHub, data_dir: Path, repo: str, filename: str, what: str) -> None:
    with pytest.raises(RemoteNotFoundError, match=what):
        _download(tiny_repo, repo, filename, data_dir / "x.gguf")
    assert not tiny_repo.requests("cdn")


def test_disk_too_small_is_refused_before_downloading(tiny_repo: FakeHub, hub: FakeHub) -> None:
    store = ModelStore(endpoint=hub.endpoint, catalog=tiny_catalog(), free_space=lambda path: 2 * MiB)
    with pytest.raises(InsufficientSpaceError, match="needs"):
        store.install("tiny-target")
    assert hub.requests("hub", "HEAD") and not hub.requests("cdn", "GET")
    assert not list(store.root.rglob("*.gguf*"))


def test_hostile_filename_from_a_listing_is_refused(hub: FakeHub, data_dir: Path) -> None:
    hub.add_file("org/evil", "../../escape.gguf", b"x" * 2048)
    with pytest.raises(UnsafeFilenameError):
        ModelStore(endpoint=hub.endpoint, catalog=tiny_catalog()).install_hf_gguf("org/evil", ["../../escape.gguf"])
    assert not hub.requests()
    assert not (data_dir.parent / "escape.gguf").exists()


def test_cancel_then_resume_in_a_new_process(tiny_repo: FakeHub, data_dir: Path) -> None:
    # Session 1, a separate process: cancel once 1 MiB has arrived (as the GUI's Cancel button would).
    script = textwrap.dedent(
        f"""
        import sys, threading
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from store_helpers import tiny_catalog
        from engine.store.errors import DownloadCancelledError
        from engine.store.model_store import ModelStore
        cancel = threading.Event()
        store = ModelStore(endpoint={tiny_repo.endpoint!r}, catalog=tiny_catalog())
        def progress(done, total):
            if done >= {MiB}:
                cancel.set()
        try:
            store.install("tiny-target", progress=progress, cancel=cancel)
        except DownloadCancelledError as exc:
            print("CANCELLED", exc)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert "CANCELLED" in run.stdout, run.stderr

    # Session 2, this process: a fresh store finds the partial download and continues it.
    store = ModelStore(endpoint=tiny_repo.endpoint, catalog=tiny_catalog())
    (partial,) = store.partial_downloads()
    assert partial.folder == "tiny-target" and MiB <= partial.done < partial.total
    store.install("tiny-target")

    blob = tiny_repo.repos["org/tiny-GGUF"].files["tiny-Q4_K_M.gguf"]
    assert store.path_of("tiny-target").read_bytes() == blob.data
    assert tiny_repo.requests("cdn", "GET")[-1].range == f"bytes={partial.done}-"


def test_cancel_in_process_keeps_the_partial(tiny_repo: FakeHub, store: ModelStore) -> None:
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelledError):
        store.install("tiny-target", cancel=cancel)
    assert store.registry.get("tiny-target") is None


def _download(hub: FakeHub, repo: str, filename: str, dest: Path) -> str:
    return download_hf_file(repo, filename, "main", dest, endpoint=hub.endpoint, app_offline=False, retry_delay_s=0.01)
