"""The D2SD cycle's steps, each on its own: re-anchor points, VP rows, the VP pass and the merge."""
import numpy as np
import pytest

from engine.drafters import SharedHead
from engine.events import DRAFTER1, VP
from engine.methods.d2sd_cycle import (Block, block_row, merge, reanchor_points, rejection_boundaries,
                                       runner_up_points, top_boundaries, vp_drafts, vp_rows)
from engine.tree import Trie
from tests.engine.methods.test_drafting import tiny_drafter

MASK = 99


def test_rejection_boundaries_on_the_worked_example():
    conf = [0.95, 0.84, 0.62, 0.70, 0.42]  # docs/design.md, "Choosing the re-anchor points", gamma = 6
    np.testing.assert_allclose(rejection_boundaries(conf), [0.050, 0.152, 0.303, 0.148, 0.201], atol=1e-3)
    assert top_boundaries(conf, 4) == [2, 4, 1, 3]


def test_runner_up_points_weigh_each_runner_up_by_the_chance_of_reaching_it():
    conf = [0.5, 0.9, 0.8]
    runners_up = [[0.30, 0.10], [0.05, 0.01], [0.15, 0.02]]  # ranks 1 and 2 at draft indices 0..2
    # reach: 1, 0.5, 0.45 -> values 0.30 0.10 / 0.025 0.005 / 0.0675 0.009
    assert runner_up_points(conf, runners_up, 4) == [(0, 1), (0, 2), (2, 1), (1, 1)]


def ranked_block() -> Block:
    """Drafts 10, 11, 12 with two runners-up each (tokens 20.., 30..)."""
    ranked = np.array([[10, 20, 30], [11, 21, 31], [12, 22, 32]])
    ranked_p = np.array([[0.5, 0.30, 0.10], [0.9, 0.05, 0.01], [0.8, 0.15, 0.02]])
    return Block(ranked[:, 0], ranked_p[:, 0], ranked, ranked_p)


def test_reanchor_points_are_rejection_points_or_runner_ups_in_one_convention():
    block = ranked_block()
    # rejection: r = 0.5, 0.5*0.1, 0.45*0.2 -> i = 0, 2, 1
    assert reanchor_points(block, 3) == [(0, 0), (2, 0), (1, 0)]
    assert reanchor_points(block, 2, runner_ups=True) == [(0, 1), (0, 2)]
    assert reanchor_points(block, 0) == []


def test_vp_rows_keep_the_first_i_drafts_and_the_runner_up_at_i():
    rows = vp_rows(block_row(7, 5, MASK), ranked_block(), [(2, 0), (0, 0), (1, 2)])
    assert rows.tolist() == [[7, 10, 11, MASK, MASK],
                             [7, MASK, MASK, MASK, MASK],
                             [7, 10, 31, MASK, MASK]]
    assert rows.dtype == np.int64


def vp_output(points, width=3, first=100):
    """Stand-in VP drafts: row r holds first + 10 r + index, confidence 0.5."""
    tokens = np.array([[first + 10 * r + x for x in range(width)] for r in range(len(points))])
    return tokens, np.full(tokens.shape, 0.5)


def branch(trie: Trie, node: int) -> list[tuple[int, str]]:
    out = []
    while (kids := [c for c in range(len(trie)) if trie.parents[c] == node]):
        node = kids[-1]
        out.append((trie.tokens[node], trie.sources[node]))
    return out


def test_merge_hangs_each_vp_row_below_the_prefix_it_saw():
    block, points = ranked_block(), [(1, 0), (0, 2)]
    trie = merge(Trie.rooted(7), block, points, *vp_output(points))
    # the chain first, then row 0 below draft 10 redrawing from index 1, row 1 after runner-up 30 at index 0
    assert trie.tokens[:4] == [7, 10, 11, 12] and set(trie.sources[1:4]) == {DRAFTER1}
    ten = trie.child(0, 10)
    assert branch(trie, ten) == [(101, VP), (102, VP)]
    runner_up = trie.child(0, 30)
    assert trie.sources[runner_up] == DRAFTER1 and trie.confidences[runner_up] == pytest.approx(0.10)
    assert branch(trie, runner_up) == [(111, VP), (112, VP)]
    assert len(trie) == 1 + 3 + 2 + 1 + 2


def test_merge_shares_nodes_where_a_vp_row_repeats_the_chain():
    block, points = ranked_block(), [(1, 0)]
    tokens = np.array([[10, 11, 55]])            # the VP drafter agrees with drafter 1 at index 1
    trie = merge(Trie.rooted(7), block, points, tokens, np.full((1, 3), 0.5))
    assert len(trie) == 1 + 3 + 1 and trie.child(trie.child(trie.child(0, 10), 11), 55) is not None


def test_merge_keeps_the_likeliest_nodes_within_the_node_budget():
    # chances of being reached: the chain 10 .5, 11 .45, 12 .36; row 0 (VP from index 0) 100 .5, 101 .25,
    # 102 .125; row 1 (VP after drafts 10 and 11) 112 .225
    block, points = ranked_block(), [(0, 0), (2, 0)]
    trie = merge(Trie.rooted(7, max_nodes=3), block, points, *vp_output(points))
    assert trie.tokens == [7, 10, 100]          # a tie: drafter 1's node first
    trie = merge(Trie.rooted(7, max_nodes=7), block, points, *vp_output(points))
    assert trie.tokens == [7, 10, 100, 11, 12, 101, 112]   # row 1's VP token before row 0's third
    assert trie.parents[-1] == trie.child(trie.child(0, 10), 11)
    assert len(merge(Trie.rooted(7), block, points, *vp_output(points))) == 1 + 3 + 3 + 1   # no budget: all


def test_vp_drafts_fill_what_each_row_did_not_see_in_one_pass(tiny_gguf):
    vp = tiny_drafter(SharedHead.from_gguf(tiny_gguf), 2)
    mask = vp.config.mask_token_id
    block = Block(np.array([5, 6, 7, 8, 9, 10, 11]), np.full(7, 0.9))
    row = block_row(3, 8, mask)
    tokens, conf = vp_drafts(vp, row, block, [(3, 0), (0, 0)])
    assert tokens.shape == conf.shape == (2, 7)
    assert tokens[0, :3].tolist() == [5, 6, 7] and np.all(conf[0, :3] == 1.0)   # seen, kept as given
    assert np.all(tokens != mask) and np.all((conf[:, 3:] > 0) & (conf[:, 3:] <= 1))
    empty = vp_drafts(vp, row, block, [])
    assert empty[0].shape == (0, 7) and empty[1].shape == (0, 7)
