"""What can be chosen to chat with: the targets the store installed plus the embedded default (which the
app assembles itself, outside the store's registry), and which catalog artifacts are already here."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.store.catalog import BundledSource
from engine.store.embedded import DEFAULT_DRAFT, DEFAULT_TARGET, is_installed
from engine.store.errors import NotInstalledError
from engine.store.model_store import ModelStore

EMBEDDED = "embedded"   # key kind of the embedded default; store models use ("model", id)


@dataclass(frozen=True)
class InstalledTarget:
    key: tuple[str, str]    # ("embedded", path) or ("model", store id)
    name: str
    path: Path
    size: int


def embedded_target(store: ModelStore) -> InstalledTarget | None:
    """The embedded default when it is assembled and verified; named as the catalog names it."""
    if not is_installed(DEFAULT_TARGET):
        return None
    path = DEFAULT_TARGET.path()
    name = next((a.name for a in store.catalog.artifacts.values()
                 if any(f.name == DEFAULT_TARGET.filename for f in a.files)), DEFAULT_TARGET.filename)
    return InstalledTarget((EMBEDDED, str(path)), name, path, path.stat().st_size)


def present_artifacts(store: ModelStore) -> set[str]:
    """Catalog artifact ids that are here: installed by the store, the assembled embedded default, or
    shipped in the app's assets (the built-in drafters)."""
    here = {listing.model.id for listing in store.installed() if listing.present}
    assembled = {m.filename for m in (DEFAULT_TARGET, DEFAULT_DRAFT) if is_installed(m)}
    for art in store.catalog.artifacts.values():
        if len(art.files) == 1 and art.files[0].name in assembled:
            here.add(art.id)
        elif all(isinstance(f.source, BundledSource) and (store.assets_dir / f.source.path).is_file()
                 for f in art.files):
            here.add(art.id)
    return here


def paired_drafters(store: ModelStore, model_id: str) -> tuple[str, str]:
    """Drafter 1 and VP folders for an installed target, as the settings name them: its catalog
    bundle's drafters when installed, else the first compatible drafter in the store (its VP row
    reusing it), else none ("", "")."""
    for bundle in store.catalog.bundles.values():
        if bundle.target.id == model_id:
            try:
                block = store.path_of(bundle.drafter_block.id)
                vp = store.path_of(bundle.drafter_vp.id) if bundle.drafter_vp.id != bundle.drafter_block.id else None
            except NotInstalledError:
                continue
            return str(block), str(vp or "")
    found = store.compatible_drafters(model_id)
    return (str(store.path_of(found[0])), "") if found else ("", "")
