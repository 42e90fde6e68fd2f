"""The statistics panel and the candidate-tree view against the engine's own run statistics."""
from __future__ import annotations

from app.live_stats import LiveStats
from app.tree_view import token_label
from engine.events import LOOKUP, TARGET
from tests.app.conftest import type_and_send, wait_idle


def _run_lookup(qtbot, window, settings):
    settings.method = "lookup"
    settings.max_tokens = 200
    steps, finished = [], []
    window.session.step.connect(steps.append)
    window.session.answer_finished.connect(finished.append)
    type_and_send(qtbot, window, "the list the list the list")
    wait_idle(qtbot, window)
    return steps, finished[0]


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
    assert labels["acceptance"].startswith(f"{run.acceptance_rate:.0%}")
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


def test_speedup_estimate_uses_timed_single_token_steps(qtbot, window, settings):
    settings.max_tokens = 30
    type_and_send(qtbot, window, "warm up with ar")
    wait_idle(qtbot, window)
    assert window.stats.single_step.seconds is not None
    assert window.stats.labels["speedup"].text() == "1.00× (estimate)"
