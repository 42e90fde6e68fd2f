import os
from pathlib import Path

import pytest

from tests.tiny_gguf import write_tiny_gguf


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Tests never touch the user's real data, cache or config folders (the embedded model excepted)."""
    root = tmp_path_factory.mktemp("userdirs")
    for var in ("D2SD_CACHE_DIR", "D2SD_CONFIG_DIR"):
        monkeypatch.setenv(var, str(root / var.lower()))


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
