"""The one exception the drafter package raises for checkpoints that cannot serve a target."""
from __future__ import annotations


class DrafterMismatch(ValueError):
    """A drafter checkpoint, vocabulary or input does not fit the target or this implementation.

    The message is one sentence meant for the user (shown as-is in the GUI).
    """
