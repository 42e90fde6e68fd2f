"""Chat history: conversations and their messages in one SQLite file under the data dir.

WAL mode with a commit per write: the GUI rewrites the streaming answer every few hundred ms, and a
killed process then loses at most the tokens after the last commit (WAL commits survive a process
crash without fsync; synchronous=NORMAL only risks the tail on power loss).
"""
from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.paths import data_dir

SCHEMA_VERSION = 1

# Message status: "done" (complete), "streaming" (being written; seen after a crash it means
# interrupted), "stopped" (the user stopped it), "error" (the engine failed mid-answer).
STATUSES = ("done", "streaming", "stopped", "error")

_SCHEMA = """
CREATE TABLE conversations (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    title         TEXT NOT NULL,
    system_prompt TEXT NOT NULL DEFAULT '',
    sampling      TEXT NOT NULL DEFAULT '{}',
    created_at    REAL NOT NULL,
    updated_at    REAL NOT NULL
);
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content         TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'done',
    stats           TEXT,
    provenance      TEXT NOT NULL DEFAULT '[]',
    created_at      REAL NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
"""


def default_history_path() -> Path:
    return data_dir() / "history.sqlite3"


@dataclass
class Conversation:
    id: int
    title: str
    system_prompt: str
    sampling: dict
    created_at: float
    updated_at: float


@dataclass
class Message:
    id: int
    conversation_id: int
    role: str
    content: str
    status: str
    stats: dict | None
    # Run-length provenance of the content: [[n_chars, source], ...] (sources from engine.events).
    provenance: list[list] = field(default_factory=list)
    created_at: float = 0.0


class History:
    """One connection, used from one thread (the GUI thread)."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path) if path else default_history_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer version (schema {version})")

    def close(self) -> None:
        self._db.close()

    # conversations

    def create_conversation(self, title: str = "New chat", system_prompt: str = "",
                            sampling: dict | None = None) -> Conversation:
        now = time.time()
        with self._db:
            cur = self._db.execute(
                "INSERT INTO conversations (title, system_prompt, sampling, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (title, system_prompt, json.dumps(sampling or {}), now, now))
        return self.conversation(cur.lastrowid)

    def conversation(self, conversation_id: int) -> Conversation:
        row = self._db.execute(
            "SELECT id, title, system_prompt, sampling, created_at, updated_at FROM conversations"
            " WHERE id = ?", (conversation_id,)).fetchone()
        if row is None:
            raise KeyError(conversation_id)
        return _conversation(row)

    def conversations(self, search: str = "") -> list[Conversation]:
        """Most recently active first; `search` matches titles and message text, case-insensitively."""
        sql = "SELECT id, title, system_prompt, sampling, created_at, updated_at FROM conversations"
        args: tuple = ()
        if search.strip():
            pattern = "%" + _escape_like(search.strip()) + "%"
            sql += (" WHERE title LIKE ? ESCAPE '\\' OR id IN (SELECT conversation_id FROM messages"
                    " WHERE content LIKE ? ESCAPE '\\')")
            args = (pattern, pattern)
        sql += " ORDER BY updated_at DESC, id DESC"
        return [_conversation(r) for r in self._db.execute(sql, args)]

    def update_conversation(self, conversation_id: int, *, title: str | None = None,
                            system_prompt: str | None = None, sampling: dict | None = None) -> None:
        sets, args = [], []
        for column, value in (("title", title), ("system_prompt", system_prompt),
                              ("sampling", None if sampling is None else json.dumps(sampling))):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        if not sets:
            return
        with self._db:
            self._db.execute(f"UPDATE conversations SET {', '.join(sets)} WHERE id = ?",
                             (*args, conversation_id))

    def delete_conversation(self, conversation_id: int) -> None:
        with self._db:
            self._db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))

    # messages

    def add_message(self, conversation_id: int, role: str, content: str, status: str = "done",
                    stats: dict | None = None) -> Message:
        _check_status(status)
        now = time.time()
        with self._db:
            cur = self._db.execute(
                "INSERT INTO messages (conversation_id, role, content, status, stats, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, status, _dump(stats), now))
            self._touch(conversation_id, now)
        return self.message(cur.lastrowid)

    def update_message(self, message_id: int, *, content: str | None = None,
                       status: str | None = None, stats: dict | None = None,
                       provenance: list[list] | None = None) -> None:
        """Each call is one commit, so a streaming answer is durable up to the last call."""
        sets, args = [], []
        if content is not None:
            sets.append("content = ?")
            args.append(content)
        if status is not None:
            _check_status(status)
            sets.append("status = ?")
            args.append(status)
        if stats is not None:
            sets.append("stats = ?")
            args.append(_dump(stats))
        if provenance is not None:
            sets.append("provenance = ?")
            args.append(json.dumps(provenance))
        if not sets:
            return
        with self._db:
            self._db.execute(f"UPDATE messages SET {', '.join(sets)} WHERE id = ?", (*args, message_id))
            self._db.execute(
                "UPDATE conversations SET updated_at = ? WHERE id = "
                "(SELECT conversation_id FROM messages WHERE id = ?)", (time.time(), message_id))

    def message(self, message_id: int) -> Message:
        row = self._db.execute(_MESSAGE_SELECT + " WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise KeyError(message_id)
        return _message(row)

    def messages(self, conversation_id: int) -> list[Message]:
        rows = self._db.execute(_MESSAGE_SELECT + " WHERE conversation_id = ? ORDER BY id",
                                (conversation_id,))
        return [_message(r) for r in rows]

    def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Drop a message and everything after it (regenerate, edit-and-resend)."""
        with self._db:
            self._db.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?",
                             (conversation_id, message_id))
            self._touch(conversation_id, time.time())

    def _touch(self, conversation_id: int, now: float) -> None:
        self._db.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))


_MESSAGE_SELECT = ("SELECT id, conversation_id, role, content, status, stats, provenance, created_at"
                   " FROM messages")


def _conversation(row) -> Conversation:
    return Conversation(id=row[0], title=row[1], system_prompt=row[2], sampling=json.loads(row[3]),
                        created_at=row[4], updated_at=row[5])


def _message(row) -> Message:
    return Message(id=row[0], conversation_id=row[1], role=row[2], content=row[3], status=row[4],
                   stats=json.loads(row[5]) if row[5] else None, provenance=json.loads(row[6]),
                   created_at=row[7])


def _dump(value: dict | None) -> str | None:
    return None if value is None else json.dumps(value)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown message status {status!r}")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
