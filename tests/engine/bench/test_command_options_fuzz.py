"""Fuzzing `d2sd bench --methods`: strings built from method names, option names, separators and values
of every kind. Every input ends in a ValueError naming the problem or in options of their declared type
and bounds, within 2 s."""
import math

import pytest
from hypothesis import given, strategies as st

from engine.bench.command import OPTIONS, parse_methods
from engine.methods import METHODS
from tests.fuzzing import COUNTS, fuzz_settings

N = 2000
VALUES = st.sampled_from(["1", "0", "-1", "1.5", "abc", "", "nan", "inf", "1e9", "0x10", "1_0", " 4", "True",
                          "256", "257", "0.99", "1.0", "d.gguf"]) | st.text(max_size=6)
KEYS = st.sampled_from(sorted(OPTIONS) + ["", "g", "gamma ", "GAMMA"]) | st.text(max_size=5)
ITEMS = st.builds(lambda name, pairs: ":".join([name] + [f"{k}{sep}{v}" for k, sep, v in pairs]),
                  st.sampled_from(METHODS + ["", "looqup", "AR"]) | st.text(max_size=5),
                  st.lists(st.tuples(KEYS, st.sampled_from(["=", "", "=="]), VALUES), max_size=3))
SPECS = st.lists(ITEMS, min_size=0, max_size=4).map(",".join) | st.text(max_size=40)


@pytest.mark.timeout(300)
def test_method_specs_end_in_a_value_error_or_typed_bounded_options():
    @fuzz_settings(N)
    @given(SPECS)
    def check(spec):
        COUNTS["bench options"] += 1
        try:
            chosen = parse_methods(spec)
        except ValueError as e:
            assert str(e) and "\n" not in str(e).replace(spec, "")
            return
        for _label, name, params in chosen:
            assert name in METHODS
            for key, value in params.items():
                kind, lo, hi = OPTIONS[key]
                assert type(value) is kind
                if lo is not None:
                    assert lo <= value <= hi and not (kind is float and math.isnan(value))

    check()
    assert COUNTS["bench options"] >= N
