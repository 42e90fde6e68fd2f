"""ModelStore: the one object the GUI and CLI use to install, import, list, check and delete models.

All state is explicit: the models folder, the Hub endpoint, the offline switch, the catalog and the
free-space probe are given to the constructor (defaults: the user data dir, $HF_ENDPOINT, off, the
shipped catalog, the real disk). Installed models and their files are recorded in registry.json, so
listing and loading never touch the network; only install and search do, and only when online.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.paths import models_dir
from engine.store import compat, installers
from engine.store.catalog import DRAFTER_FILES, DRAFTER_OPTIONAL, Artifact, BundledSource, Catalog, HfSource, PypiSource, load_catalog
from engine.store.download import FreeSpaceFn, ProgressFn, disk_free
from engine.store.errors import (
    CatalogError,
    ChecksumMismatchError,
    InvalidModelError,
    NotInstalledError,
    StoreError,
)
from engine.store.installers import HubTarget, WantedFile
from engine.store.network import is_offline
from engine.store.registry import InstalledModel, Registry
from engine.store.safe_names import safe_join
from engine.store.verify import sha256_file

GGUF_MAGIC = b"GGUF"
MAX_STORED_NAME = 240  # bytes: a file name plus ".part" stays within the 255 most file systems allow
_SLUG = re.compile(r"[^a-z0-9._-]+")


@dataclass(frozen=True)
class Listing:
    model: InstalledModel
    path: Path  # what a loader opens: GGUF file or drafter folder
    present: bool  # False when files were removed or changed behind the app's back


@dataclass(frozen=True)
class PartialDownload:
    """Resume with install(folder) when folder is a catalog artifact id, else install_hf_*(repo, ...)."""

    folder: str  # model folder under the models dir
    repo: str
    filename: str
    done: int
    total: int


class ModelStore:
    def __init__(
        self,
        root: Path | None = None,
        *,
        endpoint: str | None = None,
        offline: bool = False,
        catalog: Catalog | None = None,
        assets_dir: Path | None = None,
        free_space: FreeSpaceFn = disk_free,
        site_paths: Sequence[str] | None = None,
    ) -> None:
        self.root = root or models_dir()
        self.endpoint = endpoint
        self.offline = offline  # the in-app switch; HF_HUB_OFFLINE is honoured on top of it
        self.catalog = catalog or load_catalog()
        self.assets_dir = assets_dir or Path(__file__).resolve().parents[2] / "assets"
        self.free_space = free_space
        self.site_paths = site_paths  # where chunk packages are installed; None = this interpreter's
        self.registry = Registry(self.root)
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()

    @property
    def is_offline(self) -> bool:
        return is_offline(self.offline)

    # ---- listing ------------------------------------------------------------------------------

    def installed(self) -> list[Listing]:
        return [
            Listing(model=m, path=m.main_path(self.root), present=m.files_present(self.root))
            for m in sorted(self.registry.all().values(), key=lambda m: (m.kind, m.id))
        ]

    def path_of(self, model_id: str) -> Path:
        model = self.registry.get(model_id)
        if model is None:
            raise NotInstalledError(f"Model {model_id!r} is not installed.")
        if not model.files_present(self.root):
            raise NotInstalledError(f"Model {model_id!r} is registered but its files are missing or changed.")
        return model.main_path(self.root)

    def partial_downloads(self) -> list[PartialDownload]:
        """Interrupted downloads that install_* will resume."""
        found = []
        for state in sorted(self.root.glob("*/**/*.part.json")):
            part = state.with_name(state.name.removesuffix(".json"))
            folder = state.relative_to(self.root).parts[0]
            try:
                saved = json.loads(state.read_text(encoding="utf-8"))
                total, repo, filename = int(saved["size"]), str(saved["repo"]), str(saved["filename"])
                done = part.stat().st_size
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found.append(PartialDownload(folder=folder, repo=repo, filename=filename, done=done, total=total))
        return found

    def verify(self, model_id: str) -> None:
        """Re-hash every file against the registry (slow: reads everything); raises on a mismatch."""
        model = self.registry.get(model_id)
        if model is None:
            raise NotInstalledError(f"Model {model_id!r} is not installed.")
        folder = model.folder_path(self.root)
        for f in model.files:
            if f.sha256 is not None and sha256_file(folder / f.name) != f.sha256:
                raise ChecksumMismatchError(f"{model_id}: {f.name} no longer matches its recorded sha256.")

    # ---- catalog installs ---------------------------------------------------------------------

    def install_bundle(
        self,
        bundle_id: str,
        *,
        with_classic_draft: bool = True,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> list[InstalledModel]:
        bundle = self.catalog.bundles.get(bundle_id)
        if bundle is None:
            raise CatalogError(f"The catalog has no bundle {bundle_id!r}.")
        wanted = [a for a in bundle.artifacts if with_classic_draft or a is not bundle.classic_draft]
        models = [self.install(a.id, progress=progress, cancel=cancel) for a in wanted]
        for drafter in {bundle.drafter_block.id, bundle.drafter_vp.id}:
            self.check_pair(bundle.target.id, drafter)
        return models

    def install(
        self,
        artifact_id: str,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> InstalledModel:
        """Install a catalog artifact; an already installed one returns at once, without network."""
        art = self.catalog.artifacts.get(artifact_id)
        if art is None:
            raise CatalogError(f"The catalog has no artifact {artifact_id!r}.")
        existing = self.registry.get(art.id)
        if existing is not None and existing.files_present(self.root):
            return existing
        with self._claim(art.id):
            kinds = {type(f.source) for f in art.files}
            if kinds == {BundledSource}:
                model = installers.register_shipped(art, assets_dir=self.assets_dir)
            elif kinds == {PypiSource}:
                model = installers.install_from_pypi(
                    art,
                    root=self.root,
                    free_space=self.free_space,
                    site_paths=self.site_paths,
                    progress=progress,
                    cancel=cancel,
                )
            elif kinds == {HfSource}:
                model = installers.install_from_hub(
                    self._hub(),
                    model_id=art.id,
                    kind=art.kind,
                    name=art.name,
                    repo=_single_repo(art),
                    wanted=[
                        WantedFile(f.source.filename, f.name, f.source.revision, f.size, f.sha256)  # type: ignore[union-attr]
                        for f in art.files
                    ],
                    progress=progress,
                    cancel=cancel,
                )
            else:
                raise CatalogError(f"Artifact {art.id!r} mixes source types, which the store cannot install.")
            self.registry.put(model)
            return model

    # ---- Hub installs outside the catalog (from search results) -------------------------------

    def install_hf_gguf(
        self,
        repo: str,
        filenames: Sequence[str],
        *,
        revision: str = "main",
        kind: str = "target",
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> InstalledModel:
        """Install one quantization (several files when split) found by search."""
        if not filenames or not all(f.lower().endswith(".gguf") for f in filenames):
            raise InvalidModelError(f"Only .gguf files can be installed as models, got {list(filenames)}.")
        model_id = _slug(f"hf-{repo}-{filenames[0].removesuffix('.gguf')}")
        existing = self.registry.get(model_id)
        if existing is not None and existing.files_present(self.root):
            return existing
        with self._claim(model_id):
            model = installers.install_from_hub(
                self._hub(),
                model_id=model_id,
                kind=kind,
                name=f"{repo} {filenames[0].rsplit('/', 1)[-1]}",
                repo=repo,
                wanted=[WantedFile(f, f, revision, None, None) for f in filenames],
                progress=progress,
                cancel=cancel,
            )
            self.registry.put(model)
            return model

    def install_hf_drafter(
        self,
        repo: str,
        *,
        revision: str = "main",
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> InstalledModel:
        model_id = _slug(f"hf-{repo}")
        existing = self.registry.get(model_id)
        if existing is not None and existing.files_present(self.root):
            return existing
        with self._claim(model_id):
            model = installers.install_from_hub(
                self._hub(),
                model_id=model_id,
                kind="drafter",
                name=repo,
                repo=repo,
                wanted=[WantedFile(f, f, revision, None, None) for f in DRAFTER_FILES],
                progress=progress,
                cancel=cancel,
            )
            self._validate_drafter_or_remove(model)
            self.registry.put(model)
            return model

    # ---- local imports ------------------------------------------------------------------------

    def import_gguf(
        self,
        path: Path,
        *,
        kind: str = "target",
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> InstalledModel:
        """Copy a local GGUF file into the store (the original stays where it is)."""
        path = Path(path)
        try:
            with path.open("rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            raise InvalidModelError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
        if magic != GGUF_MAGIC:
            raise InvalidModelError(f"{path.name} is not a GGUF file (wrong magic bytes).")
        compat.read_target_shape(path)  # refuses files llama.cpp could not describe either
        model_id = self._unused_id(_slug(f"local-{path.stem}"))
        with self._claim(model_id), self._new_folder(model_id) as folder:
            # the copy goes through "<name>.part", which a name near the 255-byte limit cannot take
            name = path.name if len(path.name.encode()) <= MAX_STORED_NAME else f"{model_id}.gguf"
            entry = installers.copy_verified(
                path, folder / name, free_space=self.free_space, progress=progress, cancel=cancel
            )
            model = InstalledModel(
                id=model_id,
                kind=kind,
                name=path.name,
                folder=model_id,
                files=(entry,),
                source={"type": "local", "origin": str(path.resolve())},
                installed_at=time.time(),
            )
            self.registry.put(model)
            return model

    def import_drafter(
        self,
        folder: Path,
        *,
        progress: ProgressFn | None = None,
        cancel: threading.Event | None = None,
    ) -> InstalledModel:
        """Copy a drafter checkpoint folder (config.json + model.safetensors; never pickles)."""
        folder = Path(folder)
        compat.read_drafter_shape(folder)
        installers.check_safetensors(folder / "model.safetensors")
        model_id = self._unused_id(_slug(f"local-{folder.name}"))
        with self._claim(model_id), self._new_folder(model_id) as dest:
            names = DRAFTER_FILES + tuple(n for n in DRAFTER_OPTIONAL if (folder / n).is_file())
            total = sum((folder / n).stat().st_size for n in names)
            installers.require_space(self.root, total, f"Importing {folder.name}", self.free_space)
            files, base = [], 0
            for name in names:
                step = installers.offset_progress(progress, base, total)
                files.append(
                    installers.copy_verified(
                        folder / name, dest / name, free_space=self.free_space, progress=step, cancel=cancel
                    )
                )
                base += files[-1].size
            model = InstalledModel(
                id=model_id,
                kind="drafter",
                name=folder.name,
                folder=model_id,
                files=tuple(files),
                source={"type": "local", "origin": str(folder.resolve())},
                installed_at=time.time(),
            )
            self.registry.put(model)
            return model

    # ---- compatibility and deletion -----------------------------------------------------------

    def check_pair(self, target_id: str, drafter_id: str) -> None:
        """Raise IncompatibleDrafterError unless the installed drafter can draft for the installed target."""
        compat.check_drafter(self.path_of(target_id), self.path_of(drafter_id))

    def compatible_drafters(self, target_id: str) -> list[str]:
        target = compat.read_target_shape(self.path_of(target_id))
        found = []
        for listing in self.installed():
            if listing.model.kind == "drafter" and listing.present:
                try:
                    if not compat.drafter_problems(target, compat.read_drafter_shape(listing.path)):
                        found.append(listing.model.id)
                except InvalidModelError:
                    continue
        return found

    def delete(self, model_id: str) -> None:
        """Remove an installed model's files and registry entry, or an abandoned partial download."""
        model = self.registry.get(model_id)
        with self._claim(model_id):
            if model is not None and Path(model.folder).is_absolute():
                self.registry.remove(model_id)  # shipped files used in place are never deleted
                return
            folder = safe_join(self.root, model.folder if model else model_id)
            if model is None and not folder.is_dir():
                raise NotInstalledError(f"Model {model_id!r} is not installed.")
            shutil.rmtree(folder, ignore_errors=True)
            self.registry.remove(model_id)

    # ---- internals ----------------------------------------------------------------------------

    def _validate_drafter_or_remove(self, model: InstalledModel) -> None:
        folder = model.folder_path(self.root)
        try:
            compat.read_drafter_shape(folder)
            installers.check_safetensors(folder / "model.safetensors")
        except InvalidModelError:
            shutil.rmtree(folder, ignore_errors=True)
            raise

    def _hub(self) -> HubTarget:
        return HubTarget(root=self.root, endpoint=self.endpoint, app_offline=self.offline, free_space=self.free_space)

    def _unused_id(self, base: str) -> str:
        taken = set(self.registry.all()) | {p.name for p in self.root.glob("*")}
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        return candidate

    def _claim(self, model_id: str) -> _Claim:
        return _Claim(self, model_id)

    @contextlib.contextmanager
    def _new_folder(self, model_id: str) -> Iterator[Path]:
        """The folder of a model being imported (its id is unused, so the folder is new): removed again
        when the import fails, so no empty or half-copied folder is left to look like a model."""
        folder = self.root / model_id
        try:
            yield folder
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise


class _Claim:
    """Refuses a second concurrent install/delete of the same model within this process."""

    def __init__(self, store: ModelStore, model_id: str) -> None:
        self.store, self.model_id = store, model_id

    def __enter__(self) -> None:
        with self.store._busy_lock:
            if self.model_id in self.store._busy:
                raise StoreError(f"Model {self.model_id!r} is already being installed or deleted.")
            self.store._busy.add(self.model_id)

    def __exit__(self, *exc: object) -> None:
        with self.store._busy_lock:
            self.store._busy.discard(self.model_id)


def _single_repo(art: Artifact) -> str:
    repos = {f.source.repo for f in art.files}  # type: ignore[union-attr]
    if len(repos) != 1:
        raise CatalogError(f"Artifact {art.id!r} draws files from several repositories.")
    return repos.pop()


def _slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-.")[:120] or "model"
