"""Search the Hub for GGUF repositories and list their quantizations, marking those that fit in RAM."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from huggingface_hub import HfApi, constants

from engine.store.download import hub_errors
from engine.store.errors import StoreError, UnsafeFilenameError
from engine.store.network import require_online, require_resolvable
from engine.store.safe_names import safe_relpath

# Weights plus KV cache, compute buffers and the app itself: a model needs noticeably more than its file.
MEMORY_OVERHEAD_FACTOR = 1.2
MEMORY_OVERHEAD_BYTES = 512 << 20
_SPLIT = re.compile(r"^(?P<stem>.+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.gguf$")
_QUANT = re.compile(r"(?<![A-Za-z0-9])(I?Q\d(?:_[A-Z0-9]+)*|BF16|F16|F32|MXFP4(?:_MOE)?)(?![A-Za-z0-9])", re.IGNORECASE)


@dataclass(frozen=True)
class GgufQuant:
    label: str  # "Q4_K_M", "IQ3_XXS", "F16"... or the file stem when no label is recognisable
    files: tuple[str, ...]  # several for split models, in shard order
    size: int | None
    sha256: str | None  # of the first file, from the Hub's LFS metadata
    fits: bool | None  # None when the file size or this machine's memory is unknown


@dataclass(frozen=True)
class GgufRepo:
    repo: str
    downloads: int | None
    likes: int | None
    quants: tuple[GgufQuant, ...]


@dataclass(frozen=True)
class SearchResult:
    repos: tuple[GgufRepo, ...]
    refused: tuple[str, ...]  # one sentence per repository left out (hostile listing, vanished repo...)


def total_memory() -> int | None:
    """Physical RAM in bytes (Linux, macOS); None where os.sysconf cannot tell (Windows)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def fits_memory(size: int, memory_bytes: int) -> bool:
    return size * MEMORY_OVERHEAD_FACTOR + MEMORY_OVERHEAD_BYTES <= memory_bytes


def search_gguf(
    query: str,
    *,
    endpoint: str | None,
    app_offline: bool,
    limit: int = 20,
    memory_bytes: int | None = None,
    token: str | bool | None = None,
) -> SearchResult:
    """Most-downloaded GGUF repositories matching query, each with its quantizations."""
    require_online(app_offline, f"search the Hub for {query!r}")
    require_resolvable(endpoint or constants.ENDPOINT, f"search the Hub for {query!r}")
    api = HfApi(endpoint=endpoint, token=token)
    with hub_errors(f"search the Hub for {query!r}"):
        found = list(api.list_models(search=query, filter="gguf", sort="downloads", limit=limit))
    repos, refused = [], []
    for info in found:
        try:
            repos.append(
                list_gguf_quants(
                    info.id, endpoint=endpoint, app_offline=app_offline, memory_bytes=memory_bytes, token=token
                )
            )
        except StoreError as exc:
            refused.append(str(exc))
    return SearchResult(repos=tuple(repos), refused=tuple(refused))


def list_gguf_quants(
    repo: str,
    *,
    endpoint: str | None,
    app_offline: bool,
    revision: str | None = None,
    memory_bytes: int | None = None,
    token: str | bool | None = None,
) -> GgufRepo:
    """A repository's GGUF files grouped into quantizations; a listing with an unsafe name is refused whole."""
    require_online(app_offline, f"list the files of {repo}")
    require_resolvable(endpoint or constants.ENDPOINT, f"list the files of {repo}")
    memory = total_memory() if memory_bytes is None else memory_bytes
    with hub_errors(f"list the files of {repo}"):
        info = HfApi(endpoint=endpoint, token=token).model_info(repo, revision=revision, files_metadata=True)
    siblings = info.siblings or []
    for sibling in siblings:
        try:
            safe_relpath(sibling.rfilename)
        except UnsafeFilenameError as exc:
            raise UnsafeFilenameError(f"Repository {repo} was refused: {exc}") from exc
    ggufs = [s for s in siblings if s.rfilename.lower().endswith(".gguf")]
    groups: dict[str, list] = {}
    for sibling in ggufs:
        split = _SPLIT.match(sibling.rfilename)
        if split and int(split["index"]) > int(split["count"]):
            continue
        groups.setdefault(split["stem"] if split else sibling.rfilename, []).append(sibling)
    quants = []
    for key, members in sorted(groups.items()):
        members.sort(key=lambda s: s.rfilename)
        sizes = [s.size for s in members]
        size = None if None in sizes else sum(sizes)
        first = members[0]
        quants.append(
            GgufQuant(
                label=_quant_label(key),
                files=tuple(s.rfilename for s in members),
                size=size,
                sha256=first.lfs.sha256 if first.lfs is not None else None,
                fits=None if size is None or memory is None else fits_memory(size, memory),
            )
        )
    return GgufRepo(repo=info.id, downloads=info.downloads, likes=info.likes, quants=tuple(quants))


def _quant_label(name: str) -> str:
    base = name.rsplit("/", 1)[-1].removesuffix(".gguf")
    matches = _QUANT.findall(base)
    return matches[-1].upper() if matches else base
