"""Chat history: conversations and their messages in one SQLite file under the data dir.

WAL mode with a commit per write: the GUI rewrites the streaming answer every few hundred ms, and a
killed process then loses at most the tokens after the last commit (WAL commits survive a process
crash without fsync; synchronous=NORMAL only risks the tail on power loss).
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.paths import data_dir
from engine.store.safe_names import aside_path

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


class HistoryUnreadable(Exception):
    """The history file cannot be opened or is damaged; the message names the file."""


class HistoryTooNew(HistoryUnreadable):
    """A newer version of the app wrote the file: intact, only not for this version."""


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
        """Raises HistoryUnreadable for a file that is not a history database, is damaged, or cannot be
        opened (`open_history` moves such a file aside)."""
        self.path = Path(path) if path else default_history_path()
        try:
            if self.path != Path(":memory:"):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                _check_file(self.path)
            self._db = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as e:
            raise HistoryUnreadable(f"the chat history {self.path} cannot be opened ({_reason(e)})") from None
        try:
            self._open()
        except sqlite3.Error as e:
            self._db.close()
            raise HistoryUnreadable(f"the chat history {self.path} is damaged or unreadable ({_reason(e)})") from None
        except HistoryUnreadable:
            self._db.close()
            raise

    def _open(self) -> None:
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            if self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
                raise HistoryUnreadable(f"{self.path} is an SQLite database but not a chat history")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        elif version > SCHEMA_VERSION:
            raise HistoryTooNew(f"the chat history {self.path} was written by a newer version of the app "
                                f"(schema {version})")

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


def _check_file(path: Path) -> None:
    """A truncated or overwritten file often opens and fails only on the first page a query touches, so
    every page is read once now (milliseconds for a chat history). The connection is immutable: it never
    writes, locks or checkpoints, so a damaged file and its WAL are moved aside exactly as they were."""
    if not path.exists():
        return
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?immutable=1", uri=True)
        try:
            problem = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as e:
        raise HistoryUnreadable(f"the chat history {path} is damaged or unreadable ({_reason(e)})") from None
    if problem != "ok":
        raise HistoryUnreadable(f"the chat history {path} is damaged ({problem})")


def open_history(path: Path | str | None = None) -> tuple[History, str | None]:
    """The history at `path` (default: the data dir's), and None; or, when that file is damaged or cannot
    be opened, an empty history and one sentence for the user. The damaged file (and its -wal/-shm
    companions) is moved aside to `<name>.broken-<time>` so nothing in it is lost; where even that fails,
    the history lives in memory for this session and the sentence says so."""
    path = Path(path) if path else default_history_path()
    try:
        return History(path), None
    except HistoryTooNew as e:  # intact: the newer version that wrote it must find it where it was
        return History(":memory:"), (f"{_capital(str(e))}; it was left as it is and this session's chats are "
                                     f"kept in memory only.")
    except HistoryUnreadable as e:
        problem = str(e)
    aside = aside_path(path)
    try:
        os.replace(path, aside)
        for suffix in ("-wal", "-shm"):
            companion = path.with_name(path.name + suffix)
            if companion.exists():
                os.replace(companion, aside.with_name(aside.name + suffix))
        return History(path), f"{_capital(problem)}. It was moved to {aside} and a new, empty history started."
    except (OSError, HistoryUnreadable) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        return (History(":memory:"),
                f"{_capital(problem)}, and it could not be replaced ({reason}). It was left as it is; "
                f"this session's chats are kept in memory only and are lost when the app closes.")


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _reason(e: Exception) -> str:
    return str(e) or type(e).__name__


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
