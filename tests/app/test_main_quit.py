"""Quitting the real app after the Models window was opened ends the process cleanly (a report had Qt
warn "shared QObject was deleted directly" and the process die of a segmentation fault there)."""
import os
import subprocess
import sys
from pathlib import Path


def test_quitting_after_the_models_window_was_opened_exits_cleanly(tiny_gguf, tmp_path):
    env = {**os.environ, "D2SD_DATA_DIR": str(tmp_path / "data"), "QT_QPA_PLATFORM": "offscreen"}
    child = Path(__file__).with_name("quit_child.py")
    r = subprocess.run([sys.executable, str(child), str(tiny_gguf)], capture_output=True, text=True, env=env,
                       timeout=120, cwd=Path(__file__).parents[2])
    assert r.returncode == 0, r.stderr
    assert "QObject" not in r.stderr and "QThread" not in r.stderr, r.stderr
