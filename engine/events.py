"""What the generation loop streams out: plain dataclasses, safe to pass across threads and to pickle-free JSON."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

# Provenance of an emitted token: which proposer put it in the verified trie (or "target" for the
# token the target sampled itself after the last accepted node: the bonus token).
TARGET = "target"
LOOKUP = "lookup"
DRAFTER1 = "drafter1"
VP = "vp"
RESAMPLE = "resample"
ARDRAFT = "ardraft"


@dataclass
class TreeView:
    """The candidate trie of one step, for drawing: node 0 is the anchor (already emitted)."""
    tokens: list[int]
    parents: list[int]          # -1 for the root
    sources: list[str]
    confidences: list[float]
    accepted: list[int]         # node ids of the accepted path, root first


def count_acceptance(tries: list[int], hits: list[int], tree: TreeView) -> None:
    """Per draft depth d (index d-1): d was tried when the accepted node at depth d-1 had children,
    and hit when the accepted path reached depth d. Grows the lists as deeper trees arrive."""
    has_children = set(tree.parents)
    path = tree.accepted
    for depth, node in enumerate(path):
        if node not in has_children:
            break
        while len(tries) <= depth:
            tries.append(0)
            hits.append(0)
        tries[depth] += 1
        hits[depth] += depth + 1 < len(path)


@dataclass
class TextDelta:
    text: str                   # may be "" while UTF-8 bytes or a possible stop string are held back
    token_ids: list[int]
    provenance: list[str]       # one entry per token id


@dataclass
class StepStats:
    step: int
    tree_nodes: int             # tokens in this step's verify batch, the anchor included
    proposed: int               # draft tokens in the trie (tree_nodes - 1)
    accepted: int               # draft tokens the target accepted
    emitted: int                # accepted + 1 (the bonus token), or fewer when a stop cut the step
    draft_s: float              # the whole proposal, VP rows included, and the drafters reading the accepted path
    vp_s: float                 # the part of draft_s spent on VP rows (d2sd); drafter 1 took the rest
    verify_s: float
    other_s: float              # host work: the acceptance walk, the KV commit, text and statistics
    tree: TreeView


@dataclass
class RunStats:
    method: str
    prompt_tokens: int
    reused_tokens: int          # prompt tokens whose KV was kept from the previous turn
    new_tokens: int
    target_passes: int          # verify decodes, prefill excluded
    proposed: int
    accepted: int
    ttft_s: float
    total_s: float
    prefill_s: float
    draft_s: float              # VP rows included, as in StepStats
    vp_s: float
    verify_s: float
    other_s: float
    stop_reason: str            # "eos" | "stop" | "length" | "cancel" | "context" (the context is full)
    # accept_tries[k] / accept_hits[k]: how often a draft token at depth k+1 was offered on the
    # accepted path's frontier and how often the target took it.
    accept_tries: list[int] = field(default_factory=list)
    accept_hits: list[int] = field(default_factory=list)

    @property
    def produced(self) -> int:
        """Tokens the verify passes produced: the new tokens and the end-of-generation token that ended
        the answer, if one did (the last pass produced it; leaving it out put `ar` below 1). Tokens a
        pass produced past a stop or the token limit are not counted."""
        return self.new_tokens + (self.stop_reason == "eos")

    @property
    def tau(self) -> float:
        """Tokens the target produced per pass (mean accepted length + 1)."""
        return self.produced / self.target_passes if self.target_passes else 0.0

    @property
    def tokens_per_s(self) -> float:
        decode_s = self.total_s - self.prefill_s
        return self.new_tokens / decode_s if decode_s > 0 else 0.0

    @property
    def acceptance_rate(self) -> float:
        """Acceptance along the accepted path: of the draft positions the target judged on it (a depth
        offered after the previous accepted node), the share it took. accepted/proposed would count
        every alternative branch of a tree as a miss, so a tree working as designed would read ~2%."""
        tries = sum(self.accept_tries)
        return sum(self.accept_hits) / tries if tries else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(tau=self.tau, tokens_per_s=self.tokens_per_s, acceptance_rate=self.acceptance_rate)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RunStats":
        """Stats saved with to_dict (the derived figures in it are computed again, not read)."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


@dataclass
class Finished:
    text: str
    token_ids: list[int]
    stats: RunStats


Event = TextDelta | StepStats | Finished
