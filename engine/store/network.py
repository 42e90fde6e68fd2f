"""The offline gate: one question every network-touching function asks before opening a socket."""

from __future__ import annotations

import os
import socket
import threading
from urllib.parse import urlparse
from urllib.request import getproxies, proxy_bypass

from huggingface_hub import constants

from engine.store.errors import NetworkError, OfflineError

RESOLVE_TIMEOUT_S = 5.0

_TRUE = {"1", "on", "yes", "true"}


def is_offline(app_offline: bool) -> bool:
    """True when the in-app switch is on or HF_HUB_OFFLINE is set.

    The environment is read now, not only through huggingface_hub's constant, which is frozen at
    import time: a user who exports HF_HUB_OFFLINE in a running session still gets offline behaviour.
    """
    env = (os.environ.get("HF_HUB_OFFLINE") or "").strip().lower() in _TRUE
    return app_offline or env or constants.is_offline_mode()


def require_online(app_offline: bool, action: str) -> None:
    if is_offline(app_offline):
        raise OfflineError(f"Cannot {action}: offline mode is on (in-app switch or HF_HUB_OFFLINE).")


def require_resolvable(endpoint: str, action: str) -> None:
    """One name lookup before any request: without a network the Hub's name does not resolve, and the HTTP
    client would retry against it for ~25 s per file. A lookup that hangs counts as failed after
    RESOLVE_TIMEOUT_S. Checked on every call, so a network that comes back is seen at once."""
    url = urlparse(endpoint)
    host = url.hostname
    if not host:
        raise NetworkError(f"Cannot {action}: the Hub address {endpoint!r} names no host.")
    if url.scheme in getproxies() and not proxy_bypass(host):
        return  # the proxy resolves the name; this machine may have no DNS of its own
    result: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, url.port or (443 if url.scheme == "https" else 80), type=socket.SOCK_STREAM)
            result.append(None)
        except (OSError, UnicodeError) as exc:
            result.append(exc)

    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(RESOLVE_TIMEOUT_S)
    if not result:
        raise NetworkError(f"Cannot {action}: looking up {host} took over {RESOLVE_TIMEOUT_S:.0f} s (no network?).")
    if result[0] is not None:
        raise NetworkError(f"Cannot {action}: {host} does not resolve; the network seems to be offline.")
