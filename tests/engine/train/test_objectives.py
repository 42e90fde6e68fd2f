import numpy as np

from engine.train.objectives import IGNORE, build_rows, pick_anchors, sample_positions, visible_prefix


def test_block_rows_show_only_the_anchor_and_label_the_rest():
    tokens = np.arange(100, 120)
    rows = build_rows(tokens, np.array([5, 17]), gamma=6, mask_id=9, lam=7.0)
    assert rows.tokens.tolist() == [[105, 9, 9, 9, 9, 9], [117, 9, 9, 9, 9, 9]]
    assert rows.labels.tolist() == [[IGNORE, 106, 107, 108, 109, 110], [IGNORE, 118, 119, IGNORE, IGNORE, IGNORE]]
    assert rows.positions[1].tolist() == [17, 18, 19, 20, 21, 22]
    np.testing.assert_allclose(rows.weights[0, 1:], np.exp(-np.arange(5) / 7.0), rtol=1e-6)
    assert rows.weights[1, 3:].sum() == 0 and rows.weights[:, 0].sum() == 0


def test_vp_rows_show_l_real_tokens_and_weigh_from_the_first_masked_one():
    tokens = np.arange(100, 120)
    rows = build_rows(tokens, np.array([5, 5]), gamma=6, mask_id=9, lam=7.0, visible=np.array([2, 0]))
    assert rows.tokens.tolist() == [[105, 106, 107, 9, 9, 9], [105, 9, 9, 9, 9, 9]]
    assert rows.labels[0].tolist() == [IGNORE, IGNORE, IGNORE, 108, 109, 110]
    np.testing.assert_allclose(rows.weights[0, 3:], np.exp(-np.arange(3) / 7.0), rtol=1e-6)


def test_anchors_stay_in_the_answer_and_leave_a_label():
    rng = np.random.default_rng(0)
    anchors = pick_anchors(50, 30, 8, rng)
    assert len(set(anchors)) == 8 and anchors.min() >= 30 and anchors.max() <= 48
    assert pick_anchors(33, 30, 8, rng).tolist() == [30, 31]


def test_visible_prefix_prior_includes_zero_and_decays():
    counts = np.bincount(visible_prefix(20000, 16, 0.9, np.random.default_rng(1)), minlength=15)
    assert len(counts) == 15 and counts[0] > counts[5] > counts[14] > 0
    assert abs(counts[1] / counts[0] - 0.9) < 0.05


def test_sampled_positions_are_kept_as_often_as_their_weight_says():
    tokens = np.arange(1000, 1400)
    rows = build_rows(tokens, np.arange(0, 390), gamma=8, mask_id=9, lam=2.0, visible=np.full(390, 2))
    kept = np.mean([sample_positions(rows, np.random.default_rng(s)).weights for s in range(40)], axis=0)
    # never a position the objective leaves out (anchor, visible tokens, past the end)
    assert kept[rows.weights == 0].sum() == 0
    by_position = kept[:380].mean(0)     # rows whose block fits in the sample
    np.testing.assert_allclose(by_position, rows.weights[:380].mean(0), atol=0.02)
    assert set(np.unique(sample_positions(rows, np.random.default_rng(0)).weights)) == {0.0, 1.0}
