"""A loopback server that speaks the parts of the Hugging Face Hub HTTP API the store uses.

Two origins on 127.0.0.1, like the real Hub and its CDN: the "hub" answers /{repo}/resolve/... (a
302 to the CDN with X-Linked-Size / X-Linked-Etag / X-Repo-Commit for LFS files, the bytes directly
for small git files) and /api/models...; the "cdn" serves blobs by sha256 with Range support.
Faults (dropped connections, a corrupted byte) are injected per blob, and every request is logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

LFS_THRESHOLD = 1024  # tests keep files small; anything above this goes the LFS/CDN way
_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_RESOLVE = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$")


@dataclass
class Blob:
    data: bytes | None  # in memory, or
    path: Path | None  # on disk (served with sendfile, for throughput runs)
    size: int
    sha256: str
    git_sha1: str


@dataclass
class Repo:
    commit: str
    files: dict[str, Blob] = field(default_factory=dict)


@dataclass(frozen=True)
class Logged:
    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None


class FakeHub:
    def __init__(self, cdn_tls: ssl.SSLContext | None = None) -> None:
        """cdn_tls, a server context, makes the CDN origin speak HTTPS as the real one does."""
        self.repos: dict[str, Repo] = {}
        self.log: list[Logged] = []
        self.drop_after: dict[str, list[int]] = {}  # sha256 -> byte counts; each GET consumes one
        self.corrupt: set[str] = set()  # sha256 of blobs served with one byte flipped
        self.ignore_range: set[str] = set()  # sha256 of blobs whose CDN answers 200 to Range requests
        self.expired: set[str] = set()  # sha256 of blobs whose CDN answers 403 (signed URL expired)
        self.chunked: set[str] = set()  # sha256 of blobs sent with Transfer-Encoding: chunked
        self.stall_after: dict[str, list[int]] = {}  # sha256 -> byte counts; each GET then goes silent
        self.unstall = threading.Event()  # set on exit, so stalled handlers end with the server
        self._blobs: dict[str, Blob] = {}
        self._lock = threading.Lock()
        self.hub = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "hub"))
        self.cdn = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self, "cdn"))
        self._cdn_scheme = "http"
        if cdn_tls is not None:
            self.cdn.socket = cdn_tls.wrap_socket(self.cdn.socket, server_side=True)
            self._cdn_scheme = "https"
        for server in (self.hub, self.cdn):
            server.daemon_threads = True

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.hub.server_address[1]}"

    @property
    def cdn_url(self) -> str:
        return f"{self._cdn_scheme}://127.0.0.1:{self.cdn.server_address[1]}"

    def add_file(self, repo: str, name: str, data: bytes | None = None, *, path: Path | None = None) -> Blob:
        """Add a file (bytes, or a path for big ones) to repo; bypasses name checks on purpose."""
        sha, git, size = hashlib.sha256(), None, 0
        if data is not None:
            sha.update(data)
            size = len(data)
            git = hashlib.sha1(b"blob %d\0" % size + data).hexdigest()
        else:
            assert path is not None
            with path.open("rb") as fh:
                while chunk := fh.read(8 << 20):
                    sha.update(chunk)
                    size += len(chunk)
            git = "0" * 40  # never served from git: the file is above LFS_THRESHOLD
        blob = Blob(data=data, path=path, size=size, sha256=sha.hexdigest(), git_sha1=git)
        commit = hashlib.sha1(f"{repo}{len(self.repos.get(repo, Repo('')).files)}{name}".encode()).hexdigest()
        self.repos.setdefault(repo, Repo(commit=commit)).files[name] = blob
        self._blobs[blob.sha256] = blob
        return blob

    def requests(self, server: str | None = None, method: str | None = None) -> list[Logged]:
        with self._lock:
            return [r for r in self.log if (server in (None, r.server)) and (method in (None, r.method))]

    def __enter__(self) -> FakeHub:
        for server in (self.hub, self.cdn):
            threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unstall.set()
        for server in (self.hub, self.cdn):
            server.shutdown()
            server.server_close()


def _handler(hub: FakeHub, server_name: str) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._dispatch(body=False)

        def do_GET(self) -> None:
            self._dispatch(body=True)

        def _dispatch(self, body: bool) -> None:
            url = urlparse(self.path)
            with hub._lock:
                hub.log.append(Logged(server_name, self.command, url.path, self.headers.get("Range")))
            if server_name == "cdn":
                return self._cdn(url.path, body)
            if url.path == "/api/models":
                return self._list_models(parse_qs(url.query))
            if url.path.startswith("/api/models/"):
                return self._model_info(url.path.removeprefix("/api/models/"))
            match = _RESOLVE.match(url.path)
            if match:
                return self._resolve(match["repo"], unquote(match["rev"]), unquote(match["path"]), body)
            self._error(404, "NotFound", None)

        def _resolve(self, repo_id: str, rev: str, name: str, body: bool) -> None:
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", None)
            if rev not in ("main", repo.commit):
                return self._error(404, "RevisionNotFound", None)
            blob = repo.files.get(name)
            if blob is None:
                return self._error(404, "EntryNotFound", repo.commit)
            if blob.size > LFS_THRESHOLD:
                self.send_response(302)
                self.send_header("Location", f"{hub.cdn_url}/blobs/{blob.sha256}")
                self.send_header("X-Repo-Commit", repo.commit)
                self.send_header("X-Linked-Size", str(blob.size))
                self.send_header("X-Linked-Etag", f'"{blob.sha256}"')
                self.send_header("ETag", f'"{blob.git_sha1}"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self._send_blob(blob, body, {"X-Repo-Commit": repo.commit, "ETag": f'"{blob.git_sha1}"'})
            return None

        def _cdn(self, path: str, body: bool) -> None:
            blob = hub._blobs.get(path.removeprefix("/blobs/"))
            if blob is None:
                return self._error(404, "NotFound", None)
            if blob.sha256 in hub.expired:
                return self._error(403, "SignatureExpired", None)
            self._send_blob(blob, body, {"ETag": f'"{blob.sha256}"'})
            return None

        def _send_blob(self, blob: Blob, body: bool, headers: dict[str, str]) -> None:
            start, end = 0, blob.size - 1
            match = None if blob.sha256 in hub.ignore_range else _RANGE.match(self.headers.get("Range", ""))
            if match:
                start = int(match[1])
                end = int(match[2]) if match[2] else end
                if start >= blob.size:
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{blob.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            self.send_response(206 if match else 200)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "application/octet-stream")
            chunked = blob.sha256 in hub.chunked
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(end - start + 1))
            if match:
                self.send_header("Content-Range", f"bytes {start}-{end}/{blob.size}")
            self.end_headers()
            if not body:
                return
            with hub._lock:
                drops = hub.drop_after.get(blob.sha256)
                limit = drops.pop(0) if drops else None
                stalls = hub.stall_after.get(blob.sha256)
                stall = stalls.pop(0) if stalls else None
            if stall is not None:
                self._write_range(blob, start, min(end + 1, start + stall))
                self.wfile.flush()
                hub.unstall.wait(30)  # silent until the server shuts down; the client times out first
                self.close_connection = True
                return
            stop = end + 1 if limit is None else min(end + 1, start + limit)
            if chunked:
                self._write_chunked(blob, start, stop, last=limit is None)
            else:
                self._write_range(blob, start, stop)
            if limit is not None:
                self.close_connection = True  # the client sees a body shorter than Content-Length

        def _write_range(self, blob: Blob, start: int, stop: int) -> None:
            if blob.path is not None:
                assert not isinstance(self.connection, ssl.SSLSocket), "sendfile would bypass TLS"
                self.wfile.flush()
                with blob.path.open("rb") as fh:
                    offset = start
                    while offset < stop:
                        sent = os.sendfile(self.connection.fileno(), fh.fileno(), offset, min(stop - offset, 8 << 20))
                        if sent == 0:
                            break
                        offset += sent
                return
            assert blob.data is not None
            data = blob.data[start:stop]
            if blob.sha256 in hub.corrupt and data:
                middle = len(blob.data) // 2 - start
                if 0 <= middle < len(data):
                    data = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :]
            self.wfile.write(data)

        def _write_chunked(self, blob: Blob, start: int, stop: int, *, last: bool) -> None:
            assert blob.data is not None
            for offset in range(start, stop, 256 << 10):
                piece = blob.data[offset : min(stop, offset + (256 << 10))]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            if last:  # a dropped connection must not look like a complete body
                self.wfile.write(b"0\r\n\r\n")

        def _list_models(self, query: dict[str, list[str]]) -> None:
            search = query.get("search", [""])[0].lower()
            wanted_filter = query.get("filter", [])
            limit = int(query.get("limit", ["1000"])[0])
            items = []
            for repo_id, repo in sorted(hub.repos.items()):
                has_gguf = any(n.endswith(".gguf") for n in repo.files)
                if search in repo_id.lower() and (not wanted_filter or ("gguf" in wanted_filter and has_gguf)):
                    items.append(
                        {
                            "id": repo_id,
                            "_id": repo.commit[:24],
                            "downloads": 10 * len(repo.files),
                            "likes": 1,
                            "tags": ["gguf"] if has_gguf else [],
                        }
                    )
            self._json(200, items[:limit])

        def _model_info(self, rest: str) -> None:
            repo_id = "/".join(rest.split("/")[:2])
            repo = hub.repos.get(repo_id)
            if repo is None:
                return self._error(404, "RepoNotFound", None)
            siblings = []
            for name, blob in sorted(repo.files.items()):
                item = {"rfilename": name, "size": blob.size, "blobId": blob.git_sha1}
                if blob.size > LFS_THRESHOLD:
                    item["lfs"] = {"sha256": blob.sha256, "size": blob.size, "pointerSize": 134}
                siblings.append(item)
            self._json(200, {"id": repo_id, "sha": repo.commit, "private": False, "siblings": siblings})
            return None

        def _json(self, status: int, payload: object) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _error(self, status: int, code: str, commit: str | None) -> None:
            data = json.dumps({"error": code}).encode()
            self.send_response(status)
            self.send_header("X-Error-Code", code)
            if commit:
                self.send_header("X-Repo-Commit", commit)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def serve_file_until_stdin_closes(path: Path, repo: str, name: str) -> None:
    """Serve one on-disk file in its own process (so a client under test does not share our GIL)."""
    with FakeHub() as hub:
        hub.add_file(repo, name, path=path)
        print(hub.endpoint, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    serve_file_until_stdin_closes(Path(sys.argv[1]), sys.argv[2], sys.argv[3])
