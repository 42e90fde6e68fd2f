"""Resumable, verifiable downloads of single files from the Hugging Face Hub.

huggingface-hub resolves the file (HEAD on /resolve: size, ETag, commit, redirect to the CDN) and
provides the configured HTTP session; the transfer loop is ours because the library deletes its
partial file on any error and verifies only sizes. Here the bytes go to `<dest>.part` next to a
`<dest>.part.json` that records which remote content they belong to, so an interrupted run (error,
cancel, crash, app restart) continues with an HTTP Range request, and the result is checked against
its sha256 before it gets its final name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlparse

import httpcore2
import httpx2
from huggingface_hub import constants, get_hf_file_metadata, get_session, hf_hub_url
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    OfflineModeIsEnabled,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status

from engine.store.errors import (
    AccessDeniedError,
    ChecksumMismatchError,
    DownloadCancelledError,
    HubError,
    InsufficientSpaceError,
    NetworkError,
    OfflineError,
    RemoteNotFoundError,
    StoreError,
)
from engine.store.network import require_online, require_resolvable
from engine.store.safe_names import safe_relpath
from engine.store.verify import FileHasher, check_digest

ProgressFn = Callable[[int, int], None]
FreeSpaceFn = Callable[[Path], int]

# Kept free after a download so the OS, the registry and the chat history can still be written.
SPACE_RESERVE = 64 << 20
PROGRESS_STEP = 1 << 20
_RETRY_STATUS = {408, 429, 500, 502, 503, 504}
# httpcore reads HTTP/1.1 bodies 64 KiB per recv and pushes every piece through h11's pure-Python
# buffer, which held a loopback download well under half of curl's speed. 1 MiB reads pay that
# per-piece cost 16 times less often (4 MiB measured slower). recv returns what has arrived, so small
# responses elsewhere in the process are unaffected; this applies process-wide, hf_hub_download too.
# _body_chunks reads the bulk of a download the same 1 MiB at a time, but past h11.
NETWORK_READ_BYTES = 1 << 20
httpcore2.HTTP11Connection.READ_NUM_BYTES = max(httpcore2.HTTP11Connection.READ_NUM_BYTES, NETWORK_READ_BYTES)


class _RetryableStatus(Exception):
    """A status that means "try again later" (overload, gateway hiccup), handled like a dropped line."""


# The httpcore pair comes from _body_chunks reading the connection directly, where httpx does not
# translate httpcore's exceptions into its own.
_TRANSIENT = (
    httpx2.TimeoutException,
    httpx2.NetworkError,
    httpx2.RemoteProtocolError,
    httpcore2.TimeoutException,
    httpcore2.NetworkError,
    _RetryableStatus,
)


def disk_free(path: Path) -> int:
    """Free bytes on the volume that holds path (or would hold it once created)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


@dataclass(frozen=True)
class RemoteFile:
    """One file on the Hub as resolved right now."""

    repo: str
    filename: str
    revision: str
    url: str  # where the bytes are: the Hub itself or the CDN it redirected to
    size: int
    etag: str | None  # sha256 for LFS files, git blob sha1 for small ones
    commit: str | None
    headers: dict[str, str] = field(repr=False, compare=False)  # may carry the user's token


@contextlib.contextmanager
def hub_errors(what: str) -> Iterator[None]:
    """Turn huggingface-hub and transport exceptions into one-sentence StoreErrors."""
    try:
        yield
    except StoreError:
        raise
    except OfflineModeIsEnabled as exc:
        raise OfflineError(f"Cannot {what}: offline mode is on (HF_HUB_OFFLINE).") from exc
    except GatedRepoError as exc:
        raise AccessDeniedError(f"Cannot {what}: the repository is gated; accept its terms and log in.") from exc
    except RepositoryNotFoundError as exc:
        raise RemoteNotFoundError(f"Cannot {what}: the repository does not exist or is private.") from exc
    except RevisionNotFoundError as exc:
        raise RemoteNotFoundError(f"Cannot {what}: the revision does not exist.") from exc
    except RemoteEntryNotFoundError as exc:
        raise RemoteNotFoundError(f"Cannot {what}: the file does not exist in that revision.") from exc
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else None
        if status in (401, 403):
            raise AccessDeniedError(f"Cannot {what}: the Hub refused access (HTTP {status}).") from exc
        raise HubError(f"Cannot {what}: the Hub answered HTTP {status}.") from exc
    except httpx2.HTTPError as exc:
        raise NetworkError(f"Cannot {what}: {type(exc).__name__}: {exc or 'connection failed'}.") from exc


def fetch_remote_file(
    repo: str,
    filename: str,
    revision: str,
    *,
    endpoint: str | None,
    app_offline: bool,
    token: str | bool | None = None,
) -> RemoteFile:
    """Resolve a file's size, hash and download location with one HEAD request."""
    safe_relpath(filename)
    what = f"resolve {repo}/{filename}@{revision}"
    require_online(app_offline, what)
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    require_resolvable(endpoint, what)
    url = hf_hub_url(repo, filename, revision=revision, endpoint=endpoint)
    headers = build_hf_headers(token=token)
    headers["Accept-Encoding"] = "identity"
    with hub_errors(what):
        meta = get_hf_file_metadata(url, token=token, endpoint=endpoint, headers=headers, retry_on_errors=True)
    if meta.size is None:
        raise HubError(f"Cannot {what}: the Hub did not report its size.")
    if meta.etag is None:
        raise HubError(f"Cannot {what}: the Hub sent no ETag, so the file cannot be verified.")
    location = meta.location or url
    if urlparse(location).netloc != urlparse(endpoint).netloc:
        # Signed CDN URLs must not receive the user's Hub token.
        headers.pop("authorization", None)
    return RemoteFile(
        repo=repo,
        filename=filename,
        revision=revision,
        url=location,
        size=meta.size,
        etag=meta.etag,
        commit=meta.commit_hash,
        headers=headers,
    )


def part_paths(dest: Path) -> tuple[Path, Path]:
    return dest.with_name(dest.name + ".part"), dest.with_name(dest.name + ".part.json")


def download(
    remote: RemoteFile,
    dest: Path,
    *,
    pinned_sha256: str | None = None,
    pinned_size: int | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    free_space: FreeSpaceFn = disk_free,
    retries: int = 5,
    retry_delay_s: float = 0.5,
) -> str:
    """Download remote to dest, resuming a matching .part file; return the verified sha256.

    Raises DownloadCancelledError when cancel is set (the .part stays for a later resume),
    InsufficientSpaceError before any transfer when the volume is too small, and
    ChecksumMismatchError (after removing the bad bytes) when the content is not what was promised.
    `retries` counts consecutive failures without progress, so a flaky line that keeps delivering
    bytes is never given up on.
    """
    what = f"{remote.repo}/{remote.filename}"
    check_pins(remote, pinned_sha256, pinned_size, what)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part, state_path = part_paths(dest)
    state = {"repo": remote.repo, "filename": remote.filename, "etag": remote.etag, "size": remote.size}
    offset = _resumable_offset(part, state_path, state)

    needed = remote.size - offset + SPACE_RESERVE
    available = free_space(dest.parent)
    if available < needed:
        raise InsufficientSpaceError(
            f"Downloading {what} needs {_gb(needed)} free in {dest.parent} but only {_gb(available)} is available."
        )

    state_path.write_text(json.dumps(state), encoding="utf-8")
    hasher = FileHasher()
    hasher.update_from_file(part, offset)
    transfer = _Transfer(offset=offset, total=remote.size, progress=progress)
    transfer.report(force=True)
    failures = 0
    # No truncate() on a fresh file: ext4 treats truncate-to-zero as "replace this file's content"
    # and flushes it to disk on close (auto_da_alloc), which cost ~0.1 s per 200 MB. A resumed
    # part is exactly `offset` bytes long, so seeking to its end is enough.
    with part.open("r+b" if offset else "wb") as fh:
        fh.seek(offset)
        while transfer.offset < remote.size:
            if cancel is not None and cancel.is_set():
                raise DownloadCancelledError(f"Download of {what} cancelled; it will resume from the partial file.")
            before = transfer.offset
            try:
                _fetch_from_offset(remote, fh, hasher, transfer, cancel, what)
            except _TRANSIENT as exc:
                failures = 0 if transfer.offset > before else failures + 1
                if failures > retries:
                    raise NetworkError(
                        f"Download of {what} failed {failures} times in a row ({type(exc).__name__}); "
                        "run it again to resume from the partial file."
                    ) from exc
                (cancel or threading.Event()).wait(retry_delay_s * failures)  # a Cancel cuts the pause short
    transfer.report(force=True)

    try:
        sha256 = check_digest(hasher, pinned_sha256=pinned_sha256, hub_etag=remote.etag, what=what)
    except ChecksumMismatchError:
        part.unlink(missing_ok=True)
        state_path.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    state_path.unlink(missing_ok=True)
    return sha256


def download_hf_file(
    repo: str,
    filename: str,
    revision: str,
    dest: Path,
    *,
    endpoint: str | None,
    app_offline: bool,
    pinned_sha256: str | None = None,
    pinned_size: int | None = None,
    progress: ProgressFn | None = None,
    cancel: threading.Event | None = None,
    free_space: FreeSpaceFn = disk_free,
    token: str | bool | None = None,
    retries: int = 5,
    retry_delay_s: float = 0.5,
) -> str:
    """fetch_remote_file + download; return the verified sha256."""
    remote = fetch_remote_file(repo, filename, revision, endpoint=endpoint, app_offline=app_offline, token=token)
    return download(
        remote,
        dest,
        pinned_sha256=pinned_sha256,
        pinned_size=pinned_size,
        progress=progress,
        cancel=cancel,
        free_space=free_space,
        retries=retries,
        retry_delay_s=retry_delay_s,
    )


@dataclass
class _Transfer:
    offset: int
    total: int
    progress: ProgressFn | None
    reported: int = -1

    def advance(self, n: int) -> None:
        self.offset += n
        self.report()

    def report(self, force: bool = False) -> None:
        # A callback per 64 KiB network read would flood a GUI event queue; one per MiB is smooth enough.
        if self.progress is not None and (force or self.offset - self.reported >= PROGRESS_STEP):
            self.progress(self.offset, self.total)
            self.reported = self.offset


def _fetch_from_offset(
    remote: RemoteFile,
    fh: BinaryIO,
    hasher: FileHasher,
    transfer: _Transfer,
    cancel: threading.Event | None,
    what: str,
) -> None:
    headers = dict(remote.headers)
    if transfer.offset:
        headers["Range"] = f"bytes={transfer.offset}-"
    timeout = httpx2.Timeout(constants.HF_HUB_DOWNLOAD_TIMEOUT, connect=constants.HF_HUB_ETAG_TIMEOUT)
    with get_session().stream("GET", remote.url, headers=headers, timeout=timeout, follow_redirects=True) as resp:
        if resp.status_code in _RETRY_STATUS:
            raise _RetryableStatus(f"HTTP {resp.status_code}")
        with hub_errors(f"download {what}"):
            hf_raise_for_status(resp)
        if transfer.offset and resp.status_code == 200:
            # The server ignored the Range header: start over rather than append a second copy.
            fh.seek(0)
            fh.truncate()
            hasher.reset()
            transfer.offset = 0
        elif transfer.offset and not resp.headers.get("Content-Range", "").startswith(f"bytes {transfer.offset}-"):
            raise HubError(f"Cannot resume {what}: the server answered a different byte range.")
        for chunk in _body_chunks(resp, timeout.read):
            if cancel is not None and cancel.is_set():
                return
            if transfer.offset + len(chunk) > transfer.total:
                raise HubError(f"Download of {what} is longer than the {transfer.total} bytes the Hub announced.")
            fh.write(chunk)
            hasher.update(chunk)
            transfer.advance(len(chunk))


def _body_chunks(resp: httpx2.Response, read_timeout: float | None) -> Iterator[bytes]:
    """The body of resp, most of it read from the connection without passing through h11.

    On the way through h11 and httpcore every received byte is copied four more times (append to h11's
    buffer, two slices, bytes()), which cost more CPU than the sha256 and held our loopback download at
    0.7x curl. A plain HTTP/1.1 body of known length, which is how the Hub and its CDN send files, needs
    no parsing, so after the first chunk (whatever h11 had already buffered behind the headers) the rest
    is read from the response's network stream, httpcore's own NetworkStream interface, which also
    decrypts TLS and tunnels through proxies. The request itself (headers, token, redirects, proxies,
    status) still goes through huggingface-hub's session. h11 then never sees the end of the body, so
    httpcore closes that connection instead of pooling it; one new connection per large file is nothing
    next to its transfer. Anything else (chunked, compressed, HTTP/2, a transport without a network
    stream) takes httpx's usual path.
    """
    stream = resp.extensions.get("network_stream")
    length = resp.headers.get("Content-Length", "")
    if (
        stream is None
        or resp.http_version != "HTTP/1.1"
        or not length.isdigit()
        or "Transfer-Encoding" in resp.headers
        or resp.headers.get("Content-Encoding", "identity") != "identity"
    ):
        yield from resp.iter_bytes()
        return
    buffered = resp.iter_raw()
    first = next(buffered, b"")
    if first:
        yield first
    remaining = int(length) - len(first)
    if remaining <= 0:
        yield from buffered  # lets h11 reach the end of the body, so the connection is reused
        return
    while remaining > 0:
        chunk = stream.read(min(NETWORK_READ_BYTES, remaining), timeout=read_timeout)
        if not chunk:
            raise httpx2.RemoteProtocolError(f"peer closed connection with {remaining} bytes of the body unsent")
        remaining -= len(chunk)
        yield chunk


def _resumable_offset(part: Path, state_path: Path, state: dict) -> int:
    """Bytes of part that belong to this exact remote content; stale partials are discarded."""
    try:
        saved = json.loads(state_path.read_text(encoding="utf-8"))
        size = part.stat().st_size
    except (OSError, ValueError):
        part.unlink(missing_ok=True)
        return 0
    if saved != state or size > state["size"]:
        part.unlink(missing_ok=True)
        return 0
    return size


def check_pins(remote: RemoteFile, pinned_sha256: str | None, pinned_size: int | None, what: str) -> None:
    """Refuse before transferring anything when the catalog and the Hub already disagree."""
    if pinned_size is not None and pinned_size != remote.size:
        raise ChecksumMismatchError(
            f"{what} is {remote.size} bytes on the Hub but the catalog pins {pinned_size}; nothing was downloaded."
        )
    etag = remote.etag or ""
    if pinned_sha256 is not None and len(etag) == 64 and etag != pinned_sha256:
        raise ChecksumMismatchError(
            f"{what} has sha256 {etag} on the Hub but the catalog pins {pinned_sha256}; nothing was downloaded."
        )


def _gb(n: int) -> str:
    return f"{n / 1e9:.2f} GB"
