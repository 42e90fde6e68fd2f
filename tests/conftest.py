import os
from pathlib import Path

import pytest

from tests.tiny_gguf import write_tiny_gguf

# GUI tests drive real widgets without a display (CI has none); a developer may still set another platform.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def _user_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("userdirs")


@pytest.fixture(autouse=True)
def _isolated_dirs(_user_root, monkeypatch):
    """Tests never touch the user's real cache or config folders; one cache per session, so the
    dequantised head of the real target is built once."""
    for var in ("D2SD_CACHE_DIR", "D2SD_CONFIG_DIR"):
        monkeypatch.setenv(var, str(_user_root / var.lower()))


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny") / "tiny.gguf")


@pytest.fixture(scope="session")
def qwen_path() -> Path:
    """The embedded default target; `make test` installs it, so in CI its absence is a failure."""
    from engine.store.embedded import DEFAULT_TARGET, is_installed

    if not is_installed(DEFAULT_TARGET):
        if os.environ.get("CI"):
            pytest.fail("the embedded Qwen target is not installed: `make test` should have assembled it")
        pytest.skip("embedded Qwen target not installed (run `d2sd models install-default`)")
    return DEFAULT_TARGET.path()


@pytest.fixture(scope="session")
def qwen_head(qwen_path, _user_root):
    """The real target's shared embedding/output head (dequantised once per session)."""
    import os

    from engine.drafters import SharedHead

    os.environ["D2SD_CACHE_DIR"] = str(_user_root / "d2sd_cache_dir")
    return SharedHead.from_gguf(qwen_path)
