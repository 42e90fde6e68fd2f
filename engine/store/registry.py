"""The local registry: one JSON file listing every installed model and the files it consists of."""

from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.store.safe_names import aside_path

REGISTRY_FILE = "registry.json"
REGISTRY_VERSION = 1
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstalledFile:
    name: str  # relative to the model's folder, '/'-separated
    size: int
    sha256: str | None  # None only for shipped files that the catalog does not pin yet


@dataclass(frozen=True)
class InstalledModel:
    id: str
    kind: str  # "target", "drafter" or "draft"
    name: str
    folder: str  # relative to the models dir, or absolute for files used in place (shipped drafters)
    files: tuple[InstalledFile, ...]
    source: dict[str, Any]  # {"type": "hf", "repo", "revision", "commit"}, {"type": "local", "origin"}, ...
    installed_at: float

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def folder_path(self, models_dir: Path) -> Path:
        return models_dir / self.folder  # an absolute folder wins over models_dir

    def main_path(self, models_dir: Path) -> Path:
        """What a loader opens: the (first) GGUF file, or the drafter folder."""
        folder = self.folder_path(models_dir)
        if self.kind == "drafter":
            return folder
        return folder / min(f.name for f in self.files if f.name.endswith(".gguf"))

    def files_present(self, models_dir: Path) -> bool:
        """Cheap check (existence and size, no hashing) used on every start and offline."""
        folder = self.folder_path(models_dir)
        for f in self.files:
            try:
                if (folder / f.name).stat().st_size != f.size:
                    return False
            except OSError:
                return False
        return True


class Registry:
    """Read-modify-write of registry.json, atomically replaced so a crash never leaves half a file."""

    def __init__(self, models_dir: Path) -> None:
        self.models_dir = models_dir
        self.path = models_dir / REGISTRY_FILE
        self._lock = threading.Lock()

    def all(self) -> dict[str, InstalledModel]:
        with self._lock:
            return self._read()

    def get(self, model_id: str) -> InstalledModel | None:
        return self.all().get(model_id)

    def put(self, model: InstalledModel) -> None:
        with self._lock:
            models = self._read()
            models[model.id] = model
            self._write(models)

    def remove(self, model_id: str) -> None:
        with self._lock:
            models = self._read()
            if models.pop(model_id, None) is not None:
                self._write(models)

    def _read(self) -> dict[str, InstalledModel]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {item["id"]: _model_from_json(item) for item in raw["models"]}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # The model files are intact; set the unreadable index aside so the app still starts.
            aside = aside_path(self.path)
            log.warning("Unreadable model registry %s (%s); moved to %s", self.path, exc, aside)
            os.replace(self.path, aside)
            return {}

    def _write(self, models: dict[str, InstalledModel]) -> None:
        self.models_dir.mkdir(parents=True, exist_ok=True)
        doc = {"version": REGISTRY_VERSION, "models": [asdict(m) for m in sorted(models.values(), key=lambda m: m.id)]}
        tmp = self.path.with_name(f"{REGISTRY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


def _model_from_json(item: dict[str, Any]) -> InstalledModel:
    return InstalledModel(
        id=item["id"],
        kind=item["kind"],
        name=item["name"],
        folder=item["folder"],
        files=tuple(InstalledFile(**f) for f in item["files"]),
        source=dict(item["source"]),
        installed_at=float(item["installed_at"]),
    )
