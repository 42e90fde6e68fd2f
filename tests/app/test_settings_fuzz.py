"""Fuzzing the settings file: any bytes, any JSON, or the real document with fields replaced by any JSON.
load_settings never raises (a corrupt file falls back to defaults) and every field keeps its type."""
import dataclasses
import json

import pytest
from hypothesis import given, strategies as st

from app.settings import AppSettings, load_settings, save_settings
from tests.fuzzing import COUNTS, fuzz_settings, json_values

N = 1500
JSON = json_values()
FIELDS = [f.name for f in dataclasses.fields(AppSettings)]


@st.composite
def documents(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "fields"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(JSON)).encode()
    doc = dataclasses.asdict(AppSettings())
    for _ in range(draw(st.integers(1, 4))):
        doc[draw(st.sampled_from(FIELDS + ["unknown_key"]))] = draw(JSON)
    return json.dumps(doc).encode()


@pytest.mark.timeout(300)
def test_any_settings_file_loads_with_every_field_of_its_type(tmp_path):
    path = tmp_path / "settings.json"
    defaults = AppSettings()

    @fuzz_settings(N)
    @given(documents())
    def check(content):
        COUNTS["settings"] += 1
        path.write_bytes(content)
        settings = load_settings(path)
        for f in dataclasses.fields(AppSettings):
            assert type(getattr(settings, f.name)) is type(getattr(defaults, f.name))
        save_settings(settings, path)  # what the app writes back reads back the same
        assert load_settings(path) == settings

    check()
    assert COUNTS["settings"] >= N
