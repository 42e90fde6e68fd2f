"""Chat history files damaged the ways a disk, a crash or a user damages them, for the history's and the
app's start tests."""
from __future__ import annotations

from pathlib import Path

from engine.store.history import History

KINDS = ("not_a_database", "truncated", "unopenable")


def write_history(path: Path, n_messages: int = 200) -> None:
    """A real history of several pages (each message ~1 kB), closed cleanly."""
    h = History(path)
    c = h.create_conversation("kept")
    for i in range(n_messages):
        h.add_message(c.id, "user", f"message {i} " + "x" * 1000)
    h.close()


def damage(path: Path, kind: str) -> None:
    """`not_a_database`: text where the database was. `truncated`: a real history cut at half its size.
    `unopenable`: a folder in the file's place (sqlite cannot open it, whoever runs the test)."""
    if kind == "not_a_database":
        path.write_text("these are my notes, not a database\n" * 20)
    elif kind == "truncated":
        write_history(path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "unopenable":
        path.mkdir()
        (path / "inside.txt").write_text("kept")
    else:
        raise ValueError(kind)


def contents(path: Path) -> bytes | dict[str, bytes]:
    """What a damaged history holds, to show it was kept as it was: the file's bytes, or each file in the
    folder that stood in its place."""
    if path.is_dir():
        return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}
    return path.read_bytes()
