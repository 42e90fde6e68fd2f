"""The bench's journal: every finished prompt (all methods, all modes, and llama.cpp's anchor runs) is
appended to `journal.jsonl` in the output folder as soon as it is done, so a long run that stops (a
closed laptop, a session that ends) continues with `--resume` where it stopped, losing at most the
prompt in flight. The first line holds the run's settings; a resume with other settings is refused,
since the tables would mix incomparable runs.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from engine.bench.anchors import AnchorRun, Measure
from engine.bench.harness import Run

NAME = "journal.jsonl"


class Journal:
    def __init__(self, folder: Path, settings: dict, *, resume: bool):
        """Opens folder/journal.jsonl for `settings` (JSON-able); `resume` continues an existing one."""
        self.path = folder / NAME
        self.runs: list[Run] = []
        self.anchor_runs: list[AnchorRun] = []
        self.done: set[str] = set()
        if self.path.exists() and not resume:
            raise ValueError(f"{folder} already holds a bench run: pass --resume to continue it, "
                             "or choose another --out")
        if resume and self.path.exists():
            self._load(settings)
        else:
            self.path.write_text(json.dumps({"settings": settings}) + "\n")

    def _load(self, settings: dict) -> None:
        lines = self.path.read_text().splitlines()
        head = json.loads(lines[0]) if lines else {}
        saved, now = head.get("settings") or {}, json.loads(json.dumps(settings))
        if saved != now:
            differ = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k))
            raise ValueError(f"{self.path} was written with other settings (differing: {', '.join(differ)}); "
                             "--resume needs the same methods, prompts, modes, sizes and models")
        for n, line in enumerate(lines[1:], start=2):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                if n == len(lines):  # the write in flight when the run stopped
                    break
                raise ValueError(f"{self.path}:{n} is not JSON") from None
            self.runs += [Run(**r) for r in entry["runs"]]
            self.anchor_runs += [AnchorRun(**{**a, "measure": Measure(**a["measure"])}) for a in entry["anchors"]]
            self.done.add(entry["prompt"])
        # Rewritten whole without a torn last line, so appends start on a line of their own.
        with open(self.path, "w") as f:
            f.write(json.dumps({"settings": settings}) + "\n")
            for prompt in self._prompts_in_order():
                f.write(self._line(prompt, [r for r in self.runs if r.prompt == prompt],
                                   [a for a in self.anchor_runs if a.prompt == prompt]))

    def _prompts_in_order(self) -> list[str]:
        return list(dict.fromkeys(r.prompt for r in self.runs))

    @staticmethod
    def _line(prompt: str, runs: list[Run], anchor_runs: list[AnchorRun]) -> str:
        return json.dumps({"prompt": prompt, "runs": [asdict(r) for r in runs],
                           "anchors": [asdict(a) for a in anchor_runs]}) + "\n"

    def add(self, prompt: str, runs: list[Run], anchor_runs: list[AnchorRun]) -> None:
        with open(self.path, "a") as f:
            f.write(self._line(prompt, runs, anchor_runs))
            f.flush()
        self.runs += runs
        self.anchor_runs += anchor_runs
        self.done.add(prompt)
