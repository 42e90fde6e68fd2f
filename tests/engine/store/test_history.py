"""Chat history on a real SQLite file."""
import sqlite3
import subprocess
import sys

import pytest

from engine.store.history import History


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
