"""Find and load the drafter pair for a target: shipped under assets/drafters/<target-id>/{block,vp}/,
or folders the user names. A missing VP drafter means drafter 1 is reused in its place."""
from __future__ import annotations

from pathlib import Path

from engine.drafters.drafter import Drafter
from engine.drafters.errors import DrafterMismatch
from engine.drafters.shared_head import SharedHead

ASSETS = Path(__file__).resolve().parents[2] / "assets" / "drafters"


def shipped_pair(target_id: str) -> tuple[Path | None, Path | None]:
    folder = ASSETS / target_id
    block, vp = folder / "block", folder / "vp"
    return (block if (block / "config.json").is_file() else None,
            vp if (vp / "config.json").is_file() else None)


def pair_for(target_path: Path) -> tuple[Path | None, Path | None]:
    """The drafters shipped for a target file; only the embedded default target has a pair yet."""
    from engine.store.embedded import DEFAULT_TARGET

    if Path(target_path).resolve() == DEFAULT_TARGET.path().resolve():
        return shipped_pair("qwen2.5-coder-1.5b-instruct")
    return None, None


def load_pair(target_path: Path, block: Path, vp: Path | None = None) -> tuple[Drafter, Drafter | None]:
    """Drafter 1 and the VP drafter (or None); a refusal says which of the two it is."""
    head = SharedHead.from_gguf(Path(target_path))
    d1 = _load(Path(block), head, "Drafter 1")
    return d1, (_load(Path(vp), head, "The VP drafter") if vp else None)


def _load(folder: Path, head: SharedHead, role: str) -> Drafter:
    try:
        return Drafter.load(folder, head)
    except DrafterMismatch as e:
        raise DrafterMismatch(f"{role} ({folder}): {e}") from None
