"""The floor a drafter must clear: the first-token acceptance of an n-gram table counted on the training
answers, which predicts the token after the anchor from the anchor and the n-1 tokens before it, without
the target's features. Measured at the held-out anchors `evaluate.acceptance` uses, so the two compare row
for row.

    python -m engine.train.ngram data/<target>-answers.npz [--n 2] [--heldout-every 20]
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from engine.train.data import read_answers
from engine.train.evaluate import evaluation_anchors


def ngram_acceptance(answers: dict[int, tuple[np.ndarray, int]], n: int, heldout_every: int) -> dict:
    """First-token acceptance of the most frequent next token after each (n-1)-token context plus anchor, counted
    on the answers whose prompt index is not divisible by `heldout_every`, measured on those that are."""
    counts: dict[tuple, Counter] = defaultdict(Counter)
    held = []
    for index, (tokens, n_prompt) in answers.items():
        if index % heldout_every == 0:
            held.append((tokens, n_prompt))
            continue
        for a in range(max(n_prompt, n - 1), len(tokens) - 1):
            counts[tuple(tokens[a - n + 1:a + 1])][int(tokens[a + 1])] += 1
    best = {context: c.most_common(1)[0][0] for context, c in counts.items()}
    hits = rows = 0
    for tokens, n_prompt in held:
        if len(tokens) - 1 <= n_prompt:
            continue
        for a in evaluation_anchors(len(tokens), n_prompt):
            rows += 1
            hits += best.get(tuple(tokens[a - n + 1:a + 1])) == int(tokens[a + 1])
    return {"n": n, "rows": rows, "heldout_samples": len(held), "first_token": hits / max(rows, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.train.ngram", description=__doc__.split("\n\n")[0])
    ap.add_argument("answers", type=Path, help="an answers file (`d2sd train --answers`)")
    ap.add_argument("--n", type=int, action="append", help="table order, repeatable (default 1, 2 and 3)")
    ap.add_argument("--heldout-every", type=int, default=20, help="held out: prompt index divisible by this (default 20)")
    ap.add_argument("--first", type=int, default=0, help="only the first N answers in prompt order (default: all)")
    a = ap.parse_args(argv)
    if any(n < 1 for n in a.n or []) or a.heldout_every < 1 or a.first < 0:
        print("ngram: error: --n and --heldout-every must be at least 1, --first at least 0", file=sys.stderr)
        return 1
    try:
        answers = read_answers(a.answers)
    except (OSError, ValueError, KeyError) as e:
        print(f"ngram: error: {a.answers}: not an answers file ({e})", file=sys.stderr)
        return 1
    if a.first:  # the answers a `--data-tokens` data folder holds: the first ones in prompt order
        answers = dict(sorted(answers.items())[:a.first])
    for n in a.n or [1, 2, 3]:
        r = ngram_acceptance(answers, n, a.heldout_every)
        print(f"{n}-gram: first token {r['first_token']:.3f} on {r['rows']} rows of {r['heldout_samples']} held-out answers")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
