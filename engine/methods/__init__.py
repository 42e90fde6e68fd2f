"""Decoding methods: each proposes a candidate trie per step; all share one verify path (engine.generate)."""
from __future__ import annotations

from engine.methods.base import Method
from engine.methods.lookup import PromptLookup
from engine.methods.plain import Plain

METHODS = ["ar", "lookup"]


def make_method(name: str, target=None, **params) -> Method:
    if name == "ar":
        return Plain()
    if name == "lookup":
        return PromptLookup(**params)
    raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
