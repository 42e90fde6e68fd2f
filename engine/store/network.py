"""The offline gate: one question every network-touching function asks before opening a socket."""

from __future__ import annotations

import os

from huggingface_hub import constants

from engine.store.errors import OfflineError

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
