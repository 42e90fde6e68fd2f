"""The n-gram floor: counted on training answers only, measured at the evaluation anchors."""
import subprocess
import sys

import numpy as np

from engine.train.evaluate import evaluation_anchors
from engine.train.ngram import ngram_acceptance


def test_the_table_predicts_what_followed_most_often_in_training_answers_only():
    # prompt [9], answers cycling 1 2 3 in training; after "1" came "2" twice and "3" once
    train = {1: (np.array([9, 1, 2, 3, 1, 2, 3]), 1), 2: (np.array([9, 5, 1, 3]), 1)}
    held = np.array([9, 1, 2, 3, 1, 3])   # anchors at 1..4: next tokens 2, 3, 1, 3
    answers = {**train, 20: (held, 1)}
    assert list(evaluation_anchors(len(held), 1)) == [1, 2, 3, 4]
    r = ngram_acceptance(answers, 1, heldout_every=20)
    # 1 -> 2 (right), 2 -> 3 (right), 3 -> 1 (right), 1 -> 2 (wrong: 3 came)
    assert r == {"n": 1, "rows": 4, "heldout_samples": 1, "first_token": 0.75}
    # with the token before the anchor too: (9, 1) -> 2, (1, 2) -> 3, (2, 3) -> 1 right, (3, 1) -> 2 wrong;
    # the held-out answer itself was never counted
    assert ngram_acceptance(answers, 2, heldout_every=20)["first_token"] == 0.75
    assert ngram_acceptance({20: (held, 1)}, 1, heldout_every=20)["first_token"] == 0.0


def test_a_file_that_is_not_an_answers_file_is_one_line(tmp_path):
    bad = tmp_path / "x.npz"
    bad.write_bytes(b"not a zip")
    r = subprocess.run([sys.executable, "-m", "engine.train.ngram", str(bad)], capture_output=True, text=True)
    assert r.returncode == 1 and str(bad) in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
