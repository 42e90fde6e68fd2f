"""Shared by the fuzz tests: one Hypothesis profile and the counts docs/reliability.md records.

Derandomized, so CI runs the same inputs every time and a failure reproduces; no example database in
the tree. Hypothesis fails an input that takes longer than PER_INPUT_S (the bound the issue asks for);
a hang beyond it is caught by the test's timeout, a native crash ends the run.
"""
from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings, strategies as st

PER_INPUT_S = 2.0
COUNTS: Counter[str] = Counter()


def fuzz_settings(n: int):
    return settings(max_examples=n, deadline=PER_INPUT_S * 1000, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def json_values(*specials):
    """Any JSON value (nested up to a few levels), plus `specials`: the values a field is likely to hold."""
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
    if specials:
        leaves = leaves | st.sampled_from(specials)
    return st.recursive(leaves, lambda inner: st.lists(inner, max_size=4)
                        | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=8)
