import os
import shutil
from pathlib import Path

import pytest
from gguf import GGUFReader

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


@pytest.fixture(scope="session")
def endless_gguf(tiny_gguf, tmp_path_factory):
    """The tiny model with zeroed output rows for its control tokens, so it never ends an answer on its
    own: streaming, stop and crash tests need answers that run until they are stopped."""
    path = tmp_path_factory.mktemp("endless") / "endless.gguf"
    shutil.copy(tiny_gguf, path)
    reader = GGUFReader(path, "r+")
    output = next(t for t in reader.tensors if t.name == "output.weight")
    output.data[:5] = 0   # ids 0-4: <unk> <s> </s> <|im_start|> <|im_end|>; other logits are mostly > 0
    output.data.flush()
    del reader
    return path


@pytest.fixture
def tiny_drafters(endless_gguf, tmp_path):
    """Folders of two untrained drafters (drafter 1, VP) for the tiny model, as the settings name them.
    Function-scoped so the shared head is cached in the test's isolated cache folder, not the user's."""
    import torch

    from engine.drafters import Drafter, DrafterConfig, SharedHead

    head = SharedHead.from_gguf(endless_gguf)
    config = DrafterConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=head.info.n_vocab, block_size=8,
                           mask_token_id=head.info.n_vocab - 1, target_layer_ids=(0, 1), num_target_layers=3)
    folders = []
    for seed, name in ((1, "block"), (2, "vp")):
        folder = tmp_path / "drafters" / name
        Drafter.random(config, head, seed=seed, std=0.2).save(folder)
        folders.append(folder)
    # Drafters this small gain nothing from torch's worker threads, and on a busy machine their waiting
    # slows each pass down many times over (24 tokens beside a busy job: 9 s with one thread, 140 s without).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tuple(folders)
    torch.set_num_threads(threads)
