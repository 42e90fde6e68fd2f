"""The benchmark's JSON record and Markdown table."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from engine.bench.anchors import PLAIN
from engine.bench.harness import Results
from engine.bench.summary import Summary
from engine.calibrate import CostCurve


def write_json(path: Path, meta: dict, res: Results, summaries: list[Summary], curve: CostCurve | None) -> None:
    doc = {**meta, "methods": res.methods, "modes": res.modes,
           "summary": [s.to_dict() for s in summaries],
           "cost_curve": curve.to_json() if curve else None,
           "runs": [asdict(r) for r in res.runs]}
    path.write_text(json.dumps(doc, indent=1))


def markdown(meta: dict, summaries: list[Summary], curve: CostCurve | None) -> str:
    m = meta["machine"]
    lines = [f"Target: `{Path(meta['target']['path']).name}` (sha256 `{meta['target']['sha256'][:16]}…`), "
             f"{meta['prompts']['set']} × {meta['prompts']['count']}, max {meta['max_tokens']} tokens.",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['threads']} threads, load average "
             f"{_load(m['load_average'])} at start, {_load(meta.get('load_average_end'))} at end; "
             f"llama-cpp-python {m['versions']['llama_cpp_python']}.", *_stopped(meta), "",
             "| method | mode | tok/s | speedup vs ar | τ | acceptance | accept by depth 1/2/3/4 "
             "| same as ar | median TTFT | draft / verify / other | host ms a step |",
             "|---|---|---:|---:|---:|---:|---|---:|---:|---|---:|"]
    for s in summaries:
        speed = f"{s.speedup:.2f}×" if s.speedup is not None else "–"
        same = f"{s.identical}/{s.prompts}" if s.identical is not None else "–"
        depth = " / ".join(f"{a:.2f}" for a in s.accept_by_depth[:4]) or "–"
        total = s.draft_s + s.verify_s + s.other_s
        split = " / ".join(f"{x / total:.0%}" for x in (s.draft_s, s.verify_s, s.other_s)) if total else "–"
        host = f"{s.other_s / s.passes * 1000:.1f}" if s.passes else "–"
        lines.append(f"| {s.method} | {s.mode} | {s.tokens_per_s:.2f} | {speed} | {s.tau:.2f} | "
                     f"{s.acceptance:.2f} | {depth} | {same} | {s.ttft_median_s * 1000:.0f} ms | {split} | {host} |")
    anchors = meta.get("anchors")
    if anchors:
        lines += _anchor_rows(anchors)
    if curve is not None:
        ns = sorted(curve.seconds)
        lines += ["", "Verify cost t(n) (chain of n nodes, median):", "",
                  "| n | " + " | ".join(str(n) for n in ns) + " |",
                  "|---|" + "---:|" * len(ns),
                  "| t(n) ms | " + " | ".join(f"{curve.t(n) * 1000:.1f}" for n in ns) + " |",
                  "| t(n)/t(1) | " + " | ".join(f"{curve.ratio(n):.2f}" for n in ns) + " |",
                  "| limit n·t(1)/t(n) | " + " | ".join(f"{curve.limit(n):.2f}" for n in ns) + " |"]
    divergent = [s for s in summaries if s.divergences]
    if divergent:
        lines += ["", "Outputs differing from ar (first differing token index; batched verify passes may flip "
                  "near-tie tokens, after which the texts are different contexts):"]
        lines += [f"- {s.method} ({s.mode}): {sorted(s.divergences)}" for s in divergent]
    return "\n".join(lines) + "\n"


def _stopped(meta: dict) -> list[str]:
    stopped = meta.get("stopped")
    return [f"**Stopped after {stopped['done']} of {stopped['of']} prompts**: the rows cover those "
            "(`--resume` continues the run)."] if stopped else []


def _anchor_rows(anchors: dict) -> list[str]:
    """Rows for llama.cpp's own programs in the table above, then what they were and how they relate."""
    rows = []
    for s in anchors["summary"]:
        speed = f"{s['speedup_vs_ar']:.2f}×" if s["speedup_vs_ar"] is not None else "–"
        accept = f"{s['acceptance']:.2f}" if s["acceptance"] is not None else "–"
        rows.append(f"| {s['anchor']} (llama.cpp) | greedy | {s['tokens_per_s']:.2f} | {speed} | – | {accept} "
                    f"| – | – | – | – | – |")
    rows += ["", f"llama.cpp rows: llama.cpp's own programs built from the llama.cpp vendored in llama-cpp-python "
             f"{anchors['built_from_llama_cpp_python']}, run on the same prompts right after ours, greedy, with the "
             "chat-templated prompt text passed through -p; their decode tokens/s (prompt processing excluded)."]
    for s in anchors["summary"]:
        if s["anchor"] != PLAIN and s["vs_llama_plain"] is not None:
            rows.append(f"{s['anchor']} ran at {s['vs_llama_plain']:.2f}× {PLAIN}.")
    rows += [f"Note: {n}" for n in anchors["notes"]]
    return rows


def _load(load) -> str:
    return "/".join(f"{x:.1f}" for x in load) if load else "?"
