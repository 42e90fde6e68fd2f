"""Distillation data per CPU-hour, measured: the table in data/README.md.

    python -m engine.train.throughput generate --slots 16 --threads 2 --seconds 30
    python -m engine.train.throughput teacher --n 8

`generate`: the target's own greedy answers, `--slots` sequences side by side (the data stage's loop), answer
tokens a second over a window that starts once every slot decodes (`--threads` fixed, no ThreadChooser).
Every block label of such data is exact: the answer is the target's greedy path.
`teacher`: existing answers (standard-library functions, ShareGPT replies; never HumanEval) prefilled in one
pass each, labelled with the target's own greedy tokens. A block label at depth d past an anchor is exact
only while the text follows the target's greedy path, so it counts exact labels per anchor too.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

BLOCK = 16


def exact_depths(agree: np.ndarray) -> np.ndarray:
    """Per anchor p: block positions past it whose label is the target's greedy token. `agree[p]`: the text's
    token p equals the target's greedy token after token p-1. Depth 1 is always exact; depth d needs
    agree[p+1 .. p+d-1]."""
    out = np.empty(len(agree), dtype=np.int64)
    for p in range(len(agree)):
        d = 1
        while d < BLOCK and p + d < len(agree) and agree[p + d]:
            d += 1
        out[p] = d
    return out


def measure_generate(target_path: Path, slots: int, threads: int, seconds: float) -> float:
    from engine.target import Target
    from engine.train import data
    from engine.train.prompts import training_prompts

    s = data.DataSettings(layers=(1, 13, 25), slots=slots, n_threads=threads, adapt_threads=False)
    prompts = training_prompts()
    with Target.load(target_path, data.target_settings(s)) as target:
        window: list[tuple[float, int]] = []
        tokens = 0
        stop = lambda: bool(window) and time.perf_counter() > window[0][0] + seconds  # noqa: E731

        def counting(rows: int) -> None:
            nonlocal tokens
            if rows == slots and not window:
                window.append((time.perf_counter(), tokens))
            tokens += rows

        samples = data.answer_side_by_side(target, prompts, iter(range(3000, len(prompts))), s, stop=stop,
                                           abandon=True, on_step=counting)
        for _ in samples:
            pass
    start, first = window[0]
    return (tokens - first) / (time.perf_counter() - start)


def _library_pairs(n: int) -> list[tuple[str, str]]:
    from itertools import islice

    from engine.train.prompts import COMPLETE, library_functions

    return [(f"{COMPLETE}\n\n```python\n{stub}\n```", f"```python\n{whole}\n```")
            for stub, whole in islice(library_functions(skip_files=200), n)]


def _sharegpt_pairs(n: int) -> list[tuple[str, str]]:
    from engine.train.prompts import HELDOUT, _conversations, _sharegpt_file

    out = []
    for conv in _conversations(_sharegpt_file())[:-HELDOUT]:
        turns = conv.get("conversations") or []
        if len(turns) >= 2 and turns[0].get("from") == "human" and turns[1].get("from") == "gpt":
            q, a = turns[0]["value"].strip(), turns[1]["value"].strip()
            if 20 <= len(q) <= 1200 and len(a) >= 200 and sum(c.isascii() for c in q + a) >= 0.95 * len(q + a):
                out.append((q, a))
                if len(out) >= n:
                    break
    return out


def measure_teacher(target_path: Path, pairs: list[tuple[str, str]], threads: int, max_new: int = 320) -> dict:
    from engine.target import Target, TargetSettings
    from engine.tree import Trie

    seconds, answer_tokens, depths, agree_all = 0.0, 0, [], []
    with Target.load(target_path, TargetSettings(n_ctx=2048, n_threads=threads, n_seq_max=1)) as t:
        for question, answer in pairs:
            user = [{"role": "user", "content": question}]
            n_prompt = len(t.chat_tokens(user))
            full = t.tokenize(t.chat_prompt(user + [{"role": "assistant", "content": answer}], False))
            full = full[:n_prompt + max_new]
            t.reset()
            started = time.perf_counter()
            anchor, _ = t.prepare(full[:n_prompt])
            trie = Trie.rooted(anchor)
            trie.add_row(full[n_prompt:-1], "text")
            logits, _ = t.decode_tree(trie, copy_logits=False)
            greedy = logits.argmax(1)
            seconds += time.perf_counter() - started
            text = np.array(full[n_prompt:])
            agree = greedy[:len(text)] == text
            agree_all.append(agree)
            depths.append(exact_depths(agree))
            answer_tokens += len(text)
    depths_all = np.concatenate(depths)
    return {"answer_tok_s": answer_tokens / seconds, "agree": float(np.concatenate(agree_all).mean()),
            "exact_per_anchor": float(depths_all.mean()), "exact_labels_s": float(depths_all.sum() / seconds)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.train.throughput", description=__doc__.split("\n\n")[0])
    ap.add_argument("path", choices=["generate", "teacher"])
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--n", type=int, default=8, help="teacher: answers of each source")
    a = ap.parse_args(argv)
    from engine.store.embedded import ensure

    target = ensure()
    if a.path == "generate":
        rate = measure_generate(target, a.slots, a.threads, a.seconds)
        print(f"generate, {a.slots} slots, {a.threads} threads: {rate:.1f} answer tok/s "
              f"({rate * 3600 / 1000:.0f}k an hour), every label exact")
        return 0
    for name, pairs in (("stdlib functions", _library_pairs(a.n)), ("sharegpt replies", _sharegpt_pairs(a.n))):
        r = measure_teacher(target, pairs, a.threads)
        print(f"teacher-forced {name}: {r['answer_tok_s']:.1f} answer tok/s, text on the target's greedy path at "
              f"{r['agree']:.1%} of positions, {r['exact_per_anchor']:.2f} exact labels of {BLOCK} per anchor, "
              f"{r['exact_labels_s']:.0f} exact labels/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
