"""Distillation data: the target's own greedy answers to training prompts, with the target features
of every position captured in the same llama.cpp passes.

Many prompts are answered side by side, one sequence each (a context without a unified KV cache, so
no sequence attends over another's cells): on the 2-core CPU 16 sequences give ~2.5x the tokens/s of
one. Finished samples go to shards written whole (temp file, then rename); a run that stops loses at
most the samples still being generated, and the next run skips every prompt already in a shard.
The token ids alone (`save_answers`, a few hundred kB) can live in git: on a new machine one prefill
per sample recaptures the features, about twice as fast as generating the answers on a 2-core CPU, and
without the batch noise that can flip a near-tie token of a regenerated answer.

Layout of `folder`: meta.json (target sha256, layers, limits) and per shard `shard-NNNNN.npz`
(tokens int32 concatenated, per sample: prompt index, token start, prompt length, feature start) plus
`shard-NNNNN.features.npy` (float16 [rows, len(layers) * n_embd]; sample i has len(tokens_i) - 1
rows: position p's row is the target's layer outputs after reading token p) and, when the settings keep
`topk`, `topk-NNNNN.npz` (the target's `topk` most likely next tokens and their log-probabilities
after reading token p, in the same rows; prompt rows before the last hold id -1). Read with `Dataset`.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.train.progress import Progress

META = "meta.json"


@dataclass
class DataSettings:
    layers: tuple[int, ...]
    slots: int = 16           # sequences generated side by side
    max_prompt: int = 256     # longer prompts are skipped
    max_new: int = 320        # answer length cap
    shard_samples: int = 24
    n_threads: int | None = None
    adapt_threads: bool = True  # time 1 thread against n_threads as it goes (ThreadChooser)
    topk: int = 16            # the target's most likely next tokens kept per answer position (0: none)


@dataclass
class _Slot:
    index: int                 # prompt index
    tokens: list[int]
    n_prompt: int
    features: list[np.ndarray] = field(default_factory=list)
    top: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)  # (ids, log-probabilities) rows


def top_logprobs(logits: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most likely tokens of each row of `logits` [n, vocab], most likely first, with their
    log-probabilities: (int32 [n, k], float16 [n, k])."""
    logits = np.atleast_2d(logits)
    top = np.argpartition(logits, -k, axis=1)[:, -k:]
    picked = np.take_along_axis(logits, top, axis=1)
    order = np.argsort(-picked, axis=1)
    top, picked = np.take_along_axis(top, order, axis=1), np.take_along_axis(picked, order, axis=1)
    peak = logits.max(axis=1, keepdims=True)
    logz = peak + np.log(np.exp(logits - peak).sum(axis=1, keepdims=True))
    return top.astype(np.int32), (picked - logz).astype(np.float16)


def _unknown_rows(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows for prompt positions, whose next-token distribution no training row reads."""
    return np.full((n, k), -1, dtype=np.int32), np.zeros((n, k), dtype=np.float16)


def _shards(folder: Path) -> list[Path]:
    return sorted(folder.glob("shard-*.npz"))


def done_prompts(folder: Path) -> set[int]:
    done: set[int] = set()
    for shard in _shards(folder):
        with np.load(shard) as z:
            done.update(int(i) for i in z["prompt_index"])
    return done


def _write_shard(folder: Path, samples: list[_Slot]) -> None:
    n = len(_shards(folder))
    name = f"shard-{n:05d}"
    feats = np.concatenate([np.concatenate(s.features) for s in samples]).astype(np.float16)
    lengths = np.array([len(s.tokens) for s in samples])
    tmp = folder / f"{name}.features.tmp.npy"
    np.save(tmp, feats)
    os.replace(tmp, folder / f"{name}.features.npy")
    if samples[0].top:
        tmp = folder / f"topk-{n:05d}.tmp.npz"
        np.savez(tmp, ids=np.concatenate([t[0] for x in samples for t in x.top]),
                 logp=np.concatenate([t[1] for x in samples for t in x.top]))
        os.replace(tmp, folder / f"topk-{n:05d}.npz")
    tmp = folder / f"{name}.tmp.npz"
    np.savez(tmp, tokens=np.concatenate([np.asarray(s.tokens, dtype=np.int32) for s in samples]),
             prompt_index=np.array([s.index for s in samples]),
             token_start=np.concatenate(([0], np.cumsum(lengths)[:-1])),
             feature_start=np.concatenate(([0], np.cumsum(lengths - 1)[:-1])),
             n_prompt=np.array([s.n_prompt for s in samples]))
    os.replace(tmp, folder / f"{name}.npz")  # the index lands last: a shard without it does not exist


def stored_layers(folder: Path) -> tuple[int, ...] | None:
    """The target layers whose features `folder` holds, None when it holds no data yet."""
    path = folder / META
    return tuple(json.loads(path.read_text())["layers"]) if path.exists() else None


def _check_meta(folder: Path, meta: dict) -> None:
    path = folder / META
    if path.exists():
        old = json.loads(path.read_text())
        old.setdefault("topk", 0)  # data made before top-k was kept holds none
        for key in ("target_sha256", "layers", "max_new", "topk"):
            if old.get(key) != meta[key]:
                raise ValueError(f"{folder} holds data made with another {key} ({old.get(key)} vs "
                                 f"{meta[key]}); pick another folder or delete it")
    else:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(meta, indent=1))


def save_answers(folder: Path, path: Path) -> None:
    """Every sample's token ids (prompt and answer) and prompt index, compressed, written whole: the hours
    of generation, without the features that one prefill per sample recomputes (`generate(saved=...)`)."""
    ds = Dataset(folder)
    answers = {}
    for i in range(len(ds)):
        tokens, n_prompt, _ = ds.sample(i)
        answers[ds.prompt_index(i)] = (tokens, n_prompt)
    write_answers(path, answers, ds.meta["target_sha256"], ds.meta["max_new"])


def write_answers(path: Path, answers: dict[int, tuple[np.ndarray, int]], target_sha256: str, max_new: int) -> None:
    """prompt index -> (tokens, prompt length) to `path` in prompt order, compressed, replaced whole."""
    order = sorted(answers)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez_compressed(tmp, tokens=np.concatenate([np.asarray(answers[i][0], dtype=np.int32) for i in order]),
                        lengths=np.array([len(answers[i][0]) for i in order]),
                        n_prompt=np.array([answers[i][1] for i in order]),
                        prompt_index=np.array(order), target_sha256=np.array(target_sha256),
                        max_new=np.array(max_new))
    os.replace(tmp, path)


def load_answers(path: Path, target_sha256: str, max_new: int) -> dict[int, tuple[np.ndarray, int]]:
    """prompt index -> (tokens, prompt length) from `save_answers`; refuses another target's answers,
    which would teach the drafters another model's text, and answers cut at another length."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["target_sha256"]) != target_sha256:
            raise ValueError(f"{path} holds answers of another target (sha256 {str(z['target_sha256'])[:16]}…)")
        if int(z["max_new"]) != max_new:
            raise ValueError(f"{path} holds answers of at most {int(z['max_new'])} tokens, not {max_new}")
    return read_answers(path)


def read_answers(path: Path) -> dict[int, tuple[np.ndarray, int]]:
    """prompt index -> (tokens, prompt length) from `save_answers`, whichever target answered."""
    with np.load(path, allow_pickle=False) as z:
        starts = np.concatenate(([0], np.cumsum(z["lengths"])[:-1]))
        return {int(i): (z["tokens"][a:a + n], int(p))
                for i, a, n, p in zip(z["prompt_index"], starts, z["lengths"], z["n_prompt"])}


class ThreadChooser:
    """The thread count for each side-by-side step, 1 or every core, whichever steps faster right now.

    llama.cpp's threads meet at a barrier after every operation, so when another process holds a core,
    an all-core step waits on the descheduled thread: 16 sequences side by side on the 2-core development
    CPU gave 44.8 answer tok/s on 2 threads when quiet but 4.4 with one core busy elsewhere, where one
    thread kept 22.1. Data runs for hours beside other work, so it times both counts as it goes: it runs
    the faster and tries the other for `trial` steps every `probe` steps, probing half as often after
    each probe that loses (a slow count costs little), as often as at first after one that wins."""

    def __init__(self, counts: tuple[int, ...], probe: int = 64, trial: int = 2, most_probe: int = 256):
        self.counts = tuple(dict.fromkeys(counts))
        self.seconds: dict[int, float | None] = {n: None for n in self.counts}  # smoothed seconds per row
        self.current = self.counts[-1]
        self.probe, self.first_probe, self.trial, self.most_probe = probe, probe, trial, most_probe
        self._steps = self._left = 0
        self._on_trial = self._fresh = False

    def best(self) -> int:
        known = {n: t for n, t in self.seconds.items() if t is not None}
        return min(known, key=known.get) if known else self.counts[-1]

    def next(self) -> int:
        """The count to run the next step with."""
        if len(self.counts) == 1:
            return self.current
        if self._left:
            self._left -= 1
            return self.current
        if self._on_trial:  # probe sooner after a trial that won, later after one that lost
            self._on_trial = False
            won = self.best() == self.current
            self.probe = self.first_probe if won else min(2 * self.probe, self.most_probe)
        self.current = self.best()
        self._steps += 1
        untried = [n for n, t in self.seconds.items() if t is None]
        if untried or self._steps >= self.probe:
            self._steps, self._left, self._on_trial, self._fresh = 0, self.trial - 1, True, True
            self.current = untried[0] if untried else next(n for n in self.counts if n != self.current)
        return self.current

    def record(self, threads: int, seconds: float, rows: int) -> None:
        per_row = seconds / max(rows, 1)
        old = self.seconds[threads]
        if old is None or self._fresh:  # a trial's first step replaces what may be long out of date
            self.seconds[threads], self._fresh = per_row, False
        else:
            self.seconds[threads] = 0.5 * old + 0.5 * per_row


def target_settings(s: DataSettings) -> "TargetSettings":
    """A context for `s.slots` independent sequences, each with its own cells (no attention over the others)."""
    from engine.target import TargetSettings  # llama.cpp only when generating

    seq_ctx = s.max_prompt + s.max_new
    return TargetSettings(n_ctx=seq_ctx * s.slots, n_seq_max=s.slots, kv_unified=False, n_batch=max(512, s.slots),
                          n_threads=s.n_threads, capture_layers=s.layers)


def answer_side_by_side(target, prompts: list[str], todo: Iterator[int], s: DataSettings, *, stop=lambda: False,
                        enough=lambda pending: False, abandon: bool = False,
                        on_step=lambda rows: None) -> Iterator[_Slot]:
    """The target's greedy answers to the prompts `todo` names, `s.slots` sequences side by side, each sample
    yielded as it finishes (with its features when the target captures some). New prompts stop once `stop()`
    or `enough(answer tokens in progress)`; the answers in progress then finish, or with `abandon` are
    dropped at once. Prompts longer than `s.max_prompt` tokens are skipped. `on_step(rows)` follows every
    side-by-side decode (a throughput measurement counts them)."""
    from engine.train.sequences import Sequences  # llama.cpp only when generating

    seqs = Sequences(target)
    capture = bool(target.settings.capture_layers)
    most = s.n_threads or os.cpu_count() or 1
    threads = ThreadChooser((1, most) if s.adapt_threads else (most,))
    slots: list[_Slot | None] = [None] * s.slots
    nxt: list[int] = [0] * s.slots
    exhausted = False
    while True:
        out_of_time = stop()
        if out_of_time and abandon:
            return
        full = exhausted or out_of_time or enough(sum(len(x.tokens) - x.n_prompt for x in slots if x))
        for k in range(s.slots):
            if slots[k] is None and not full:
                for index in todo:
                    tokens = target.chat_tokens([{"role": "user", "content": prompts[index]}])
                    if len(tokens) <= s.max_prompt:
                        break
                else:
                    exhausted = full = True
                    break
                logits, features = seqs.prefill(k, tokens)
                slots[k] = _Slot(index, list(tokens), len(tokens), [features.astype(np.float16)] if capture else [])
                if s.topk:
                    slots[k].top = [_unknown_rows(len(tokens) - 1, s.topk), top_logprobs(logits, s.topk)]
                nxt[k] = int(logits.argmax())
        active = [k for k in range(s.slots) if slots[k] is not None]
        if not active:
            return
        still = []
        for k in active:
            x = slots[k]
            x.tokens.append(nxt[k])
            if target.is_eog(nxt[k]) or len(x.tokens) - x.n_prompt >= s.max_new:
                slots[k] = None
                yield x
            else:
                still.append(k)
        if still:
            n = threads.next()
            seqs.set_threads(n)
            t = time.perf_counter()
            logits, features = seqs.decode([(k, len(slots[k].tokens) - 1, slots[k].tokens[-1]) for k in still])
            threads.record(n, time.perf_counter() - t, len(still))
            on_step(len(still))
            ids, logp = top_logprobs(logits, s.topk) if s.topk else (None, None)  # one pass over every row
            for row, k in enumerate(still):
                if capture:
                    slots[k].features.append(features[row:row + 1].astype(np.float16))
                if s.topk:
                    slots[k].top.append((ids[row:row + 1], logp[row:row + 1]))
                nxt[k] = int(logits[row].argmax())


def generate(target_path: Path, target_sha256: str, prompts: list[str], folder: Path, settings: DataSettings,
             *, max_answer_tokens: int, saved: dict[int, tuple[np.ndarray, int]] | None = None,
             stop=lambda: False, log=print) -> int:
    """Answer prompts not yet in `folder` until `max_answer_tokens` answer tokens exist in it or
    `stop()` says so (then the answers in progress finish first). Answers in `saved` (`load_answers`)
    come first and only have their features captured, in one prefill each. Returns the answer tokens
    in the folder."""
    from engine.target import Target  # llama.cpp only when generating
    from engine.train.sequences import Sequences

    s = settings
    _check_meta(folder, {"target_sha256": target_sha256, "layers": list(s.layers), "max_new": s.max_new,
                         "max_prompt": s.max_prompt, "topk": s.topk})
    have = Dataset(folder).answer_tokens() if _shards(folder) else 0
    done = done_prompts(folder)
    progress = Progress("data", max_answer_tokens, start=have, log=log)
    with Target.load(target_path, target_settings(s)) as target:
        finished: list[_Slot] = []

        def keep(sample: _Slot) -> None:
            nonlocal have, finished
            finished.append(sample)
            done.add(sample.index)
            have += len(sample.tokens) - sample.n_prompt
            progress.update(have)
            if len(finished) >= s.shard_samples:
                _write_shard(folder, finished)
                finished = []

        for index, (tokens, n_prompt) in sorted((saved or {}).items()):
            if have >= max_answer_tokens or stop():
                break
            if index in done or n_prompt > s.max_prompt:
                continue
            logits, features = Sequences(target).prefill(0, [int(t) for t in tokens[:-1]], all_logits=bool(s.topk))
            sample = _Slot(index, [int(t) for t in tokens], n_prompt, [features.astype(np.float16)])
            if s.topk:
                sample.top = [top_logprobs(logits, s.topk)]
            keep(sample)
        todo = (i for i in range(len(prompts)) if i not in done)
        for sample in answer_side_by_side(target, prompts, todo, s, stop=stop,
                                          enough=lambda pending: have + pending >= max_answer_tokens):
            keep(sample)
        if finished:
            _write_shard(folder, finished)
    progress.done(have)
    return have


class Dataset:
    """Memory-mapped view of a data folder: sample i's tokens, prompt length and features."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.meta = json.loads((folder / META).read_text())
        self._tokens, self._features, self._top, self._index = [], [], [], []
        for shard in _shards(folder):
            with np.load(shard) as z:
                tokens = z["tokens"]
                for j in range(len(z["prompt_index"])):
                    self._index.append((len(self._tokens), int(z["token_start"][j]), int(z["feature_start"][j]),
                                        int(z["n_prompt"][j]), int(z["prompt_index"][j])))
            self._tokens.append(tokens)
            self._features.append(np.load(shard.with_name(shard.stem + ".features.npy"), mmap_mode="r"))
            top = shard.with_name(shard.stem.replace("shard-", "topk-") + ".npz")
            if top.exists():
                with np.load(top) as z:
                    self._top.append((z["ids"], z["logp"]))
            else:
                self._top.append(None)
        self.lengths = np.array([self._sample_len(i) for i in range(len(self._index))], dtype=np.int64)

    def _sample_len(self, i: int) -> int:
        shard, start, _, _, _ = self._index[i]
        ends = [s for (sh, s, _, _, _) in self._index if sh == shard and s > start]
        return (min(ends) if ends else len(self._tokens[shard])) - start

    def __len__(self) -> int:
        return len(self._index)

    def sample(self, i: int) -> tuple[np.ndarray, int, np.ndarray]:
        """(tokens int32 [n], prompt length, features float16 [n - 1, width])"""
        shard, start, fstart, n_prompt, _ = self._index[i]
        n = int(self.lengths[i])
        return self._tokens[shard][start:start + n], n_prompt, self._features[shard][fstart:fstart + n - 1]

    def top(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The target's top-k next tokens and log-probabilities of sample i: (int32, float16) [n - 1, k],
        row p after reading token p, as its features."""
        shard, _, fstart, _, _ = self._index[i]
        if self._top[shard] is None:
            raise ValueError(f"{self.folder} holds no top-k log-probabilities for sample {i} "
                             "(data made without them: train with hard labels, or make the data again)")
        ids, logp = self._top[shard]
        n = int(self.lengths[i])
        return ids[fstart:fstart + n - 1], logp[fstart:fstart + n - 1]

    def prompt_index(self, i: int) -> int:
        return self._index[i][4]

    def answer_len(self, i: int) -> int:
        return int(self.lengths[i] - self._index[i][3])

    def answer_tokens(self) -> int:
        return sum(self.answer_len(i) for i in range(len(self)))
