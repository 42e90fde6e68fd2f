"""Grow a distillation answers file (the `--answers` file of `d2sd train`, kept in git under data/): the
target's greedy answers to the training prompts the file lacks, token ids only. Features are not captured
here; `d2sd train --answers` recaptures them with one prefill per sample. The file is rewritten whole every
`shard_samples` answers, so a stop or a kill loses at most the answers in progress, and a rerun continues.

    nice -n 19 python -m engine.train.grow data/qwen2.5-coder-1.5b-instruct-answers.npz --hours 2

Made for running in the background beside other work: the thread count follows the measured step time
(`ThreadChooser`), and Ctrl-C or a kill ends it within one step with the finished answers written.
"""
from __future__ import annotations

import argparse
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from engine.train.data import DataSettings, answer_side_by_side, load_answers, target_settings, write_answers


def grow(target_path: Path, path: Path, prompts: list[str], settings: DataSettings, *, stop=lambda: False,
         log=print) -> int:
    """Answer the prompts `path` lacks until `stop()`; returns the answer tokens added. `settings.layers`
    is ignored (no features)."""
    from engine.drafters.cache import file_sha256
    from engine.target import Target  # llama.cpp only when generating

    sha = file_sha256(target_path)
    answers = load_answers(path, sha, settings.max_new) if path.exists() else {}
    total = sum(len(t) - n for t, n in answers.values())
    added = unsaved = 0
    todo = (i for i in range(len(prompts)) if i not in answers)
    s = replace(settings, layers=())
    started = time.time()
    with Target.load(target_path, target_settings(s)) as target:
        for x in answer_side_by_side(target, prompts, todo, s, stop=stop, abandon=True):
            answers[x.index] = (np.asarray(x.tokens, dtype=np.int32), x.n_prompt)
            added += len(x.tokens) - x.n_prompt
            unsaved += 1
            if unsaved >= s.shard_samples:
                write_answers(path, answers, sha, s.max_new)
                unsaved = 0
                log(f"[answers] {len(answers)} samples, {total + added} answer tokens: +{added} at "
                    f"{added / (time.time() - started):.1f} tok/s")
    if unsaved:
        write_answers(path, answers, sha, s.max_new)
    log(f"[answers] {path}: {len(answers)} samples, {total + added} answer tokens ({added} added)")
    return added


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.train.grow", description=__doc__.split("\n\n")[0])
    ap.add_argument("answers", help="the answers file to grow (created when missing)")
    ap.add_argument("--target", help="target GGUF (default: the embedded Qwen2.5-Coder-1.5B-Instruct)")
    ap.add_argument("--hours", type=float, default=None, help="stop after this long (default: until stopped)")
    ap.add_argument("--threads", type=int, default=None, help="most threads (default: every core)")
    a = ap.parse_args(argv)
    from engine.stop_request import stop_requested
    from engine.train.pipeline import Recipe
    from engine.train.prompts import training_prompts

    recipe = Recipe()
    if a.target:
        target = Path(a.target)
    else:
        from engine.store.embedded import ensure

        target = ensure()
    deadline = None if a.hours is None else time.time() + a.hours * 3600
    settings = DataSettings(layers=(), slots=recipe.slots, max_new=recipe.max_new, n_threads=a.threads, topk=0)
    try:
        with stop_requested((signal.SIGINT, signal.SIGTERM)) as stopped:
            grow(target, Path(a.answers), training_prompts(recipe.seed), settings,
                 stop=lambda: stopped.is_set() or (deadline is not None and time.time() > deadline),
                 log=lambda m: print(m, file=sys.stderr, flush=True))
    except (OSError, ValueError, RuntimeError) as e:
        print(f"grow: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
