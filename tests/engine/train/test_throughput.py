"""The teacher-forced path's exact-label count: a block label is exact while the text stays on the
target's greedy path."""
import numpy as np

from engine.train.throughput import BLOCK, exact_depths


def test_exact_depths_stop_at_the_first_position_off_the_greedy_path():
    agree = np.array([True, True, False, True, True, True])
    assert list(exact_depths(agree)) == [2, 1, 4, 3, 2, 1]  # depth 1 always; then while the text agrees
    assert exact_depths(np.ones(40, dtype=bool))[0] == BLOCK
