"""The statistics panel and the candidate-tree view against the engine's own run statistics."""
from __future__ import annotations

import re

import pytest

from app.live_stats import LiveStats, t1_from_curve
from app.tree_view import token_label
from engine.calibrate import calibrate
from engine.events import LOOKUP, TARGET, VP
from engine.target import Target, TargetSettings
from tests.app.conftest import WAIT_MS, type_and_send, wait_idle


def _run(qtbot, window, text="the list the list the list", timeout_ms=WAIT_MS):
    steps, finished = [], []
    window.session.step.connect(steps.append)
    window.session.answer_finished.connect(finished.append)
    type_and_send(qtbot, window, text)
    wait_idle(qtbot, window, timeout_ms)
    return steps, finished[0]


def _run_lookup(qtbot, window, settings):
    settings.method = "lookup"
    settings.max_tokens = 200
    return _run(qtbot, window)


def _shown_seconds(split: str) -> list[tuple[float, float]]:
    """The panel's time split read back: (seconds, display resolution) per part."""
    return [(float(v) / 1000, 5e-5) if unit == "ms" else (float(v), 5e-3)
            for v, unit in re.findall(r"([\d.]+) (ms|s) \(\d+%\)", split)]


def test_stats_panel_matches_run_stats(qtbot, window, settings):
    steps, run = _run_lookup(qtbot, window, settings)
    live: LiveStats = window.stats.live
    # the live per-step sums agree with the engine's totals
    assert live.steps == run.target_passes == len(steps)
    assert live.emitted == run.new_tokens
    assert (live.proposed, live.accepted) == (run.proposed, run.accepted)
    assert (live.accept_tries, live.accept_hits) == (run.accept_tries, run.accept_hits)
    assert run.accepted > 0, "a greedy random model repeats itself, so lookup drafts get accepted"

    labels = {k: v.text() for k, v in window.stats.labels.items()}
    assert labels["tau"].endswith(f"/ {run.tau:.2f}")
    assert labels["tokens_per_s"].endswith(f"/ {run.tokens_per_s:.1f}")
    assert labels["passes"] == str(run.target_passes)
    assert labels["tokens"] == str(run.new_tokens)
    assert labels["passes_saved"] == str(run.new_tokens - run.target_passes)
    assert labels["acceptance"] == (f"{run.acceptance_rate:.0%} ({sum(run.accept_hits)} of "
                                    f"{sum(run.accept_tries)} on the path)")
    assert "estimate" in labels["speedup"]
    heights = list(window.stats.accept_bars.opts["height"])
    assert heights == [h / t for h, t in zip(run.accept_hits, run.accept_tries)]

    saved = window.session.messages[-1].stats
    assert saved["tau"] == run.tau and saved["accept_tries"] == run.accept_tries


def test_tree_view_shows_the_accepted_path(qtbot, window, settings):
    steps, _run = _run_lookup(qtbot, window, settings)
    # the view keeps the latest step that proposed drafts
    last = next(s for s in reversed(steps) if s.stats.proposed > 0)
    tree = last.stats.tree
    assert window.tree.accepted_path() == [token_label(last.node_texts[n]) for n in tree.accepted]
    assert window.tree.tree.topLevelItem(0).text(1) == "anchor"
    assert f"{last.stats.accepted} of {last.stats.proposed} drafts accepted" in window.tree.summary.text()
    assert window.tree.tree.topLevelItem(0).childCount() >= 1

    with_hits = next(s for s in reversed(steps) if s.stats.accepted > 0)
    window.tree.begin()
    window.tree.show_step(with_hits)
    window.tree.flush()
    assert len(window.tree.accepted_path()) == 1 + with_hits.stats.accepted


def test_provenance_colouring(qtbot, window, settings):
    _steps, run = _run_lookup(qtbot, window, settings)
    answer = window.session.messages[-1]
    sources = {s for _, s in answer.provenance}
    assert sources <= {LOOKUP, TARGET} and LOOKUP in sources
    window.provenance_action.trigger()
    assert window.settings.show_provenance and window.legend.isVisibleTo(window)
    assert "#bc4c00" in window.chat.toHtml().lower()
    window.provenance_action.trigger()
    assert not window.settings.show_provenance


def test_time_split_draft1_vp_verify_other_matches_run_stats(qtbot, window, settings, tiny_drafters):
    settings.method, settings.gamma, settings.k, settings.max_tokens = "d2sd", 8, 3, 24
    settings.drafter_dir, settings.vp_drafter_dir = map(str, tiny_drafters)
    steps, run = _run(qtbot, window, timeout_ms=4 * WAIT_MS)   # the worker loads both drafters first
    assert any(VP in view.stats.tree.sources for view in steps), "d2sd merged VP rows into its tries"
    assert 0 < run.vp_s < run.draft_s

    live: LiveStats = window.stats.live
    assert (live.draft_s, live.vp_s, live.verify_s, live.other_s) == pytest.approx(
        (run.draft_s, run.vp_s, run.verify_s, run.other_s))
    split = window.stats.labels["time_split"].text()
    shown = _shown_seconds(split)
    engine = [run.draft_s - run.vp_s, run.vp_s, run.verify_s, run.other_s]   # draft-1 / VP / verify / other
    assert len(shown) == 4
    for (seconds, resolution), expected in zip(shown, engine):
        assert seconds == pytest.approx(expected, abs=resolution)
    assert sum(s for s, _ in shown) == pytest.approx(run.draft_s + run.verify_s + run.other_s,
                                                     abs=sum(r for _, r in shown))

    # a tree leads with what the drafters bought, each figure defined in a tooltip
    form = window.stats.layout().itemAt(0).layout()
    titles = [form.itemAt(row, form.ItemRole.LabelRole).widget().text() for row in range(3)]
    assert titles == ["τ tokens per pass (last / mean)", "Target passes saved", "Acceptance on the accepted path"]
    assert all(label.toolTip() and "\n" not in label.toolTip() for label in window.stats.labels.values())
    assert run.acceptance_rate == sum(run.accept_hits) / sum(run.accept_tries)
    assert window.stats.labels["acceptance"].text().startswith(f"{run.acceptance_rate:.0%} (")

    saved = window.session.messages[-1].stats
    assert saved["vp_s"] == run.vp_s
    window.stats.show_saved(saved)
    assert window.stats.labels["time_split"].text() == split


def test_speedup_is_an_estimate_from_the_calibrated_cost_curve(qtbot, open_window, settings, endless_gguf,
                                                              tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))   # this test's curve, no other test's
    with Target.load(endless_gguf, TargetSettings(n_ctx=512, n_threads=settings.n_threads,
                                                  n_gpu_layers=settings.n_gpu_layers)) as target:
        curve = calibrate(target, repeats=1)
    window = open_window()
    assert window.stats.curve == curve

    _run_lookup(qtbot, window, settings)
    live = window.stats.live
    expected = live.emitted * t1_from_curve(live, curve) / live.step_s
    assert window.stats.labels["speedup"].text() == f"{expected:.2f}× (estimate from the calibrated cost curve)"

    settings.method, settings.max_tokens = "ar", 30
    _run(qtbot, window, "now measure ar")
    assert window.stats.labels["speedup"].text() == "1.00× (measured against this session's ar)"


def test_speedup_without_a_curve_estimates_from_one_token_steps(qtbot, window, settings):
    _run_lookup(qtbot, window, settings)
    assert window.stats.curve is None
    assert window.stats.one_token_step.count > 0, "lookup found nothing to draft on some steps"
    assert window.stats.labels["speedup"].text().endswith("× (estimate from one-token steps)")
