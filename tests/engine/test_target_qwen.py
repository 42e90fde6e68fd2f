"""The engine on the real embedded target, Qwen2.5-Coder-1.5B-Instruct Q4_K_M.

Batch-shape noise is measured and printed here; greedy comparisons use the near-tie rule of
tests/engine/greedy_check.py (exact up to the first position whose top-2 margin is below NEAR_TIE).
"""
import numpy as np
import pytest

from engine.events import Finished
from engine.generate import generate
from engine.methods.base import Proposal
from engine.target import Target, TargetSettings
from engine.tree import Trie
from tests.engine.greedy_check import NEAR_TIE, first_divergence, greedy_reference, top2_margin

pytestmark = pytest.mark.qwen

PROMPTS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Implement binary search over a sorted list in Python and explain its complexity.",
    "Write a function that merges two sorted lists into one sorted list.",
    "Show how to read a CSV file and compute the average of one column in Python.",
    "Write a Python class for a stack with push, pop and peek methods.",
]


@pytest.fixture(scope="module")
def qwen(qwen_path):
    with Target.load(qwen_path, TargetSettings(n_ctx=2048)) as t:
        yield t


def chat(target, text):
    return target.chat_tokens([{"role": "user", "content": text}])


def test_batch_shape_noise_stays_below_the_near_tie_threshold(qwen):
    """Re-verify a greedy continuation in chains of 8: how far logits and top-2 margins move."""
    prompt = chat(qwen, PROMPTS[0])
    qwen.reset()
    anchor, _ = qwen.prepare(prompt)
    ref, seq = [], [anchor]
    for _ in range(48):
        trie = Trie.rooted(seq[-1])
        logits, flat = qwen.decode_tree(trie)
        ref.append(logits[0])
        seq.append(int(logits[0].argmax()))
        qwen.commit(trie, flat, [0])
    qwen.reset()
    qwen.prepare(prompt)
    worst_logit = worst_margin = 0.0
    flips = []
    for i in range(0, 48, 8):
        trie = Trie.rooted(seq[i])
        trie.add_row(seq[i + 1:i + 8], "oracle")
        logits, flat = qwen.decode_tree(trie)
        for k in range(8):
            r, b = ref[i + k], logits[k]
            top2 = np.argsort(r)[-2:]
            worst_logit = max(worst_logit, float(np.abs(r - b).max()))
            worst_margin = max(worst_margin, abs(float((r[top2[1]] - r[top2[0]]) - (b[top2[1]] - b[top2[0]]))))
            if r.argmax() != b.argmax():
                flips.append((i + k, round(top2_margin(r), 3)))
        qwen.commit(trie, flat, list(range(8)))
    print(f"\nbatch 8 vs 1: max |logit diff| {worst_logit:.3f}, max top-2 margin shift {worst_margin:.3f}, "
          f"flips (position, margin) {flips}; NEAR_TIE = {NEAR_TIE}")
    assert worst_margin < NEAR_TIE
    assert all(m < NEAR_TIE for _, m in flips)


def test_each_branch_of_a_tree_matches_decoding_it_alone(qwen):
    prompt = chat(qwen, PROMPTS[1])
    qwen.reset()
    greedy, _ = greedy_reference(qwen, prompt, 8)
    other = qwen.tokenize(" the quick brown fox", special=False)
    rows = [greedy[:7], greedy[:3] + other[:3], other[:4], greedy[:5] + other[:1]]
    qwen.reset()
    anchor, _ = qwen.prepare(prompt)
    trie = Trie.rooted(anchor)
    ids = [trie.add_row(r, "test") for r in rows]
    tree_logits, flat = qwen.decode_tree(trie)
    assert len(flat.leaf_seq) == 4 and len(trie) == 1 + 7 + 3 + 4 + 1
    worst = 0.0
    for row, nodes in zip(rows, ids):
        qwen.reset()
        qwen.prepare(prompt)
        chain = Trie.rooted(anchor)
        chain.add_row(row, "test")
        alone, _ = qwen.decode_tree(chain)
        tree = tree_logits[[0] + nodes]
        worst = max(worst, float(np.abs(alone - tree).max()))
        for k in range(len(row) + 1):
            if top2_margin(alone[k]) >= NEAR_TIE:
                assert alone[k].argmax() == tree[k].argmax(), f"branch {row} node {k}"
    print(f"\ntree of 4 branches vs each branch alone: max |logit diff| {worst:.3f}")


class Oracle:
    """Proposes the reference greedy continuation, with errors injected, as a two-branch trie."""
    name = "oracle"
    chain = False

    def __init__(self, reference, prompt_len, gamma=8, seed=0):
        self.ref, self.prompt_len, self.gamma = reference, prompt_len, gamma
        self.rng = np.random.default_rng(seed)

    def context_len(self):
        return None

    def start(self, prompt, reused, features):
        pass

    def observe(self, accepted, features):
        pass

    def propose(self, history, anchor) -> Proposal:
        done = len(history) + 1 - self.prompt_len  # output tokens emitted so far (the anchor included)
        row = list(self.ref[done:done + self.gamma])
        trie = Trie.rooted(anchor)
        if row and self.rng.random() < 0.6:
            bad = list(row)
            k = int(self.rng.integers(len(bad)))
            bad[k] = (bad[k] + 1 + int(self.rng.integers(1000))) % 151643
            trie.add_row(bad, "oracle-err")
            if self.rng.random() < 0.5:
                trie.add_row(row[: k + 2], "oracle")  # a second branch that gets further
        else:
            trie.add_row(row, "oracle")
        return Proposal(trie)


def test_oracle_drafter_with_errors_reproduces_greedy_output(qwen):
    runs = []
    for i, text in enumerate(PROMPTS):
        prompt = chat(qwen, text)
        qwen.reset()
        ref, margins = greedy_reference(qwen, prompt, 128)
        qwen.reset()
        events = list(generate(qwen, prompt, Oracle(ref, len(prompt), seed=i), max_tokens=128))
        fin = events[-1]
        assert isinstance(fin, Finished)
        eos = [k for k, t in enumerate(ref) if qwen.is_eog(t)]
        n = eos[0] if eos else 128
        where = first_divergence(ref[:n], margins, fin.token_ids[:n])
        runs.append((round(fin.stats.tau, 2), where, None if where is None else round(margins[where], 3)))
    print(f"\noracle runs (tau, first divergence, its top-2 margin): {runs}")
    # measured here: prompts 0 and 1 flip at margins 0.031 (token 10) and 0.037 (token 3), the rest match
    assert sum(where is not None for _, where, _ in runs) <= 3, "near-tie divergences left too few clean runs"
    # once a near-tie flips, the oracle proposes the other text's tokens: only clean runs show its tau
    assert all(tau > 2.0 for tau, where, _ in runs if where is None)


def test_commit_then_continue_equals_decoding_from_scratch(qwen):
    prompt = chat(qwen, PROMPTS[2])
    qwen.reset()
    greedy, _ = greedy_reference(qwen, prompt, 6)
    side = greedy[:2] + qwen.tokenize(" sorted", special=False)
    qwen.reset()
    anchor, _ = qwen.prepare(prompt)
    trie = Trie.rooted(anchor)
    trie.add_row(greedy[:6], "a")
    nodes = trie.add_row(side, "b")
    _, flat = qwen.decode_tree(trie)
    path = [0] + nodes[:-1]           # the side branch's last token plays the bonus token: not in the cache
    qwen.commit(trie, flat, path)
    assert qwen.tokens == prompt + side[:-1]
    assert qwen.kv_positions(0) == (0, len(prompt) + len(side) - 2)
    nxt = side[-1]
    cont, cont_margins = [], []
    for _ in range(24):  # continue with plain decoding on the committed cache
        t = Trie.rooted(nxt)
        lg, fl = qwen.decode_tree(t)
        nxt = int(lg[0].argmax())
        cont.append(nxt)
        cont_margins.append(top2_margin(lg[0]))
        qwen.commit(t, fl, [0])
    qwen.reset()
    scratch, margins = greedy_reference(qwen, prompt + side, 24)
    assert first_divergence(scratch, margins, cont) is None
