"""The app drives the engine as the terminal chat does: one ready method per loaded model, kept across
answers (a follow-up turn reads only its new tokens, the drafters load once), `auto` by default, and
auto's verify-cost measurement shown as a step with its time, re-run from Settings."""
from __future__ import annotations

from PySide6.QtCore import QTimer

import engine.drafters.pair as pair
from app.settings import AppSettings
from app.settings_dialog import SettingsDialog
from engine.context_size import default_context
from tests.app.conftest import WAIT_MS, type_and_send, wait_idle


def test_a_follow_up_turn_reads_only_its_new_tokens_and_the_drafters_load_once(qtbot, window, settings,
                                                                               tiny_drafters, monkeypatch):
    loads = []
    real = pair.load_pair
    monkeypatch.setattr(pair, "load_pair", lambda *args: loads.append(args) or real(*args))
    settings.method, settings.gamma, settings.k, settings.max_tokens = "d2sd", 4, 2, 12
    settings.drafter_dir, settings.vp_drafter_dir = map(str, tiny_drafters)
    runs = []
    window.session.answer_finished.connect(runs.append)
    type_and_send(qtbot, window, "hello there")
    wait_idle(qtbot, window, 4 * WAIT_MS)
    type_and_send(qtbot, window, "and more")
    wait_idle(qtbot, window, 4 * WAIT_MS)

    first, second = runs
    assert (first.method, second.method) == ("d2sd", "d2sd") and second.stop_reason == "length"
    assert len(loads) == 1
    # the second prompt repeats the first turn (prompt and answer) before its new tokens: all but
    # those new tokens come from the cache (the first answer's last token was never decoded)
    assert second.reused_tokens >= first.prompt_tokens + first.new_tokens - 2
    assert second.prompt_tokens - second.reused_tokens < second.prompt_tokens - first.prompt_tokens


def test_auto_is_the_default_method():
    assert AppSettings().method == "auto"
    assert AppSettings().method_params() == {}


def test_auto_shows_its_first_measurement_and_settings_measures_again(qtbot, window, settings, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))   # no curve cached for this model yet
    settings.method, settings.max_tokens = "auto", 8
    seen = []
    window.session.measuring_changed.connect(
        lambda on: seen.append((on, window.measure_label.isVisibleTo(window), window.measure_label.text())))
    decoding = []
    window.session.decoding_started.connect(lambda: decoding.append(len(seen)))
    type_and_send(qtbot, window, "the list the list")
    wait_idle(qtbot, window)
    assert seen[0] == (True, True, "Measuring this machine's verify cost… 0 s")
    assert seen[1][:2] == (False, False)
    # the panel's time to first token starts after the measurement, as the engine's does
    assert decoding == [2]
    assert window.stats.curve is not None
    first_curve = window.stats.curve

    seen.clear()

    def remeasure_and_close():
        dialog = window.findChild(SettingsDialog)
        dialog.remeasure.click()
        assert not dialog.remeasure.isEnabled()
        dialog.reject()

    QTimer.singleShot(0, remeasure_and_close)
    window.edit_settings()
    qtbot.waitUntil(lambda: len(seen) >= 2, timeout=WAIT_MS)
    assert [on for on, *_ in seen] == [True, False]
    # the new curve reaches the panel by its own signal, which may come after the measuring one
    qtbot.waitUntil(lambda: window.stats.curve is not None and window.stats.curve is not first_curve,
                    timeout=WAIT_MS)


def test_the_default_context_is_the_models_own_capped_by_free_memory(qtbot, open_window, settings, endless_gguf):
    assert AppSettings().n_ctx == 0   # "from the model"
    settings.n_ctx = 0
    window = open_window()
    assert window.session.model_n_ctx == default_context(endless_gguf) <= 2048   # the tiny model's own
    assert f"Context: {window.session.model_n_ctx} tokens (the model's own" in window.model_label.toolTip()
    dialog = SettingsDialog(window.settings, window)
    assert dialog.n_ctx.text() == "from the model" and dialog.result_settings().n_ctx == 0
