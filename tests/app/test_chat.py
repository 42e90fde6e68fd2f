"""Chatting through the window on the real engine: send, stream, stop, regenerate, edit, restart."""
from __future__ import annotations

from PySide6.QtCore import Qt

from tests.app.conftest import WAIT_MS, type_and_send, wait_idle


def test_send_streams_saves_and_renders(qtbot, window, settings):
    settings.max_tokens = 1000
    renders = []
    window.session.messages_changed.connect(
        lambda: renders.append(window.session.messages[-1].content if window.session.busy else None))
    type_and_send(qtbot, window, "hello world")
    assert window.session.busy and window.prompt.toPlainText() == ""
    wait_idle(qtbot, window)

    conv = window.session.current
    assert conv.title == "hello world"
    user, answer = window.session.history.messages(conv.id)
    assert (user.role, user.content) == ("user", "hello world")
    assert answer.status == "done" and answer.content
    assert answer.stats["new_tokens"] > 0 and answer.stats["model"] == "tiny-random-llama"
    assert sum(n for n, _ in answer.provenance) == len(answer.content)
    streamed = [r for r in renders if r]
    assert len(streamed) >= 2, "the answer should appear in several renders while it streams"
    assert all(answer.content.startswith(r) for r in streamed)
    assert window.conversations.titles() == ["hello world"]
    assert "regenerate" in window.chat.toHtml()


def test_second_send_while_answering_is_refused(qtbot, window, settings):
    settings.max_tokens = 3000
    type_and_send(qtbot, window, "first")
    assert window.session.busy
    type_and_send(qtbot, window, "second")
    assert "Still answering" in window.statusBar().currentMessage()
    assert window.prompt.toPlainText() == "second"   # kept for later
    assert not window.send_button.isEnabled()
    qtbot.keyClick(window.prompt, Qt.Key_Escape)
    wait_idle(qtbot, window)
    roles = [m.role for m in window.session.history.messages(window.session.current.id)]
    assert roles == ["user", "assistant"]


def test_stop_mid_answer_keeps_partial_text(qtbot, window, settings):
    settings.max_tokens = 3000
    finished = []
    window.session.answer_finished.connect(finished.append)
    type_and_send(qtbot, window, "tell me a long story")
    qtbot.waitUntil(lambda: bool(window.session.messages[-1].content), timeout=WAIT_MS)
    qtbot.keyClick(window.prompt, Qt.Key_Escape)
    wait_idle(qtbot, window)
    [stats] = finished
    assert stats.stop_reason == "cancel" and stats.new_tokens < 3000
    answer = window.session.history.messages(window.session.current.id)[-1]
    assert answer.status == "stopped" and answer.content
    assert "stopped" in window.chat.toPlainText()


def test_regenerate_replaces_the_last_answer(qtbot, window):
    type_and_send(qtbot, window, "def f(x):")
    wait_idle(qtbot, window)
    history, conv = window.session.history, window.session.current
    first = history.messages(conv.id)[-1]
    window.chat.action.emit("regenerate", first.id)
    assert window.session.busy
    wait_idle(qtbot, window)
    msgs = history.messages(conv.id)
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert msgs[-1].id != first.id
    assert msgs[-1].content == first.content   # greedy sampling: the same answer again


def test_edit_and_resend_replaces_from_the_edited_message(qtbot, window):
    type_and_send(qtbot, window, "first question")
    wait_idle(qtbot, window)
    type_and_send(qtbot, window, "second question")
    wait_idle(qtbot, window)
    history, conv = window.session.history, window.session.current
    first_user = history.messages(conv.id)[0]
    window.chat.action.emit("edit", first_user.id)
    assert window.prompt.toPlainText() == "first question" and window.edit_banner.isVisibleTo(window)
    window.prompt.clear()
    type_and_send(qtbot, window, "better question")
    wait_idle(qtbot, window)
    msgs = history.messages(conv.id)
    assert [(m.role, m.content) for m in msgs][0] == ("user", "better question")
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert window.editing is None and not window.edit_banner.isVisibleTo(window)


def test_restart_finds_the_conversation(qtbot, open_window):
    first = open_window()
    type_and_send(qtbot, first, "remember me")
    wait_idle(qtbot, first)
    answer = first.session.messages[-1].content
    first.close()

    second = open_window()
    assert second.conversations.titles() == ["remember me"]
    item = second.conversations.list.item(0)
    second.conversations.list.itemClicked.emit(item)
    assert [m.content for m in second.session.messages] == ["remember me", answer]
    assert "remember me" in second.chat.toPlainText()
    # and the conversation goes on where it left off
    type_and_send(qtbot, second, "and again")
    wait_idle(qtbot, second)
    assert [m.role for m in second.session.messages] == ["user", "assistant", "user", "assistant"]


def test_switching_model_mid_answer_stops_cleanly(qtbot, window, settings, endless_gguf):
    settings.max_tokens = 3000
    type_and_send(qtbot, window, "long answer please")
    qtbot.waitUntil(lambda: bool(window.session.messages[-1].content), timeout=WAIT_MS)
    window.load_model(str(endless_gguf))
    assert not window.session.model_ready
    wait_idle(qtbot, window)
    qtbot.waitUntil(lambda: window.session.model_ready, timeout=WAIT_MS)
    answer = window.session.history.messages(window.session.current.id)[-1]
    assert answer.status == "stopped" and answer.content
    settings.max_tokens = 48
    type_and_send(qtbot, window, "still works")
    wait_idle(qtbot, window)
    assert window.session.messages[-1].status == "done"


def test_conversation_list_search_rename_delete(qtbot, window):
    s = window.session
    for text in ("alpha question", "beta question"):
        s.new_conversation()
        type_and_send(qtbot, window, text)
        wait_idle(qtbot, window)
    assert window.conversations.titles() == ["beta question", "alpha question"]
    window.conversations.search.setText("ALPHA")
    assert window.conversations.titles() == ["alpha question"]
    window.conversations.search.clear()
    alpha = s.history.conversations("alpha")[0]
    window.conversations.rename_requested.emit(alpha.id, "Renamed")
    assert "Renamed" in window.conversations.titles()
    window.conversations.delete_requested.emit(alpha.id)
    assert window.conversations.titles() == ["beta question"]


def test_system_prompt_and_sampling_are_per_conversation(qtbot, window):
    window.session.configure("You are terse.", {"temperature": 0.8, "top_k": 20, "top_p": 0.9,
                                                "min_p": 0.0, "seed": 7})
    type_and_send(qtbot, window, "hi")
    wait_idle(qtbot, window)
    conv = window.session.history.conversation(window.session.current.id)
    assert conv.system_prompt == "You are terse." and conv.sampling["seed"] == 7
    assert window.session.messages[-1].status == "done"
    window.session.new_conversation()
    assert window.session.current is None


def test_shift_enter_adds_a_line_and_enter_sends(qtbot, window):
    window.prompt.setFocus()
    qtbot.keyClicks(window.prompt, "line one")
    qtbot.keyClick(window.prompt, Qt.Key_Return, Qt.ShiftModifier)
    qtbot.keyClicks(window.prompt, "line two")
    assert window.prompt.toPlainText() == "line one\nline two"
    assert window.session.current is None
    qtbot.keyClick(window.prompt, Qt.Key_Return)
    wait_idle(qtbot, window)
    assert window.session.messages[0].content == "line one\nline two"


def test_bad_model_file_is_reported_and_sending_refused(qtbot, window, tmp_path):
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"nope")
    window.load_model(str(bogus))
    qtbot.waitUntil(lambda: not window.session.model_loading, timeout=WAIT_MS)
    assert "Could not load the model" in window.statusBar().currentMessage()
    assert window.model_label.text() == "No model loaded"
    type_and_send(qtbot, window, "anyone there?")
    assert "No model is loaded" in window.statusBar().currentMessage()
    assert window.session.current is None


def test_engine_failure_is_shown_and_saved(qtbot, window, settings):
    settings.method = "d2sd"   # no drafter is installed for the tiny model
    type_and_send(qtbot, window, "draft please")
    wait_idle(qtbot, window)
    answer = window.session.history.messages(window.session.current.id)[-1]
    assert answer.status == "error" and "drafter" in answer.stats["error"]
    assert "The answer failed" in window.statusBar().currentMessage()
    assert "the engine failed" in window.chat.toPlainText()
    settings.method = "ar"
    window.chat.action.emit("regenerate", answer.id)
    wait_idle(qtbot, window)
    assert window.session.messages[-1].status == "done"


def test_new_chat_button_starts_an_empty_chat_and_clears_the_statistics(qtbot, window):
    type_and_send(qtbot, window, "first chat")
    wait_idle(qtbot, window)
    assert window.stats.labels["tokens"].text() != "–" and window.tree.tree.topLevelItemCount() == 1
    qtbot.mouseClick(window.conversations.new_button, Qt.LeftButton)
    assert window.session.current is None and window.session.messages == []
    assert window.title.text() == "New chat"
    assert {k: v.text() for k, v in window.stats.labels.items()} == dict.fromkeys(window.stats.labels, "–")
    assert window.tree.tree.topLevelItemCount() == 0


def test_time_to_first_token_shows_while_the_answer_streams(qtbot, window, settings):
    settings.max_tokens = 3000
    type_and_send(qtbot, window, "a long one")
    qtbot.waitUntil(lambda: window.stats.live.steps > 0, timeout=WAIT_MS)
    window.stats.refresh()
    assert window.session.busy
    shown = window.stats.labels["ttft"].text()
    assert shown.endswith(" ms") and int(shown.removesuffix(" ms")) >= 0
    qtbot.keyClick(window.prompt, Qt.Key_Escape)
    wait_idle(qtbot, window)


def test_a_conversation_that_outgrows_the_context_leaves_out_its_oldest_turns(qtbot, open_window, settings):
    settings.n_ctx, settings.max_tokens = 512, 100
    window = open_window()
    window.session.configure("You are terse.", {})
    finished = []
    window.session.answer_finished.connect(finished.append)
    for i in range(4):
        type_and_send(qtbot, window, f"question {i} " + "word " * 40)
        wait_idle(qtbot, window)
    answers = [m for m in window.session.history.messages(window.session.current.id) if m.role == "assistant"]
    assert [a.status for a in answers] == ["done"] * 4
    assert all(run.prompt_tokens + 100 <= 512 for run in finished)
    assert answers[0].stats.get("left_out") is None
    assert answers[-1].stats["left_out"] >= 2
    assert "left out" in window.statusBar().currentMessage()
    assert "did not fit the context and were left out" in window.chat.toPlainText()
