"""kill -9 during streaming loses nothing that was already on screen."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from engine.store.history import History

CHILD = Path(__file__).with_name("stream_child.py")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_kill_9_mid_answer_keeps_everything_shown(tmp_path, endless_gguf):
    db = tmp_path / "history.sqlite3"
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    shown = []
    with subprocess.Popen([sys.executable, str(CHILD), str(db), str(endless_gguf)], env=env,
                          cwd=Path(__file__).parents[2], stdout=subprocess.PIPE, text=True) as proc:
        try:
            for line in proc.stdout:
                shown.append(json.loads(line))
                if len(shown) == 3:
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            proc.kill()
            proc.wait(timeout=30)
    assert len(shown) == 3, "the child should render the streaming answer several times"
    assert proc.returncode == -signal.SIGKILL

    history = History(db)
    [conv] = history.conversations()
    user, answer = history.messages(conv.id)
    assert user.content == "tell me everything"
    last_shown = shown[-1]
    assert answer.id == last_shown["id"]
    assert answer.status == "streaming"              # shown as interrupted on the next start
    assert answer.content.startswith(last_shown["shown"])
    history.close()
