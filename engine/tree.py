"""The candidate trie one verify pass evaluates, and its flattening into one llama.cpp batch.

Node 0 is the root: the anchor token (the last emitted token, not yet in the target's KV cache).
Every other node is a draft token; proposers add whole rows (paths from the root) and rows that share
a prefix share its nodes, so the target evaluates each distinct prefix once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from engine.events import TARGET, TreeView


@dataclass
class Trie:
    tokens: list[int]
    parents: list[int]
    sources: list[str]
    confidences: list[float]
    max_nodes: int | None = None
    _children: list[dict[int, int]] = field(default_factory=list, repr=False)

    @classmethod
    def rooted(cls, anchor: int, max_nodes: int | None = None) -> "Trie":
        return cls([anchor], [-1], [TARGET], [1.0], max_nodes, [{}])

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def full(self) -> bool:
        return self.max_nodes is not None and len(self.tokens) >= self.max_nodes

    def child(self, node: int, token: int) -> int | None:
        return self._children[node].get(token)

    def add_node(self, parent: int, token: int, source: str, confidence: float = 1.0) -> int | None:
        """The child of `parent` for `token`, created if needed; None when the node budget is spent."""
        existing = self._children[parent].get(token)
        if existing is not None:
            return existing
        if self.full:
            return None
        node = len(self.tokens)
        self.tokens.append(int(token))
        self.parents.append(parent)
        self.sources.append(source)
        self.confidences.append(float(confidence))
        self._children.append({})
        self._children[parent][int(token)] = node
        return node

    def add_row(self, tokens, source: str, confidences=None, start: int = 0) -> list[int]:
        """Add a path below node `start`; returns the node ids it occupies (shorter if the budget ran out)."""
        nodes, node = [], start
        for k, tok in enumerate(tokens):
            conf = 1.0 if confidences is None else float(confidences[k])
            nxt = self.add_node(node, int(tok), source, conf)
            if nxt is None:
                break
            nodes.append(nxt)
            node = nxt
        return nodes

    def within_depth(self, limit: int) -> "Trie":
        """This trie, or a copy without the nodes at depth >= limit (the root has depth 0)."""
        depths = self.depths()
        if max(depths) < limit:
            return self
        out = Trie.rooted(self.tokens[0], self.max_nodes)
        new_id = {0: 0}
        for node in range(1, len(self.tokens)):
            if depths[node] < limit:
                new_id[node] = out.add_node(new_id[self.parents[node]], self.tokens[node], self.sources[node],
                                            self.confidences[node])
        return out

    def depths(self) -> list[int]:
        """Depth of every node (parents come before children, so one forward sweep suffices)."""
        depths = [0] * len(self.tokens)
        for node in range(1, len(self.tokens)):
            depths[node] = depths[self.parents[node]] + 1
        return depths

    def path_to(self, node: int) -> list[int]:
        path = []
        while node >= 0:
            path.append(node)
            node = self.parents[node]
        return path[::-1]

    def leaves(self) -> list[int]:
        return [i for i, ch in enumerate(self._children) if not ch]

    def view(self, accepted: list[int]) -> TreeView:
        return TreeView(list(self.tokens), list(self.parents), list(self.sources),
                        list(self.confidences), list(accepted))


@dataclass(frozen=True)
class FlatBatch:
    """A trie laid out as batch rows: row i is node i at position base + depth, in sequences seq_ids[i]."""
    tokens: list[int]
    depths: list[int]
    seq_ids: list[list[int]]
    leaf_seq: dict[int, int]  # leaf node -> the sequence id of its branch


def flatten(trie: Trie) -> FlatBatch:
    """One sequence id per leaf (branch 0 is the main sequence); a node belongs to every branch below it.

    Nodes are stored parent-before-child, so one reverse sweep collects each node's branches.
    """
    leaves = trie.leaves()
    leaf_seq = {leaf: s for s, leaf in enumerate(leaves)}
    seqs: list[set[int]] = [set() for _ in trie.tokens]
    for leaf, s in leaf_seq.items():
        seqs[leaf].add(s)
    for node in range(len(trie.tokens) - 1, 0, -1):
        seqs[trie.parents[node]] |= seqs[node]
    return FlatBatch(list(trie.tokens), trie.depths(), [sorted(s) for s in seqs], leaf_seq)

