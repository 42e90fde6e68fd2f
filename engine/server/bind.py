"""Where a server may listen: a loopback address needs nothing, any other an API key. Kept apart from
the server itself, so `d2sd serve` and the app's settings check an address before anything heavy loads."""
from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def check_bind(host: str, api_key: str | None) -> None:
    if not is_loopback(host) and not api_key:
        raise ValueError(f"--host {host} is reachable from other machines: give --api-key KEY as well "
                         "(every request must then send 'Authorization: Bearer KEY')")
