"""External anchors: llama.cpp's own `llama-completion` (plain decoding) and `llama-speculative-simple`
(classic draft model), built by `make anchors` from the llama.cpp vendored in the installed
llama-cpp-python's sdist. `d2sd bench --anchors` runs them on the same prompts, greedy, right after our
methods on each prompt, so their tokens/s stand beside ours under the same machine load.

Each program gets the prompt text with the chat template already applied (exactly what our harness
tokenizes) through -p, with escape processing off and llama-completion's conversation mode off: the
programs then tokenize it as the engine does (special tokens parsed, BOS only if the model wants one).
Their tokens/s are their own decode figures, prompt processing excluded, as ours are."""
from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from engine.paths import cache_dir

PLAIN = "llama-completion"
SPECULATIVE = "llama-speculative-simple"
BUILD_HINT = "llama.cpp anchors are not built: run `make anchors` in the d2sd source tree (CPU, about 13 minutes)"
# How `make anchors` builds them; raised when that changes, so older builds are built again. 2: with
# llama_log_drain.cpp (recipe 1 lost the programs' closing timing lines on a busy machine).
RECIPE = 2

# Their log lines start with a timestamp and a level ("0.15.241.890 I "), so nothing is anchored at the line
# start. llama-completion: the perf line for single-token decodes ("prompt eval time" is the prefill).
_EVAL = re.compile(r"perf_(?:context_)?print:\s+eval time =\s*([\d.]+) ms /\s*(\d+) runs")
# llama-speculative-simple: its own summary after generation.
_DECODED = re.compile(r"\bdecoded\s+(\d+) tokens in\s+([\d.]+) seconds")
_DRAFTED = re.compile(r"\bn_drafted\s*=\s*(\d+)")
_ACCEPTED = re.compile(r"\bn_accept\s*=\s*(\d+)")


class AnchorsMissing(ValueError):
    pass


@dataclass(frozen=True)
class Anchors:
    plain: Path
    speculative: Path
    built_from: str     # the llama-cpp-python version whose vendored llama.cpp they were built from


@dataclass(frozen=True)
class Measure:
    """One program's decode on one prompt."""
    tokens: int
    seconds: float
    tokens_per_s: float
    drafted: int | None = None      # speculative only
    accepted: int | None = None


@dataclass
class AnchorRun:
    anchor: str
    prompt: str
    measure: Measure
    argv: list[str]     # with the prompt text replaced by "<prompt>"


def bin_dir() -> Path:
    return cache_dir() / "anchors" / "bin"


def find(where: Path | None = None) -> Anchors:
    d = where or bin_dir()
    plain, spec = d / PLAIN, d / SPECULATIVE
    if not (plain.is_file() and spec.is_file()):
        raise AnchorsMissing(f"{BUILD_HINT} (looked in {d})")
    recipe = d / "RECIPE"
    if (int(recipe.read_text()) if recipe.is_file() else 1) < RECIPE:
        raise AnchorsMissing(f"llama.cpp anchors in {d} were built by an older `make anchors` whose programs can lose "
                             "their timing lines: run `make anchors` again")
    version = d / "VERSION"
    return Anchors(plain, spec, version.read_text().strip() if version.is_file() else "unknown")


def stale_note(anchors: Anchors) -> str | None:
    """The anchors compare ggml against ggml only while both come from the same llama.cpp."""
    installed = metadata.version("llama_cpp_python")
    if anchors.built_from != installed:
        return (f"llama.cpp anchors were built from llama-cpp-python {anchors.built_from}, but {installed} is "
                "installed: run `make anchors` to rebuild them")
    return None


def parse_plain(output: str) -> Measure:
    m = _EVAL.findall(output)
    if not m:
        raise ValueError(f"no eval timing line in {PLAIN}'s output")
    ms, runs = m[-1]
    return _measure(int(runs), float(ms) / 1000)


def parse_speculative(output: str) -> Measure:
    m, drafted, accepted = _DECODED.findall(output), _DRAFTED.findall(output), _ACCEPTED.findall(output)
    if not m:
        raise ValueError(f"no 'decoded N tokens' line in {SPECULATIVE}'s output")
    n, s = m[-1]
    return _measure(int(n), float(s), int(drafted[-1]) if drafted else None, int(accepted[-1]) if accepted else None)


def _measure(tokens: int, seconds: float, drafted: int | None = None, accepted: int | None = None) -> Measure:
    # The rate from the counts, not their printed one: that reads "inf" when nothing was decoded.
    return Measure(tokens, seconds, tokens / seconds if seconds > 0 else 0.0, drafted, accepted)


def _common(model: Path, text: str, max_tokens: int, ctx: int, threads: int) -> list[str]:
    # Greedy (temperature 0) as the bench's reference mode; --no-escape keeps a "\n" written inside code as two
    # characters, as our tokenizer sees it.
    return ["-m", str(model), "-p", text, "--no-escape", "-n", str(max_tokens), "-c", str(ctx),
            "-t", str(threads), "-tb", str(threads), "--temp", "0", "--perf"]


def plain_argv(anchors: Anchors, model: Path, text: str, max_tokens: int, ctx: int, threads: int) -> list[str]:
    # -no-cnv: the text already carries the chat template; conversation mode would wrap it again and wait on stdin.
    return [str(anchors.plain), *_common(model, text, max_tokens, ctx, threads), "-no-cnv", "--no-display-prompt"]


def speculative_argv(anchors: Anchors, model: Path, draft: Path, text: str, max_tokens: int, ctx: int,
                     threads: int, draft_max: int | None = None, p_min: float | None = None) -> list[str]:
    """`draft_max`, `p_min`: our ardraft's γ and p_min when it is in the run, else llama.cpp's defaults."""
    # --spec-type: this llama.cpp picks among several speculators and enables none unless told; draft-simple is
    # the classic draft-model chain.
    argv = [str(anchors.speculative), *_common(model, text, max_tokens, ctx, threads), "-md", str(draft),
            "--spec-type", "draft-simple", "-td", str(threads), "-tbd", str(threads)]
    if draft_max is not None:
        argv += ["--spec-draft-n-max", str(draft_max)]
    if p_min is not None:
        argv += ["--spec-draft-p-min", str(p_min)]
    return argv


def run(argv: list[str], timeout_s: float) -> str:
    """The program's stdout and stderr together (llama.cpp logs its timings to stderr, the text to stdout)."""
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{Path(argv[0]).name} did not finish in {timeout_s:.0f} s") from e
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise RuntimeError(f"{Path(argv[0]).name} failed with code {p.returncode}: {_tail(out)}")
    return out


def measure(anchor: str, argv: list[str], prompt_id: str, text: str, timeout_s: float) -> AnchorRun:
    parse = parse_plain if anchor == PLAIN else parse_speculative
    out = run(argv, timeout_s)
    try:
        got = parse(out)
    except ValueError as e:
        raise RuntimeError(f"{e} (prompt {prompt_id}; the output ended: {_tail(out)})") from e
    return AnchorRun(anchor, prompt_id, got, ["<prompt>" if a == text else a for a in argv])


def _tail(out: str) -> str:
    return " | ".join(out.strip().splitlines()[-3:])


def summarize(runs: list[AnchorRun], ar_tokens_per_s: float | None) -> list[dict]:
    """Per program: totals over prompts first, then the rate, as summary.py does for our methods."""
    out = []
    for anchor in dict.fromkeys(r.anchor for r in runs):
        ms = [r.measure for r in runs if r.anchor == anchor]
        tokens, seconds = sum(m.tokens for m in ms), sum(m.seconds for m in ms)
        tps = tokens / seconds if seconds > 0 else 0.0
        drafted = sum(m.drafted or 0 for m in ms)
        out.append({"anchor": anchor, "prompts": len(ms), "tokens": tokens, "seconds": seconds,
                    "tokens_per_s": tps,
                    "acceptance": sum(m.accepted or 0 for m in ms) / drafted if drafted else None,
                    "speedup_vs_ar": tps / ar_tokens_per_s if ar_tokens_per_s else None})
    plain = next((s for s in out if s["anchor"] == PLAIN), None)
    for s in out:
        s["vs_llama_plain"] = s["tokens_per_s"] / plain["tokens_per_s"] if plain and plain["tokens_per_s"] else None
    return out


def record(anchors: Anchors, runs: list[AnchorRun], summary: list[dict], notes: list[str]) -> dict:
    return {"bin_dir": str(anchors.plain.parent), "built_from_llama_cpp_python": anchors.built_from,
            "mode": "greedy", "notes": notes, "summary": summary,
            "runs": [{**asdict(r), "measure": asdict(r.measure)} for r in runs]}
