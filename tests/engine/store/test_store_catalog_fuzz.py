"""Fuzzing the catalog loader with the shipped catalog mutated: its bytes (truncation, stray bytes,
non-UTF-8) or its JSON (any value replaced by any JSON). Every input ends in a StoreError (CatalogError,
or UnsafeFilenameError for a name that would escape its folder) or a catalog, within 2 s."""
import json

import pytest
from hypothesis import given, strategies as st

from engine.store.catalog import Catalog, default_catalog_path, load_catalog
from engine.store.errors import StoreError
from tests.fuzzing import COUNTS, fuzz_settings, json_values

N = 1500
JSON = json_values("../../etc/passwd", "/abs.gguf", "a/../../b", "org/repo", "pypi", "hf", "bundled")


def paths(doc, prefix=()):
    """Every place in the document a value can be replaced: (container path, key or index)."""
    if isinstance(doc, dict):
        items = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return []
    out = []
    for k, v in items:
        out.append(prefix + (k,))
        out.extend(paths(v, prefix + (k,)))
    return out


@st.composite
def catalogs(draw, raw: bytes) -> bytes:
    if draw(st.booleans()):
        out = bytearray(raw)
        for _ in range(draw(st.integers(1, 3))):
            pos = draw(st.integers(0, len(out)))
            if draw(st.booleans()):
                del out[pos:]
            else:
                out[pos:pos + 1] = draw(st.binary(min_size=1, max_size=3))
        return bytes(out)
    doc = json.loads(raw)
    for _ in range(draw(st.integers(1, 3))):
        *parents, last = draw(st.sampled_from(paths(doc)))
        node = doc
        for k in parents:
            node = node[k]
        node[last] = draw(JSON)
        if not paths(doc):
            break
    return json.dumps(doc).encode()


@pytest.mark.timeout(300)
def test_mutated_catalogs_end_in_a_store_error_or_a_catalog(tmp_path):
    raw = default_catalog_path().read_bytes()
    path = tmp_path / "catalog.json"

    @fuzz_settings(N)
    @given(catalogs(raw))
    def check(content):
        COUNTS["catalog"] += 1
        path.write_bytes(content)
        try:
            catalog = load_catalog(path)
        except StoreError as e:
            assert str(e) and "\n" not in str(e)
            return
        assert isinstance(catalog, Catalog) and catalog.default_bundle() is not None

    check()
    assert COUNTS["catalog"] >= N
