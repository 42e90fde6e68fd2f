from __future__ import annotations

import numpy as np
import pytest

from engine.drafters import Drafter, DraftVocab
from tests.engine.drafters.drafter_helpers import MASK, VOCAB, features, small_config, small_head


@pytest.fixture
def drafter() -> Drafter:
    return Drafter.random(small_config(), small_head(), seed=2, std=0.1)


def masked_block(anchor: int = 7, visible: tuple[int, ...] = (), gamma: int = 8) -> np.ndarray:
    row = [anchor, *visible]
    return np.array([row + [MASK] * (gamma - len(row))], dtype=np.int64)


def test_visible_prefix_is_kept_and_masks_are_filled(drafter: Drafter) -> None:
    drafter.append_context(features(5, drafter.config))
    rows = np.concatenate([masked_block(), masked_block(visible=(40, 41, 42))])
    tokens, conf = drafter.draft(rows)

    assert tokens[1, :4].tolist() == [7, 40, 41, 42] and tokens[0, 0] == 7
    assert (conf[1, :4] == 1).all() and conf[0, 0] == 1
    assert (tokens != MASK).all()
    logits = drafter.forward_block(rows)
    shifted = np.exp(logits - logits.max(-1, keepdims=True))
    probs = shifted / shifted.sum(-1, keepdims=True)
    assert tokens[1, 4:].tolist() == logits[1, 4:].argmax(-1).tolist()
    assert np.allclose(conf[1, 4:], probs[1, 4:].max(-1), atol=1e-5)


def test_context_appended_in_pieces_equals_appended_at_once(drafter: Drafter) -> None:
    feats = features(9, drafter.config)
    drafter.append_context(feats)
    at_once = drafter.forward_block(masked_block())
    drafter.reset()
    assert drafter.context_len == 0
    for piece in (feats[:4], feats[4:5], feats[5:]):
        drafter.append_context(piece)
    assert drafter.context_len == 9
    assert np.allclose(drafter.forward_block(masked_block()), at_once, atol=1e-5)


def test_truncate_context_equals_a_fresh_shorter_context(drafter: Drafter) -> None:
    feats = features(300, drafter.config)  # past the initial cache capacity, so it must grow
    drafter.append_context(feats)
    drafter.truncate_context(6)
    drafter.append_context(feats[6:8])
    edited = drafter.forward_block(masked_block())
    drafter.reset()
    drafter.append_context(feats[:8])
    assert np.allclose(drafter.forward_block(masked_block()), edited, atol=1e-5)
    with pytest.raises(ValueError):
        drafter.truncate_context(9)


def test_attention_is_non_causal_inside_the_block_and_reads_the_context(drafter: Drafter) -> None:
    feats = features(5, drafter.config)
    drafter.append_context(feats)
    base = drafter.forward_block(masked_block(visible=(40, 41)))
    later_changed = drafter.forward_block(masked_block(visible=(40, 99)))
    assert not np.allclose(base[0, 1], later_changed[0, 1], atol=1e-4)  # position 1 sees position 2

    assert np.array_equal(drafter.forward_block(masked_block(visible=(40, 41))), base)  # no mutation
    drafter.reset()
    drafter.append_context(feats[::-1].copy())
    assert not np.allclose(drafter.forward_block(masked_block(visible=(40, 41))), base, atol=1e-4)


def test_reduced_vocab_scores_only_its_ids_and_reports_target_ids() -> None:
    config, head = small_config(), small_head()
    ids = np.array([250, 3, 17, 120, 5, 299, 64, 200])
    full = Drafter.random(config, head, seed=4, std=0.1)
    reduced = Drafter.random(config, head, seed=4, std=0.1, vocab=DraftVocab(ids))
    for d in (full, reduced):
        d.append_context(features(3, config))
    rows = masked_block(visible=(40,))

    full_logits, reduced_logits = full.forward_block(rows), reduced.forward_block(rows)
    assert reduced_logits.shape == (1, 8, len(ids)) and reduced.scored_vocab_size == len(ids)
    assert np.allclose(reduced_logits, full_logits[..., ids], atol=1e-5)
    tokens, _ = reduced.draft(rows)
    assert set(tokens[0, 2:].tolist()) <= set(ids.tolist())
    assert tokens[0, 2:].tolist() == ids[reduced_logits[0, 2:].argmax(-1)].tolist()
    top_ids, top_p = reduced.draft_topk(rows, 3)
    assert top_ids.shape == (1, 8, 3) and set(top_ids.ravel().tolist()) <= set(ids.tolist())
    assert (np.diff(top_p, axis=-1) <= 0).all()


def test_draft_vocab_from_counts_ranks_by_frequency() -> None:
    counts = np.zeros(VOCAB)
    counts[[9, 4, 7]] = [5, 50, 5]
    assert DraftVocab.from_counts(counts, 3).ids.tolist() == [4, 7, 9]


def test_empty_context_and_batch_rows_share_one_pass(drafter: Drafter) -> None:
    rows = np.concatenate([masked_block(visible=(1,)), masked_block(visible=(2, 3))])
    both = drafter.forward_block(rows)
    assert np.allclose(both[1], drafter.forward_block(rows[1:])[0], atol=1e-5)
