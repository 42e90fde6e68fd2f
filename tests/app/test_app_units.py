"""Settings file, markdown rendering, live statistics and the entry point's no-display exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.live_stats import LiveStats, speedup, t1_from_curve
from app.markdown import render_markdown, render_provenance
from app.settings import AppSettings, load_settings, save_settings
from app.settings_dialog import SettingsDialog
from engine.calibrate import CostCurve
from engine.events import StepStats, TreeView
from engine.methods import METHODS


def test_settings_roundtrip_and_bad_files(tmp_path):
    path = tmp_path / "settings.json"
    assert load_settings(path) == AppSettings()
    s = AppSettings(model_path="/m.gguf", method="lookup", gamma=8, n_ctx=8192, show_provenance=True)
    save_settings(s, path)
    assert load_settings(path) == s
    path.write_text(json.dumps({"gamma": "big", "n_ctx": True, "future_knob": 1, "k": 2}))
    assert load_settings(path) == AppSettings(k=2)
    path.write_text("{not json")
    assert load_settings(path) == AppSettings()


def test_the_old_saved_default_context_becomes_the_models_own(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"n_ctx": 4096, "k": 3}))  # written before "from the model" was the default
    assert load_settings(path) == AppSettings(k=3) and AppSettings().n_ctx == 0
    save_settings(AppSettings(n_ctx=4096), path)  # chosen in this version: kept
    assert load_settings(path).n_ctx == 4096 and json.loads(path.read_text())["format"] == 4
    path.write_text(json.dumps({"n_ctx": 8192}))  # an old file's own choice: kept
    assert load_settings(path).n_ctx == 8192


def test_the_old_saved_paper_rows_and_node_budget_become_the_new_defaults(tmp_path):
    path = tmp_path / "settings.json"
    for old in ({"runner_up": False, "node_budget": 64, "k": 3},
                {"format": 2, "runner_up": False, "node_budget": 64, "k": 3}):  # the old defaults
        path.write_text(json.dumps(old))
        assert load_settings(path) == AppSettings(k=3)
        assert (AppSettings().runner_up, AppSettings().node_budget) == (True, 32)
    save_settings(AppSettings(runner_up=False, node_budget=64), path)  # chosen in this version: kept
    assert (load_settings(path).runner_up, load_settings(path).node_budget) == (False, 64)
    path.write_text(json.dumps({"format": 2, "node_budget": 48}))  # an old file's own choice: kept
    assert load_settings(path).node_budget == 48
    path.write_text(json.dumps({"format": 2, "runner_up": True, "n_ctx": 4096}))  # format 2 chose its context
    assert (load_settings(path).runner_up, load_settings(path).n_ctx) == (True, 4096)


def test_the_old_saved_four_rows_become_the_new_default(tmp_path):
    path = tmp_path / "settings.json"
    for old in ({"k": 4}, {"format": 3, "k": 4}):  # the old default
        path.write_text(json.dumps(old))
        assert load_settings(path).k == AppSettings().k == 8
    path.write_text(json.dumps({"format": 3, "k": 6}))  # an old file's own choice: kept
    assert load_settings(path).k == 6
    save_settings(AppSettings(k=4), path)  # chosen in this version: kept
    assert load_settings(path).k == 4


def test_method_params_only_what_the_method_takes():
    assert AppSettings(method="ar").method_params() == {}
    assert AppSettings(method="lookup", gamma=5).method_params() == {"gamma": 5}
    assert AppSettings(method="d2sd", gamma=16, k=4, node_budget=80).method_params() == {
        "gamma": 16, "k": 4, "budget": 80, "alt": True}
    assert AppSettings(method="dflash", runner_up=True).method_params() == {"gamma": 16, "budget": 32}


def test_markdown_highlights_code_and_tolerates_unclosed_fences():
    html = render_markdown("Use **this**:\n\n```python\ndef f():\n    return 1\n```\n")
    assert "<strong>this</strong>" in html and "bgcolor=" in html
    assert 'style="color' in html  # Pygments inline colours
    assert "def" in render_markdown("```python\ndef half_written(")
    assert "&lt;script&gt;" in render_markdown("<script>alert(1)</script>")


def test_provenance_rendering_escapes_and_colours():
    html = render_provenance("a<b c", [[2, "lookup"], [3, "target"]])
    assert '<span style="color:#bc4c00">a&lt;</span>b c' in html


def test_settings_dialog_lists_the_engine_methods(qtbot):
    dialog = SettingsDialog(AppSettings(method="d2sd", drafter_dir="/d1"))
    qtbot.addWidget(dialog)
    items = [dialog.method.itemText(i) for i in range(dialog.method.count())]
    assert items == list(METHODS)   # whatever engine.methods registers, in its order
    assert {"auto", "d2sd", "dflash", "ddtree", "ardraft", "lookup", "ar"} <= set(items)
    assert dialog.method.currentText() == "d2sd"
    dialog.vp_drafter_dir.setText(" /vp ")
    assert dialog.runner_up.isEnabled()
    assert dialog.runner_up.isChecked()   # the default rows
    dialog.runner_up.setChecked(False)
    chosen = dialog.result_settings()
    assert (chosen.method, chosen.drafter_dir, chosen.vp_drafter_dir) == ("d2sd", "/d1", "/vp")
    assert chosen.method_params()["alt"] is False
    dialog.method.setCurrentText("dflash")
    assert not dialog.runner_up.isEnabled()


def _step(parents, accepted, emitted, verify_s=0.02):
    n = len(parents)
    tree = TreeView(list(range(n)), parents, ["target"] + ["drafter1"] * (n - 1), [1.0] * n, accepted)
    return StepStats(1, n, n - 1, len(accepted) - 1, emitted, 0.01, 0.004, verify_s, 0.01, tree)


def test_live_stats_acceptance_by_depth():
    live = LiveStats()
    # chain root-1-2-3, the target took 1 and 2 then rejected 3
    live.add(_step([-1, 0, 1, 2], [0, 1, 2], 3))
    # two branches under the root, the target took neither
    live.add(_step([-1, 0, 0], [0], 1))
    assert live.accept_tries == [2, 1, 1]
    assert live.accept_hits == [1, 1, 0]
    assert live.tau_mean == 2.0 and live.passes_saved == 2
    assert live.running_tau == [3.0, 2.0]


def test_curve_t1_follows_the_runs_verify_pace():
    curve = CostCurve({1: 0.01, 4: 0.02})
    live = LiveStats()
    # two passes of 4 nodes that took twice what the curve says: this machine is at half the curve's pace
    live.add(_step([-1, 0, 1, 2], [0, 1, 2], 3, verify_s=0.04))
    live.add(_step([-1, 0, 1, 2], [0, 1, 2, 3], 4, verify_s=0.04))
    assert t1_from_curve(live, curve) == pytest.approx(0.02)
    # 7 tokens at 0.02 s each for plain decoding, against 2 × (0.01 + 0.04 + 0.01) s
    assert speedup(live, 0.02) == pytest.approx(7 * 0.02 / 0.12)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the display check is Linux-only")
def test_no_display_exits_2_with_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    proc = subprocess.run([sys.executable, "-m", "app.main"], env=env, cwd=Path(__file__).parents[2], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "QT_QPA_PLATFORM=offscreen" in lines[0] and "d2sd chat" in lines[0]


def test_model_resolution(qtbot):
    from app.main import parse_args, resolve_model

    assert parse_args(["--model", "/m.gguf"]).model == "/m.gguf"
    assert resolve_model(AppSettings(model_path="/m.gguf")) == "/m.gguf"


@pytest.mark.qwen
def test_default_model_resolves_to_the_embedded_target(qtbot, qwen_path):
    from app.main import resolve_model

    assert resolve_model(AppSettings()) == str(qwen_path)
