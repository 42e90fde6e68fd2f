"""Chat history on a real SQLite file."""
import sqlite3
import subprocess
import sys

import pytest

from engine.store.history import History, HistoryUnreadable, open_history
from tests.damaged_history import KINDS, contents, damage


@pytest.fixture
def history(tmp_path):
    h = History(tmp_path / "history.sqlite3")
    yield h
    h.close()


def test_wal_mode_and_schema(history):
    db = sqlite3.connect(history.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    db.close()


def test_conversation_roundtrip_and_reopen(tmp_path):
    path = tmp_path / "h.sqlite3"
    h = History(path)
    c = h.create_conversation("Sorting", system_prompt="Be terse.", sampling={"temperature": 0.7})
    u = h.add_message(c.id, "user", "sort a list in python")
    a = h.add_message(c.id, "assistant", "", status="streaming")
    h.update_message(a.id, content="Use `sorted(xs)`.", status="done",
                     stats={"tau": 2.5}, provenance=[[4, "target"], [13, "drafter1"]])
    h.close()

    h = History(path)
    [c2] = h.conversations()
    assert (c2.title, c2.system_prompt, c2.sampling) == ("Sorting", "Be terse.", {"temperature": 0.7})
    msgs = h.messages(c.id)
    assert [m.id for m in msgs] == [u.id, a.id]
    assert msgs[1].content == "Use `sorted(xs)`."
    assert msgs[1].status == "done"
    assert msgs[1].stats == {"tau": 2.5}
    assert msgs[1].provenance == [[4, "target"], [13, "drafter1"]]
    h.close()


def test_rename_search_delete(history):
    a = history.create_conversation("Rust lifetimes")
    b = history.create_conversation("Dinner")
    history.add_message(b.id, "user", "A recipe with 100% saffron_rice?")
    history.update_conversation(a.id, title="Borrow checker")

    assert [c.title for c in history.conversations("borrow")] == ["Borrow checker"]
    assert [c.id for c in history.conversations("SAFFRON")] == [b.id]
    # LIKE wildcards in the query are literal
    assert [c.id for c in history.conversations("100%")] == [b.id]
    assert history.conversations("_rice") and not history.conversations("x_rice")
    assert len(history.conversations("")) == 2

    history.delete_conversation(b.id)
    assert [c.id for c in history.conversations()] == [a.id]
    assert history.messages(b.id) == []  # cascaded


def test_most_recent_activity_first(history):
    a = history.create_conversation("a")
    b = history.create_conversation("b")
    assert [c.id for c in history.conversations()] == [b.id, a.id]
    history.add_message(a.id, "user", "hi")
    assert [c.id for c in history.conversations()] == [a.id, b.id]


def test_delete_messages_from(history):
    c = history.create_conversation()
    m1 = history.add_message(c.id, "user", "one")
    history.add_message(c.id, "assistant", "two")
    m3 = history.add_message(c.id, "user", "three")
    history.add_message(c.id, "assistant", "four")
    history.delete_messages_from(c.id, m3.id)
    assert [m.content for m in history.messages(c.id)] == ["one", "two"]
    history.delete_messages_from(c.id, m1.id)
    assert history.messages(c.id) == []


def test_rejects_unknown_status_and_missing_rows(history):
    c = history.create_conversation()
    with pytest.raises(ValueError):
        history.add_message(c.id, "user", "x", status="bogus")
    with pytest.raises(KeyError):
        history.conversation(999)
    with pytest.raises(sqlite3.IntegrityError):
        history.add_message(c.id, "system", "roles are user/assistant only")


def test_committed_update_survives_kill(tmp_path):
    """A process killed right after update_message() keeps the update (no clean close)."""
    path = tmp_path / "h.sqlite3"
    code = (
        "import os, signal\n"
        "from engine.store.history import History\n"
        f"h = History({str(path)!r})\n"
        "c = h.create_conversation('t')\n"
        "m = h.add_message(c.id, 'assistant', '', status='streaming')\n"
        "h.update_message(m.id, content='partial answer')\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -9
    h = History(path)
    [c] = h.conversations()
    [m] = h.messages(c.id)
    assert (m.content, m.status) == ("partial answer", "streaming")
    h.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_history_is_moved_aside_and_a_new_one_started(tmp_path, kind):
    path = tmp_path / "history.sqlite3"
    damage(path, kind)
    before = contents(path)
    with pytest.raises(HistoryUnreadable, match="history.sqlite3"):
        History(path)
    h, problem = open_history(path)
    [aside] = tmp_path.glob("history.sqlite3.broken-*")
    assert str(path) in problem and str(aside) in problem and "\n" not in problem
    assert contents(aside) == before
    assert h.conversations() == []
    h.create_conversation("new")
    h.close()
    assert [c.title for c in History(path).conversations()] == ["new"]


def test_moving_aside_takes_the_wal_along(tmp_path):
    path = tmp_path / "history.sqlite3"
    path.write_text("not a database")
    path.with_name("history.sqlite3-wal").write_text("wal bytes")
    h, _ = open_history(path)
    h.close()
    [aside] = tmp_path.glob("history.sqlite3.broken-*[0-9]")
    assert aside.with_name(aside.name + "-wal").read_text() == "wal bytes"


def test_two_damaged_histories_within_a_second_both_stay(tmp_path):
    path = tmp_path / "history.sqlite3"
    for text in ("first damage", "second damage"):
        path.write_text(text)
        path.with_name("history.sqlite3-wal").unlink(missing_ok=True)
        h, _ = open_history(path)
        h.close()
        path.unlink()
    kept = sorted(p.read_text() for p in tmp_path.glob("history.sqlite3.broken-*") if not p.name.endswith(("-wal", "-shm")))
    assert kept == ["first damage", "second damage"]


def test_a_history_that_cannot_be_moved_aside_lives_in_memory(tmp_path):
    # the history's folder cannot be created (a file holds its name), so nothing can be moved either
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where a folder should be")
    h, problem = open_history(blocked / "history.sqlite3")
    assert "memory only" in problem and str(blocked / "history.sqlite3") in problem
    h.create_conversation("this session")
    assert len(h.conversations()) == 1
    h.close()


def test_a_newer_schema_is_left_in_place(tmp_path):
    path = tmp_path / "history.sqlite3"
    History(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=7")
    db.close()
    h, problem = open_history(path)
    assert "newer version" in problem and "memory only" in problem
    h.close()
    assert not list(tmp_path.glob("*.broken-*"))
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 7
    db.close()


def test_another_sqlite_database_is_not_taken_for_a_history(tmp_path):
    path = tmp_path / "history.sqlite3"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE accounts (id INTEGER)")
    db.close()
    with pytest.raises(HistoryUnreadable, match="not a chat history"):
        History(path)
