"""The llama.cpp target on a tiny random-weight GGUF: trees, commits, KV reuse, text, bad input."""
import logging

import gguf
import numpy as np
import pytest

from engine.gguf_check import ModelFileError
from engine.target import ContextOverflow, Target, TargetError, TargetSettings
from engine.tree import Trie


@pytest.fixture(scope="module")
def target(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=512, n_threads=2)) as t:
        yield t


def branch_logits_alone(target, prompt, row):
    """Logits at each node of one branch, decoded as a plain chain in a fresh cache."""
    target.reset()
    anchor, _ = target.prepare(prompt)
    trie = Trie.rooted(anchor)
    trie.add_row(row, "d")
    logits, _ = target.decode_tree(trie)
    return logits


def test_each_branch_of_a_tree_matches_decoding_it_alone(target):
    prompt = target.tokenize("def hello world")
    rows = [[40, 41, 42, 43], [40, 41, 50], [40, 60, 61], [70]]
    target.reset()
    anchor, _ = target.prepare(prompt)
    trie = Trie.rooted(anchor)
    nodes = [trie.add_row(r, "d") for r in rows]
    tree_logits, _ = target.decode_tree(trie)
    worst = 0.0
    for row, ids in zip(rows, nodes):
        alone = branch_logits_alone(target, prompt, row)
        tree = tree_logits[[0] + ids]
        assert (alone.argmax(1) == tree.argmax(1)).all()
        worst = max(worst, float(np.abs(alone - tree).max()))
    print(f"tiny model: max |logit diff| tree vs branch alone = {worst:.2e}")
    assert worst < 1e-2


def test_commit_of_a_side_branch_then_continuing_equals_decoding_from_scratch(target):
    prompt = target.tokenize("print the list")
    target.reset()
    anchor, _ = target.prepare(prompt)
    trie = Trie.rooted(anchor)
    trie.add_row([30, 31, 32], "d")
    side = trie.add_row([30, 44, 45, 46], "d")
    _, flat = target.decode_tree(trie)
    path = [0, side[0], side[1]]          # accept 30, 44 on the second branch
    target.commit(trie, flat, path)
    assert target.kv_positions(0) == (0, len(prompt) + 1)
    assert all(target.kv_positions(s) == (-1, -1) for s in range(1, 3))
    nxt = Trie.rooted(77)
    nxt.add_row([78], "d")
    cont, _ = target.decode_tree(nxt)

    scratch_trie = Trie.rooted(77)
    scratch_trie.add_row([78], "d")
    target.reset()
    target.prepare(prompt + [30, 44, 77])
    scratch, _ = target.decode_tree(scratch_trie)
    target.reset()
    target.prepare(prompt + [30, 31, 77])
    wrong_branch, _ = target.decode_tree(scratch_trie)
    # batch shapes differ (prefill vs tree), so only batch-shape noise may remain: ~1e-3 on this model,
    # far below what keeping the wrong branch would change
    assert (cont.argmax(1) == scratch.argmax(1)).all()
    assert np.abs(cont - scratch).max() < 0.02 < np.abs(wrong_branch - scratch).max()


def test_kv_cache_is_reused_for_the_common_prefix_of_the_next_turn(target):
    target.reset()
    first = target.tokenize("hello world def")
    target.prepare(first)
    second = first + target.tokenize(" return data", special=False)
    _, reused = target.prepare(second)
    assert reused == len(first) - 1
    anchor = second[-1]
    reused_logits, _ = target.decode_tree(Trie.rooted(anchor))
    target.reset()
    target.prepare(second)
    fresh_logits, _ = target.decode_tree(Trie.rooted(anchor))
    np.testing.assert_allclose(reused_logits, fresh_logits, atol=1e-4)


def test_a_warm_up_leaves_an_empty_cache_and_the_same_answers(target):
    prompt = target.tokenize("hello world def")
    target.reset()
    anchor, _ = target.prepare(prompt)
    before, _ = target.decode_tree(Trie.rooted(anchor))
    target.warm_up()
    assert target.tokens == [] and target.kv_positions() == (-1, -1)
    anchor, reused = target.prepare(prompt)
    after, _ = target.decode_tree(Trie.rooted(anchor))
    assert reused == 0
    np.testing.assert_allclose(after, before, atol=1e-4)


def test_a_context_for_one_sequence_refuses_a_tree_and_gives_the_same_chain_logits(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=256, n_threads=1, n_seq_max=8)) as t:
        prompt = t.tokenize("def hello world")
        anchor, _ = t.prepare(prompt)
        chain = Trie.rooted(anchor)
        chain.add_row([5, 6, 7], "d")
        many, _ = t.decode_tree(chain)
        t.set_sequences(1)
        assert (t.n_seq_max, t.tokens) == (1, [])  # a new context: the cache starts empty
        anchor, reused = t.prepare(prompt)
        assert reused == 0
        one, _ = t.decode_tree(chain)
        np.testing.assert_allclose(one, many, atol=1e-4)
        tree = Trie.rooted(anchor)
        tree.add_row([5, 6], "d")
        tree.add_row([8, 9], "d")
        with pytest.raises(TargetError, match="n_seq_max=1"):
            t.decode_tree(tree)
        for bad in (0, 9):
            with pytest.raises(ValueError, match="1..8"):
                t.set_sequences(bad)
        t.set_sequences(8)
        t.prepare(prompt)
        assert t.n_seq_max == 8 and len(t.decode_tree(tree)[0]) == len(tree)


def test_text_round_trip_chat_template_and_utf8_streaming(target):
    text = "hello world: café € 😀"
    tokens = target.tokenize(text, special=False)
    assert target.detokenize(tokens).strip() == text
    stream = target.text_stream()
    pieces = [stream.push(t) for t in tokens] + [stream.flush()]
    assert "".join(pieces).strip() == text
    assert "\ufffd" not in "".join(pieces)
    assert any(p == "" for p in pieces), "byte-fallback tokens of one character must be held back"
    prompt = target.chat_prompt([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert prompt.startswith("<|im_start|>system\nbe brief<|im_end|>") and prompt.endswith("<|im_start|>assistant\n")
    ids = target.chat_tokens([{"role": "user", "content": "hi"}])
    assert target.tokenize("<|im_start|>")[-1] in ids


def test_context_overflow_is_a_clear_error(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=32, n_threads=1, n_seq_max=4)) as small:
        n = small.n_ctx  # llama.cpp rounds the context up to its cell granularity
        with pytest.raises(ContextOverflow, match=f"context holds {n}"):
            small.prepare([300 + i % 100 for i in range(n + 8)])
        anchor, _ = small.prepare([300 + i % 100 for i in range(n - 2)])
        trie = Trie.rooted(anchor)
        trie.add_row([1, 2, 3, 4], "d")
        with pytest.raises(ContextOverflow, match="start a new chat"):
            small.decode_tree(trie)


def test_feature_capture_returns_chosen_layers_for_every_node(tiny_gguf):
    with Target.load(tiny_gguf, TargetSettings(n_ctx=256, n_threads=1, capture_layers=(0, 1))) as t:
        prompt = t.tokenize("def hello")
        anchor, _ = t.prepare(prompt)
        assert t.features.shape == (len(prompt) - 1, 2 * 64)
        trie = Trie.rooted(anchor)
        trie.add_row([40, 41], "d")
        trie.add_row([50], "d")
        _, flat = t.decode_tree(trie)
        assert t.features.shape == (4, 128)
        t.commit(trie, flat, [0, 3])
        assert t.features.shape == (2, 128)
        assert np.isfinite(t.features).all() and np.abs(t.features).sum() > 0


def test_an_interrupt_during_feature_capture_surfaces_after_the_decode(tiny_gguf):
    """Ctrl-C or a stop signal usually lands inside the capture callback, where ctypes would swallow it and
    leave the features short; it must reach the caller, and the target must still work afterwards."""
    with Target.load(tiny_gguf, TargetSettings(n_ctx=256, n_threads=1, capture_layers=(0, 1))) as t:
        prompt = t.tokenize("def hello(name):")
        t.prepare(prompt)
        expected = t.features.copy()
        t.reset()
        real_get, calls = t.llama.capture._get, []

        def interrupted_once(*args):
            calls.append(args)
            if len(calls) == 2:  # the second layer's copy: the first one is already kept
                raise KeyboardInterrupt
            return real_get(*args)

        t.llama.capture._get = interrupted_once
        with pytest.raises(KeyboardInterrupt):
            t.prepare(prompt)
        t.reset()
        t.prepare(prompt)
        np.testing.assert_array_equal(t.features, expected)


def test_llama_cpps_own_error_reaches_the_message_and_the_log(tmp_path, caplog):
    # a header engine.gguf_check accepts but llama.cpp refuses: it logs why at its ERROR level (4)
    path = tmp_path / "unknown-arch.gguf"
    w = gguf.GGUFWriter(str(path), "d2sdtest")
    w.add_block_count(2)
    w.add_embedding_length(8)
    w.add_context_length(64)
    w.add_token_list([b"a", b"b", b"c"])
    w.add_tensor("token_embd.weight", np.zeros((3, 8), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with caplog.at_level(logging.WARNING, logger="llama.cpp"):
        with pytest.raises(ModelFileError, match="unknown model architecture: 'd2sdtest'") as err:
            Target.load(path)
    assert "\n" not in str(err.value)
    assert any(r.levelno == logging.ERROR and "unknown model architecture" in r.getMessage() for r in caplog.records)
