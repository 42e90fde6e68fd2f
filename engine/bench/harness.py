"""Runs every method on every prompt with one loaded target, interleaved prompt by prompt (and in a
rotating order) so that machine drift and cache warmth hit all methods alike."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from engine.events import Finished, StepStats
from engine.generate import generate
from engine.verify import SamplerSettings

REFERENCE = "ar"


@dataclass(frozen=True)
class Mode:
    name: str                   # "greedy" or "sample"
    sampler: SamplerSettings    # the seed is offset per prompt, identically for every method


@dataclass
class Run:
    """One method on one prompt in one mode."""
    method: str
    prompt: str
    mode: str
    stats: dict
    text: str
    tokens: list[int]
    step_nodes: list[int]       # tree size (anchor included) of each verify pass
    step_emitted: list[int]     # tokens emitted by each pass
    diverges_at: int | None = None      # first token differing from the reference's output
    matches_reference: bool | None = None


@dataclass
class Results:
    runs: list[Run] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    modes: list[str] = field(default_factory=list)
    stopped: bool = False       # `stop` asked to end before every prompt was done


def run_one(target, tokens: list[int], method, label: str, prompt_id: str, mode: Mode,
            max_tokens: int) -> Run:
    target.reset()  # every method pays the same prefill
    nodes, emitted, fin = [], [], None
    for ev in generate(target, tokens, method, mode.sampler, max_tokens):
        if isinstance(ev, StepStats):
            nodes.append(ev.tree_nodes)
            emitted.append(ev.emitted)
        elif isinstance(ev, Finished):
            fin = ev
    return Run(label, prompt_id, mode.name, fin.stats.to_dict(), fin.text, fin.token_ids, nodes, emitted)


def run_bench(target, methods: dict, prompts, modes: list[Mode], max_tokens: int,
              progress: Callable[[Run], None] | None = None,
              after_prompt: Callable[[object, list[Run]], None] | None = None,
              done: frozenset[str] = frozenset(), stop: Callable[[], bool] = lambda: False) -> Results:
    """`methods`: label -> Method, built once and reused across prompts. `after_prompt(prompt, runs)` runs
    once each prompt is done in every mode (external programs on the same prompt, under the same drift;
    the journal). Prompts whose id is in `done` are skipped; the others keep their place in the
    rotation and their sampling seeds, so a resumed run makes the runs an uninterrupted one would.
    `stop()` is asked before each run; once it says yes the unfinished prompt is dropped and the results
    so far come back with `stopped` set. Asking between runs, not raising inside one, keeps the signal
    out of llama.cpp's callbacks."""
    res = Results(methods=list(methods), modes=[m.name for m in modes])
    labels = list(methods)
    for i, prompt in enumerate(prompts):
        if prompt.id in done:
            continue
        first = len(res.runs)
        tokens = prompt.tokens(target)
        for mode in modes:
            sampler = mode.sampler
            if sampler.seed is not None:
                sampler = SamplerSettings(sampler.temperature, sampler.top_k, sampler.top_p, sampler.min_p,
                                          sampler.seed + i)
            order = labels[i % len(labels):] + labels[:i % len(labels)]
            runs = []
            for lab in order:
                if stop():
                    del res.runs[first:]
                    res.stopped = True
                    return res
                runs.append(run_one(target, tokens, methods[lab], lab, prompt.id, Mode(mode.name, sampler),
                                    max_tokens))
            mark_divergence(runs)
            for r in sorted(runs, key=lambda r: labels.index(r.method)):
                res.runs.append(r)
                if progress:
                    progress(r)
        if after_prompt:
            after_prompt(prompt, res.runs[first:])
    return res


def mark_divergence(runs: list[Run]) -> None:
    """Compare each output with the reference's: the first differing position says more than a boolean,
    since batched verify passes may flip a near-tie token and everything after it differs legitimately."""
    ref = next((r for r in runs if r.method == REFERENCE), None)
    if ref is None:
        return
    for r in runs:
        n = min(len(ref.tokens), len(r.tokens))
        r.diverges_at = next((k for k in range(n) if ref.tokens[k] != r.tokens[k]),
                             None if len(ref.tokens) == len(r.tokens) else n)
        r.matches_reference = r.diverges_at is None

