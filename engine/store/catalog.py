"""The model catalog (assets/catalog.json): what can be installed, from where, and how to check it.

An *artifact* is one installable unit (a GGUF file, or a drafter folder of config.json +
model.safetensors); a *bundle* names the artifacts that work together: a target, its block drafter
(drafter 1), its VP drafter (drafter 2, may be the same artifact as drafter 1) and optionally a
classic draft GGUF. Sizes and hashes that cannot be known offline are stored as null and taken from
the Hub's metadata at download time; they are never guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engine.store.errors import CatalogError
from engine.store.safe_names import safe_relpath

SCHEMA_VERSION = 1
ArtifactKind = Literal["target", "drafter", "draft"]
DRAFTER_FILES = ("config.json", "model.safetensors")
DRAFTER_OPTIONAL = ("draft_vocab.safetensors",)  # a reduced draft vocabulary, ours only

_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")
_PACKAGE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_ID = re.compile(r"[a-z0-9][a-z0-9._-]*")


@dataclass(frozen=True)
class HfSource:
    repo: str
    filename: str
    revision: str


@dataclass(frozen=True)
class PypiSource:
    """A file split into chunk packages; concatenating their data/ files in list order rebuilds it."""

    packages: tuple[str, ...]
    version: str


@dataclass(frozen=True)
class BundledSource:
    """A file shipped with the app, relative to the assets folder."""

    path: str


Source = HfSource | PypiSource | BundledSource


@dataclass(frozen=True)
class CatalogFile:
    name: str
    size: int | None
    sha256: str | None
    source: Source


@dataclass(frozen=True)
class Artifact:
    id: str
    kind: ArtifactKind
    name: str
    license: str | None
    min_memory_bytes: int
    files: tuple[CatalogFile, ...]


@dataclass(frozen=True)
class Bundle:
    id: str
    name: str
    description: str
    default: bool
    target: Artifact
    drafter_block: Artifact
    drafter_vp: Artifact
    classic_draft: Artifact | None

    @property
    def artifacts(self) -> tuple[Artifact, ...]:
        """Distinct artifacts, target first (the VP drafter may reuse drafter 1)."""
        seen: dict[str, Artifact] = {}
        for art in (self.target, self.drafter_block, self.drafter_vp, self.classic_draft):
            if art is not None:
                seen.setdefault(art.id, art)
        return tuple(seen.values())

    @property
    def min_memory_bytes(self) -> int:
        """Memory for target plus drafters; the classic draft is only loaded by its own method."""
        parts = {a.id: a.min_memory_bytes for a in (self.target, self.drafter_block, self.drafter_vp)}
        return sum(parts.values())


@dataclass(frozen=True)
class Catalog:
    artifacts: dict[str, Artifact]
    bundles: dict[str, Bundle]

    def default_bundle(self) -> Bundle:
        return next(b for b in self.bundles.values() if b.default)


def default_catalog_path() -> Path:
    return Path(__file__).resolve().parents[2] / "assets" / "catalog.json"


def load_catalog(path: Path | None = None) -> Catalog:
    path = path or default_catalog_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:  # ValueError: bad JSON or bytes that are not UTF-8
        raise CatalogError(f"Cannot read catalog {path}: {exc}.") from exc
    return parse_catalog(raw)


def parse_catalog(raw: Any) -> Catalog:
    """Validate the whole document and build the catalog; the first problem found is raised."""
    doc = _obj(raw, "catalog", {"schema", "artifacts", "bundles"})
    if doc["schema"] != SCHEMA_VERSION:
        raise CatalogError(f"Catalog schema {doc['schema']!r} is not supported (expected {SCHEMA_VERSION}).")
    artifacts: dict[str, Artifact] = {}
    for item in _list(doc["artifacts"], "artifacts"):
        art = _artifact(item)
        if art.id in artifacts:
            raise CatalogError(f"Catalog artifact id {art.id!r} is used twice.")
        artifacts[art.id] = art
    bundles: dict[str, Bundle] = {}
    for item in _list(doc["bundles"], "bundles"):
        bundle = _bundle(item, artifacts)
        if bundle.id in bundles:
            raise CatalogError(f"Catalog bundle id {bundle.id!r} is used twice.")
        bundles[bundle.id] = bundle
    defaults = [b.id for b in bundles.values() if b.default]
    if len(defaults) != 1:
        raise CatalogError(f"Catalog must mark exactly one bundle as default, found {len(defaults)}.")
    return Catalog(artifacts=artifacts, bundles=bundles)


def _artifact(raw: Any) -> Artifact:
    doc = _obj(raw, "artifact", {"id", "kind", "name", "license", "min_memory_bytes", "files"})
    art_id = _ident(doc["id"], "artifact id")
    where = f"artifact {art_id!r}"
    kind = doc["kind"]
    if kind not in ("target", "drafter", "draft"):
        raise CatalogError(f"Catalog {where} has unknown kind {kind!r}.")
    files = tuple(_file(item, where) for item in _list(doc["files"], f"{where} files"))
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise CatalogError(f"Catalog {where} lists a file name twice.")
    if kind == "drafter" and not set(DRAFTER_FILES) <= set(names) <= set(DRAFTER_FILES + DRAFTER_OPTIONAL):
        raise CatalogError(f"Catalog {where} must consist of {' and '.join(DRAFTER_FILES)}"
                           f" (and optionally {', '.join(DRAFTER_OPTIONAL)}).")
    if kind != "drafter" and (len(files) != 1 or not names[0].endswith(".gguf")):
        raise CatalogError(f"Catalog {where} must consist of exactly one .gguf file.")
    return Artifact(
        id=art_id,
        kind=kind,
        name=_text(doc["name"], f"{where} name"),
        license=_optional_text(doc["license"], f"{where} license"),
        min_memory_bytes=_positive_int(doc["min_memory_bytes"], f"{where} min_memory_bytes"),
        files=files,
    )


def _file(raw: Any, where: str) -> CatalogFile:
    doc = _obj(raw, f"{where} file", {"name", "size", "sha256", "source"})
    name = _text(doc["name"], f"{where} file name")
    safe_relpath(name)
    where = f"{where} file {name!r}"
    size = None if doc["size"] is None else _positive_int(doc["size"], f"{where} size")
    sha = doc["sha256"]
    if sha is not None and not (isinstance(sha, str) and _SHA256.fullmatch(sha)):
        raise CatalogError(f"Catalog {where} sha256 must be null or 64 lowercase hex digits.")
    source = _source(doc["source"], where)
    if isinstance(source, PypiSource) and (size is None or sha is None):
        # Chunk packages are ours and immutable: an assembled file without a pinned hash is a catalog bug.
        raise CatalogError(f"Catalog {where} comes from PyPI chunks and must pin size and sha256.")
    return CatalogFile(name=name, size=size, sha256=sha, source=source)


def _source(raw: Any, where: str) -> Source:
    if not isinstance(raw, dict) or "type" not in raw:
        raise CatalogError(f"Catalog {where} source must be an object with a 'type'.")
    kind = raw["type"]
    if kind == "hf":
        doc = _obj(raw, f"{where} source", {"type", "repo", "filename", "revision"})
        repo = _text(doc["repo"], f"{where} repo")
        if not _REPO_ID.fullmatch(repo) or ".." in repo:
            raise CatalogError(f"Catalog {where} repo {repo!r} is not an 'owner/name' repository id.")
        filename = _text(doc["filename"], f"{where} filename")
        safe_relpath(filename)
        return HfSource(repo=repo, filename=filename, revision=_text(doc["revision"], f"{where} revision"))
    if kind == "pypi":
        doc = _obj(raw, f"{where} source", {"type", "packages", "version"})
        packages = tuple(_text(p, f"{where} package") for p in _list(doc["packages"], f"{where} packages"))
        bad = [p for p in packages if not _PACKAGE.fullmatch(p)]
        if bad or not packages:
            raise CatalogError(f"Catalog {where} has invalid package names {bad or packages}.")
        return PypiSource(packages=packages, version=_text(doc["version"], f"{where} version"))
    if kind == "bundled":
        doc = _obj(raw, f"{where} source", {"type", "path"})
        path = _text(doc["path"], f"{where} path")
        safe_relpath(path)
        return BundledSource(path=path)
    raise CatalogError(f"Catalog {where} has unknown source type {kind!r}.")


def _bundle(raw: Any, artifacts: dict[str, Artifact]) -> Bundle:
    keys = {"id", "name", "description", "default", "target", "drafter_block", "drafter_vp", "classic_draft"}
    doc = _obj(raw, "bundle", keys)
    bundle_id = _ident(doc["id"], "bundle id")
    where = f"bundle {bundle_id!r}"

    def ref(key: str, kind: ArtifactKind) -> Artifact:
        art = artifacts.get(doc[key]) if isinstance(doc[key], str) else None
        if art is None:
            raise CatalogError(f"Catalog {where} {key} refers to unknown artifact {doc[key]!r}.")
        if art.kind != kind:
            raise CatalogError(f"Catalog {where} {key} must be a {kind} artifact, not {art.kind}.")
        return art

    if not isinstance(doc["default"], bool):
        raise CatalogError(f"Catalog {where} default must be true or false.")
    return Bundle(
        id=bundle_id,
        name=_text(doc["name"], f"{where} name"),
        description=_text(doc["description"], f"{where} description"),
        default=doc["default"],
        target=ref("target", "target"),
        drafter_block=ref("drafter_block", "drafter"),
        drafter_vp=ref("drafter_vp", "drafter"),
        classic_draft=None if doc["classic_draft"] is None else ref("classic_draft", "draft"),
    )


def _obj(raw: Any, what: str, keys: set[str]) -> dict[str, Any]:
    """An object with exactly these keys: a typo'd key must fail, not silently fall back to a default."""
    if not isinstance(raw, dict):
        raise CatalogError(f"Catalog {what} must be a JSON object.")
    missing, extra = keys - raw.keys(), raw.keys() - keys
    if missing or extra:
        raise CatalogError(f"Catalog {what} has missing keys {sorted(missing)} or unknown keys {sorted(extra)}.")
    return raw


def _list(raw: Any, what: str) -> list[Any]:
    if not isinstance(raw, list):
        raise CatalogError(f"Catalog {what} must be a JSON list.")
    return raw


def _text(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise CatalogError(f"Catalog {what} must be a non-empty string.")
    return raw


def _optional_text(raw: Any, what: str) -> str | None:
    return None if raw is None else _text(raw, what)


def _ident(raw: Any, what: str) -> str:
    if not isinstance(raw, str) or not _ID.fullmatch(raw):
        raise CatalogError(f"Catalog {what} {raw!r} must be lowercase letters, digits, '.', '_' or '-'.")
    return raw


def _positive_int(raw: Any, what: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise CatalogError(f"Catalog {what} must be a positive integer.")
    return raw
