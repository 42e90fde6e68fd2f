"""`d2sd models` lists what can be loaded: the embedded models, everything the store installed (from
its registry) and GGUF files left loose in the models folder."""
import shutil

from engine.store.embedded import DEFAULT_TARGET
from engine.store.model_store import ModelStore
from tests.engine.store.store_helpers import write_drafter
from tests.engine.test_cli import d2sd


def test_models_lists_the_store_the_embedded_default_and_loose_files(tmp_path, tiny_gguf, monkeypatch):
    monkeypatch.setenv("D2SD_DATA_DIR", str(tmp_path / "data"))
    models = tmp_path / "data" / "models"
    assert d2sd("models").stdout.strip() == f"no models in {models}"

    store = ModelStore(models)
    target = store.import_gguf(tiny_gguf)
    drafter = store.import_drafter(write_drafter(tmp_path / "my-drafter"))
    shutil.copy(tiny_gguf, models / DEFAULT_TARGET.filename)   # as assembled, but never verified
    shutil.copy(tiny_gguf, models / "loose.gguf")
    (store.path_of(drafter.id) / "config.json").unlink()   # removed behind the store's back

    r = d2sd("models")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 4
    size = f"{tiny_gguf.stat().st_size / 2**20:9.1f} MiB"
    assert lines[0] == (f"{size}  target   {DEFAULT_TARGET.filename}  {models / DEFAULT_TARGET.filename}  "
                        "(embedded default, not verified)")
    assert lines[1].endswith(f"  drafter  {drafter.id}  {models / drafter.id}  (files missing or changed)")
    assert lines[2] == f"{size}  target   {target.id}  {store.path_of(target.id)}"
    assert lines[3] == f"{size}  gguf     loose.gguf  {models / 'loose.gguf'}  (not in the store)"
