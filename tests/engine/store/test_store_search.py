"""Hub search for GGUF repositories, grouped quantizations, memory fit, hostile listings, installs."""

from __future__ import annotations

import os

import pytest
from fake_hub import FakeHub
from store_helpers import drafter_files, tiny_catalog

from engine.store.errors import InvalidModelError
from engine.store.model_store import ModelStore
from engine.store.search import fits_memory, list_gguf_quants, search_gguf, total_memory

GB = 10**9


def test_search_lists_gguf_repos_with_quants_marked_by_memory_fit(hub: FakeHub) -> None:
    hub.add_file("org/Small-GGUF", "small-Q4_K_M.gguf", b"s" * 3000)
    hub.add_file("org/Small-GGUF", "small-Q8_0.gguf", b"s" * 6000)
    hub.add_file("org/Small-GGUF", "README.md", b"hello")
    hub.add_file("org/Big-GGUF", "BF16/big-BF16-00001-of-00002.gguf", b"b" * 4000)
    hub.add_file("org/Big-GGUF", "BF16/big-BF16-00002-of-00002.gguf", b"b" * 3000)
    hub.add_file("org/small-safetensors", "model.safetensors", b"x" * 2000)

    memory = 600 << 20  # room for 512 MiB of overhead plus 1.2x these few-KB files
    result = search_gguf("", endpoint=hub.endpoint, app_offline=False, memory_bytes=memory)

    assert [r.repo for r in result.repos] == ["org/Big-GGUF", "org/Small-GGUF"] and not result.refused
    big = result.repos[0].quants
    assert len(big) == 1 and big[0].label == "BF16" and big[0].size == 7000
    assert big[0].files == ("BF16/big-BF16-00001-of-00002.gguf", "BF16/big-BF16-00002-of-00002.gguf")
    small = {q.label: q for q in result.repos[1].quants}
    assert set(small) == {"Q4_K_M", "Q8_0"} and small["Q8_0"].sha256 is not None
    assert all(q.fits for q in small.values())

    tight = list_gguf_quants("org/Small-GGUF", endpoint=hub.endpoint, app_offline=False, memory_bytes=512 << 20)
    assert not any(q.fits for q in tight.quants)


def test_repo_with_a_hostile_file_name_is_refused(hub: FakeHub) -> None:
    hub.add_file("org/Evil-GGUF", "../../../etc/evil-Q4_0.gguf", b"e" * 2000)
    hub.add_file("org/Good-GGUF", "good-Q4_0.gguf", b"g" * 2000)

    result = search_gguf("gguf", endpoint=hub.endpoint, app_offline=False, memory_bytes=8 * GB)

    assert [r.repo for r in result.repos] == ["org/Good-GGUF"]
    assert len(result.refused) == 1 and "org/Evil-GGUF" in result.refused[0] and "'..'" in result.refused[0]


def test_memory_fit_rule_and_total_memory() -> None:
    assert (total_memory() or 0) > 0  # Linux CI; None is allowed only where sysconf lacks it
    assert fits_memory(1 * GB, 2 * GB) and not fits_memory(2 * GB, 2 * GB)


def test_a_search_result_installs_split_files_side_by_side(hub: FakeHub, data_dir) -> None:
    shards = [os.urandom(3000), os.urandom(2000)]
    for i, data in enumerate(shards, start=1):
        hub.add_file("org/Split-GGUF", f"Q4_K_M/split-Q4_K_M-0000{i}-of-00002.gguf", data)
    (quant,) = list_gguf_quants("org/Split-GGUF", endpoint=hub.endpoint, app_offline=False).quants
    store = ModelStore(endpoint=hub.endpoint, catalog=tiny_catalog())

    model = store.install_hf_gguf("org/Split-GGUF", quant.files)

    first = store.path_of(model.id)
    assert first.name == "split-Q4_K_M-00001-of-00002.gguf" and first.read_bytes() == shards[0]
    assert (first.parent / "split-Q4_K_M-00002-of-00002.gguf").read_bytes() == shards[1]
    assert model.size == 5000 and model.source["repo"] == "org/Split-GGUF"


def test_a_hub_drafter_without_safetensors_weights_is_removed(hub: FakeHub) -> None:
    files = drafter_files()
    hub.add_file("org/pickled-drafter", "config.json", files["config.json"])
    hub.add_file("org/pickled-drafter", "model.safetensors", b"\x80\x04\x95" + bytes(2000))
    store = ModelStore(endpoint=hub.endpoint, catalog=tiny_catalog())

    with pytest.raises(InvalidModelError, match="safetensors"):
        store.install_hf_drafter("org/pickled-drafter")
    assert store.installed() == [] and not any(store.root.iterdir())
