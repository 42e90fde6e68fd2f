"""The embedded model's assembly from chunk packages (here two small packages made on the spot)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from engine.store.embedded import ChunkedModel, EmbeddedModelError, ensure, is_installed


def chunked_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChunkedModel:
    parts = [b"first chunk " * 1000, b"second chunk " * 1000]
    for i, data in enumerate(parts, 1):
        package = tmp_path / "site" / f"d2sdtestchunk{i}"
        (package / "data").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        (package / "data" / f"part{i}.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    whole = b"".join(parts)
    return ChunkedModel(filename="chunked.gguf", package_prefix="d2sdtestchunk", parts=2, size=len(whole),
                        sha256=hashlib.sha256(whole).hexdigest(), install_hint="pip install d2sdtestchunk")


def test_chunks_are_assembled_and_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = chunked_model(tmp_path, monkeypatch)
    assert ensure(model).read_bytes().startswith(b"first chunk") and is_installed(model)


def test_a_full_disk_is_one_line_naming_the_file_and_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = chunked_model(tmp_path, monkeypatch)
    partial = model.path().with_name(model.filename + ".partial")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.symlink_to("/dev/full")  # the kernel's own "no space left on device" on the first write
    with pytest.raises(EmbeddedModelError, match="disk filled up") as err:
        ensure(model)
    message = str(err.value)
    assert str(model.path()) in message and "of 0.00 GB" in message and "\n" not in message
    assert not partial.exists() and not model.path().exists() and not is_installed(model)
