"""llama.cpp anchors: the parsers on outputs recorded from the real programs, the one-line hint when they are
not built, and, where `make anchors` has built them, the programs themselves through `d2sd bench --anchors`."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.bench import anchors
from engine.bench.anchors import Measure
from engine.cli import main
from engine.paths import cache_dir

RECORDED = Path(__file__).parent / "recorded"
# Read at import, before the autouse fixture points the cache at a temporary folder: where `make anchors` built them.
BUILT = anchors.bin_dir()
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def built() -> anchors.Anchors:
    try:
        return anchors.find(BUILT)
    except anchors.AnchorsMissing:
        pytest.skip(f"llama.cpp anchors not built in {BUILT}, or built by an older recipe (make anchors)")


# recorded/: the programs' whole output (stdout and stderr, as anchors.run collects it) from `make anchors`
# builds, on the embedded Qwen2.5-Coder-1.5B with HumanEval/0 chat-templated, -t 1 -n 32, greedy, on a loaded
# machine; the speculative one drafts with the embedded 0.5B at llama.cpp's default draft settings.
def test_parse_recorded_llama_completion():
    text = (RECORDED / "llama-completion.txt").read_text()
    m = anchors.parse_plain(text)
    # "eval time =    4348.62 ms /    31 runs   (  140.28 ms per token,     7.13 tokens per second)"
    assert (m.tokens, m.seconds, m.drafted) == (31, pytest.approx(4.34862), None)
    assert m.tokens_per_s == pytest.approx(7.13, abs=0.005)
    with pytest.raises(ValueError, match="decoded N tokens"):
        anchors.parse_speculative(text)


def test_parse_recorded_llama_speculative_simple():
    text = (RECORDED / "llama-speculative-simple.txt").read_text()
    # "decoded   36 tokens in    6.401 seconds, speed:    5.624 t/s", n_drafted = 27, n_accept = 27
    assert anchors.parse_speculative(text) == Measure(36, 6.401, pytest.approx(5.624, abs=0.0005), 27, 27)
    with pytest.raises(ValueError, match="eval timing"):
        anchors.parse_plain("")


def test_summary_totals_before_rates():
    def run(anchor, prompt, tokens, seconds, drafted=None, accepted=None):
        return anchors.AnchorRun(anchor, prompt, Measure(tokens, seconds, tokens / seconds, drafted, accepted), [])

    runs = [run(anchors.PLAIN, "a", 10, 1.0), run(anchors.PLAIN, "b", 30, 2.0),
            run(anchors.SPECULATIVE, "a", 12, 2.0, 9, 6), run(anchors.SPECULATIVE, "b", 28, 3.0, 15, 9)]
    plain, spec = anchors.summarize(runs, ar_tokens_per_s=10.0)
    assert plain["tokens_per_s"] == pytest.approx(40 / 3) and plain["speedup_vs_ar"] == pytest.approx(4 / 3)
    assert spec["tokens_per_s"] == pytest.approx(8.0) and spec["acceptance"] == pytest.approx(15 / 24)
    assert spec["vs_llama_plain"] == pytest.approx(8.0 / (40 / 3)) and plain["acceptance"] is None


def test_missing_build_is_one_line_saying_make_anchors(tiny_gguf, prompt_file, capsys):
    # The autouse fixture gives this test an empty cache folder, so nothing is built there.
    argv = ["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--anchors", "--no-calibrate"]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "make anchors" in err and str(cache_dir()) in err


def test_real_programs_on_the_tiny_model(built, tiny_gguf):
    text = "<|im_start|>user\ndef hello world<|im_end|>\n<|im_start|>assistant\n"
    plain = anchors.measure(anchors.PLAIN, anchors.plain_argv(built, tiny_gguf, text, 8, 256, 1), "p", text, 120)
    assert plain.measure.tokens > 0 and plain.measure.tokens_per_s > 0 and "<prompt>" in plain.argv
    spec = anchors.measure(anchors.SPECULATIVE,
                           anchors.speculative_argv(built, tiny_gguf, tiny_gguf, text, 8, 256, 1, 3, 0.0),
                           "p", text, 120)
    # The model drafting for itself, greedy: drafts get accepted (all, unless batched and single decodes
    # break a near tie differently).
    assert spec.measure.tokens > 0 and 0 < spec.measure.accepted <= spec.measure.drafted


def test_an_older_build_is_refused_with_the_command_that_rebuilds_it(built, tmp_path):
    old = tmp_path / "bin"
    old.mkdir()
    for program in (built.plain, built.speculative):
        (old / program.name).symlink_to(program)
    (old / "VERSION").write_text(built.built_from)  # recipe 1 wrote no RECIPE file
    with pytest.raises(anchors.AnchorsMissing, match="older `make anchors`.*run `make anchors` again"):
        anchors.find(old)
    (old / "RECIPE").write_text(str(anchors.RECIPE))
    assert anchors.find(old).built_from == built.built_from


def test_no_timing_line_is_lost_on_a_busy_machine(built, tiny_gguf):
    # Six busy processes on two cores: before llama_log_drain.cpp, 3 runs in 4 ended without their timing lines.
    text = "<|im_start|>user\nprint the data<|im_end|>\n<|im_start|>assistant\n"
    jobs = [(anchors.PLAIN, anchors.plain_argv(built, tiny_gguf, text, 8, 256, 1)),
            (anchors.SPECULATIVE, anchors.speculative_argv(built, tiny_gguf, tiny_gguf, text, 8, 256, 1, 4, 0.0))]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(6)]
    try:
        for _ in range(10):
            for anchor, argv in jobs:
                assert anchors.measure(anchor, argv, "p", text, 120).measure.tokens > 0   # raises on a lost line
    finally:
        for h in hogs:
            h.kill()
            h.wait()


def test_bench_puts_anchors_beside_our_methods(built, tiny_gguf, prompt_file, tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))  # its own, to link the real build into
    (cache_dir() / "anchors").mkdir(parents=True)
    (cache_dir() / "anchors" / "bin").symlink_to(BUILT)
    out = tmp_path / "out"
    argv = ["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--anchors", "--no-calibrate",
            "--methods", f"ar,ardraft:draft_model={tiny_gguf}", "--sampling", "greedy", "--max-tokens", "8",
            "--ctx", "512", "--threads", "1", "--out", str(out)]
    assert main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    got = doc["anchors"]
    assert [s["anchor"] for s in got["summary"]] == [anchors.PLAIN, anchors.SPECULATIVE]
    assert all(s["prompts"] == 2 and s["tokens_per_s"] > 0 and s["speedup_vs_ar"] for s in got["summary"])
    assert [r["prompt"] for r in got["runs"]] == ["one", "one", "2", "2"]
    spec_argv = got["runs"][1]["argv"]
    # Like for like with our ardraft: its draft model and γ.
    assert spec_argv[spec_argv.index("-md") + 1] == str(tiny_gguf)
    assert spec_argv[spec_argv.index("--spec-draft-n-max") + 1] == "4"
    md = (out / "results.md").read_text()
    assert f"| {anchors.PLAIN} (llama.cpp) | greedy |" in md and f"{anchors.SPECULATIVE} ran at" in md


def test_make_anchors_again_does_nothing(built):
    env = {**os.environ, "D2SD_CACHE_DIR": str(BUILT.parents[1])}
    p = subprocess.run(["make", "-s", "anchors"], cwd=REPO, env=env, capture_output=True, text=True)
    assert p.returncode == 0 and p.stdout.strip().startswith("llama.cpp anchors") and "already built" in p.stdout
