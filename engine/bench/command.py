"""`d2sd bench`: load the target once, run the methods side by side, write JSON, Markdown and PNGs,
and optionally project the measured acceptance onto another device's cost curve."""
from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

from engine.bench import anchors as llama_anchors, machine, plots, prompts as prompt_sets
from engine.bench.harness import Mode, Results, Run, run_bench
from engine.bench.journal import Journal
from engine.bench.projection import project, table
from engine.bench.report import markdown, write_json
from engine.bench.summary import Summary, summarize
from engine.calibrate import CostCurve, calibrate
from engine.methods.ardraft import ARDraft
from engine.stop_request import stop_requested
from engine.verify import SamplerSettings


# Every option a --methods entry may set: its type and inclusive bounds (None: no bound).
OPTIONS = {
    "gamma": (int, 1, 256),
    "k": (int, 1, 64),
    "budget": (int, 1, 4096),
    "p_min": (float, 0.0, 1.0),
    "reuse": (bool, None, None),
    "alt": (bool, None, None),
    "draft_model": (str, None, None),
}


def parse_methods(spec: str) -> list[tuple[str, str, dict]]:
    """"ar,lookup:gamma=4,ardraft:gamma=5:p_min=0.6" -> [(label, name, params)]. Names and options are
    checked here, before anything loads: a wrong one is one line naming it, not a failure mid-run."""
    from engine.methods import METHODS

    out = []
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, *pairs = item.split(":")
        if name not in METHODS:
            raise ValueError(f"unknown method {name!r} in --methods; choose from {', '.join(METHODS)}")
        params = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise ValueError(f"method option {pair!r} in {item!r} is not key=value")
            params[key] = _option(key, value, item)
        out.append((item, name, params))
    if not out:
        raise ValueError("no methods given")
    if len({label for label, _, _ in out}) != len(out):
        raise ValueError("a method is listed twice")
    return out


def _option(key: str, text: str, item: str):
    if key not in OPTIONS:
        raise ValueError(f"unknown method option {key!r} in {item!r}; options: {', '.join(OPTIONS)}")
    kind, lo, hi = OPTIONS[key]
    if kind is str:
        return text
    if kind is bool:
        if text not in ("0", "1"):
            raise ValueError(f"method option {key}={text} in {item!r} must be 0 or 1")
        return text == "1"
    try:
        value = kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise ValueError(f"method option {key}={text} in {item!r} is not {what}") from None
    if not lo <= value <= hi:  # NaN fails this too
        raise ValueError(f"method option {key}={text} in {item!r} must be between {lo} and {hi}")
    return value


def modes(a) -> list[Mode]:
    greedy = Mode("greedy", SamplerSettings(temperature=0.0))
    sample = Mode("sample", SamplerSettings(temperature=a.temperature, seed=a.seed))
    return {"greedy": [greedy], "sample": [sample], "both": [greedy, sample]}[a.sampling]


def run(a) -> int:
    if a.results:
        return _from_saved(a)
    chosen = parse_methods(a.methods)
    bench_modes = modes(a)
    prompt_list = prompt_sets.load(a.prompts, a.n)
    curve_there = CostCurve.read(a.project) if a.project else None
    found = None
    if a.anchors:
        # Checked before anything loads: a missing build is one line, not a failure after the whole run.
        found = llama_anchors.find()
        if "greedy" not in [m.name for m in bench_modes]:
            raise ValueError("--anchors measures greedy decoding: use --sampling greedy or both")

    from engine.ready_method import ReadyMethod
    from engine.store.embedded import ensure
    from engine.target import Target, TargetSettings

    if a.resume and not a.out:
        raise ValueError("--resume continues the run in --out DIR: name the folder")
    out = Path(a.out or Path("bench-results") / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    meta = {"machine": machine.describe(a.threads), "max_tokens": a.max_tokens,
            "prompts": {"set": a.prompts, "count": len(prompt_list), "ids": [p.id for p in prompt_list]},
            "sampling": {m.name: m.sampler.__dict__ for m in bench_modes}}
    path = Path(a.model) if a.model else ensure()
    meta["target"] = machine.model_record(path)
    settings = TargetSettings(n_ctx=a.ctx, n_threads=a.threads, n_gpu_layers=a.gpu_layers)
    with Target.load(path, settings) as target:
        methods = {}
        try:
            curve = None
            if not a.no_calibrate:
                _say("calibrating the verify cost curve (cached per model and settings) ...")
                curve = calibrate(target, repeats=a.repeats, use_cache=not a.recalibrate)
            # One ReadyMethod loads the drafter pair once for all the methods (each its own would hold
            # another float32 copy of the target's embedding and head: 2 × 0.93 GB for the 1.5B target);
            # sharing is safe because the harness resets the target before every run, so each run starts
            # the drafters' context caches from nothing. auto runs on the curve measured above.
            ready = ReadyMethod(target, on_measure=lambda: _say("measuring the verify cost curve for auto ..."),
                                curve=curve)
            for label, name, params in chosen:
                try:
                    methods[label] = ready.build(name, params)
                except TypeError as e:  # an option this method does not take
                    raise ValueError(f"method {label!r}: {e}") from e
            meta["drafts"] = {label: machine.model_record(m.draft.info.path)
                              for label, m in methods.items() if isinstance(m, ARDraft)}
            meta["drafters"] = {label: record for label, m in methods.items()
                                if (record := machine.drafter_record(m))}
            journal = Journal(out, {"methods": a.methods, "prompts": meta["prompts"], "max_tokens": a.max_tokens,
                                    "sampling": meta["sampling"], "target_sha256": meta["target"]["sha256"],
                                    # by content, so a run can resume in another checkout or machine
                                    "drafters": {label: {role: r["sha256"] for role, r in files.items()}
                                                 for label, files in meta["drafters"].items()},
                                    "drafts": {label: r["sha256"] for label, r in meta["drafts"].items()},
                                    "anchors": bool(a.anchors), "threads": a.threads, "ctx": a.ctx},
                              resume=a.resume)
            if journal.done:
                _say(f"resuming {out}: {len(journal.done)} of {len(prompt_list)} prompts already done")
            _say(f"{len(prompt_list)} prompts × {len(methods)} methods × {len(bench_modes)} modes")
            notes = []
            target.warm_up()  # as llama-completion warms up before it times: the first run is not paging weights in
            anchor_step = _anchor_step(found, a, target, path, methods, notes) if found else None

            def after(prompt, runs) -> None:
                journal.add(prompt.id, runs, anchor_step(prompt) if anchor_step else [])

            # Ctrl-C or a kill (a closing session) ends the run after the current method's run. A second
            # Ctrl-C stops at once, at the cost of the prompt in flight.
            try:
                with stop_requested((signal.SIGINT, signal.SIGTERM),
                                    lambda: _say("stopping after the current run (Ctrl-C again to stop now)")) as stop:
                    stopped = run_bench(target, methods, prompt_list, bench_modes, a.max_tokens, progress=_progress,
                                        after_prompt=after, done=frozenset(journal.done), stop=stop.is_set).stopped
            except KeyboardInterrupt:
                stopped = True
            if stopped:
                meta["stopped"] = {"done": len(journal.done), "of": len(prompt_list)}
                _say(f"stopped after {len(journal.done)} of {len(prompt_list)} prompts; "
                     f"--out {out} --resume continues")
            # Every finished prompt, those of earlier (resumed) sessions included.
            res = Results(journal.runs, list(methods), [m.name for m in bench_modes])
            anchor_runs = journal.anchor_runs
        finally:
            for m in methods.values():
                if hasattr(m, "close"):
                    m.close()
    meta["load_average_end"] = machine.load_average()
    summaries = summarize(res)
    if found:
        ar = next((s for s in summaries if s.method == "ar" and s.mode == "greedy"), None)
        meta["anchors"] = llama_anchors.record(
            found, anchor_runs, llama_anchors.summarize(anchor_runs, ar.tokens_per_s if ar else None), notes)
    write_json(out / "results.json", meta, res, summaries, curve)
    text = markdown(meta, summaries, curve)
    (out / "results.md").write_text(text)
    if plots.available():
        plots.write_all(out, res, summaries, curve)
    else:
        _say("matplotlib is not installed: PNG plots skipped (pip install matplotlib)")
    print(text)
    if curve_there is not None:
        print(table(project(summaries, curve_there, curve.t(1) if curve else None), curve_there))
    _say(f"results in {out}")
    return 0


def _from_saved(a) -> int:
    if not (a.project or a.execute):
        raise ValueError("--results needs --project COSTS.json or --execute: a saved run is only "
                         "re-projected or checked")
    doc = json.loads(Path(a.results).read_text())
    if a.execute:
        from engine.bench.humaneval_exec import pass_table

        print(pass_table(doc["runs"]))
    if a.project:
        summaries = [Summary(**{**d, "by_tree_size": {int(n): v for n, v in d["by_tree_size"].items()}})
                     for d in doc["summary"]]
        here = CostCurve.from_json(doc["cost_curve"]).t(1) if doc.get("cost_curve") else None
        there = CostCurve.read(a.project)
        print(table(project(summaries, there, here), there))
    return 0


def _anchor_step(found, a, target, model: Path, methods: dict, notes: list[str]):
    """The per-prompt callback running llama.cpp's programs. llama-speculative-simple drafts with our
    ardraft's model, γ and p_min when ardraft is in the run (like for like), else with the embedded 0.5B
    draft at llama.cpp's defaults when the target is the embedded one; another target without ardraft
    has no known draft partner, so only llama-completion runs."""
    from engine.store.embedded import DEFAULT_DRAFT, DEFAULT_TARGET, EmbeddedModelError, ensure

    threads = a.threads or os.cpu_count()
    timeout_s = 120 + 10 * a.max_tokens  # a loaded CPU at ~1 tok/s still finishes; a hang does not stall the run
    if note := llama_anchors.stale_note(found):
        notes.append(note)
    ardraft = next((m for m in methods.values() if isinstance(m, ARDraft)), None)
    draft, draft_max, p_min = None, None, None
    if ardraft is not None:
        draft, draft_max, p_min = Path(ardraft.draft.info.path), ardraft.gamma, ardraft.p_min
    elif Path(model).resolve() == DEFAULT_TARGET.path().resolve():
        try:
            draft = ensure(DEFAULT_DRAFT)
        except EmbeddedModelError as e:
            notes.append(f"{llama_anchors.SPECULATIVE} skipped: {e}")
    else:
        notes.append(f"{llama_anchors.SPECULATIVE} skipped: no draft model known for this target "
                     "(list ardraft:draft_model=PATH to give one)")
    for note in notes:
        _say(note)

    def step(prompt) -> list[llama_anchors.AnchorRun]:
        text = prompt.text(target)
        jobs = [(llama_anchors.PLAIN,
                 llama_anchors.plain_argv(found, model, text, a.max_tokens, a.ctx, threads))]
        if draft is not None:
            jobs.append((llama_anchors.SPECULATIVE, llama_anchors.speculative_argv(
                found, model, draft, text, a.max_tokens, a.ctx, threads, draft_max, p_min)))
        runs = [llama_anchors.measure(anchor, argv, prompt.id, text, timeout_s) for anchor, argv in jobs]
        for r in runs:
            _say(f"{r.prompt:>16} greedy {r.anchor:<20} {r.measure.tokens:4d} tok "
                 f"{r.measure.tokens_per_s:6.2f} tok/s (llama.cpp, external)")
        return runs
    return step


def _progress(r: Run) -> None:
    s = r.stats
    diverge = "" if r.matches_reference is None else (
        " = ar" if r.matches_reference else f" differs from ar at token {r.diverges_at}")
    _say(f"{r.prompt:>16} {r.mode:<6} {r.method:<20} {s['new_tokens']:4d} tok {s['tokens_per_s']:6.2f} tok/s "
         f"τ {s['tau']:.2f}{diverge}")


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)

