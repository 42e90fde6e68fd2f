"""The whole pipeline on the tiny random GGUF: data generation, resume, training, export, reload."""
import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.drafters import Drafter, SharedHead
from engine.drafters.model import DFlashModel
from engine.train import data as data_stage
from engine.train.pipeline import Recipe, count_vocab, data_layers, drafter_config, run, run_dir, work_dir
from engine.train.trainer import Frozen, TrainSettings, heldout, train
from engine.drafters.cache import file_sha256
from engine.drafters.draft_vocab import DraftVocab

PROMPTS = [f"Write a function number {i} that adds {i} to a list of numbers." for i in range(40)]
RECIPE = Recipe(data_tokens=240, layers=(0, 1), intermediate_size=32, heads=2, kv_heads=1, head_dim=16,
                block_size=4, vocab_size=64, block_steps=6, vp_steps=4, anchors_per_step=8, slots=4,
                max_new=24)


@pytest.fixture(scope="module")
def tiny_data(tiny_gguf, tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    settings = data_stage.DataSettings(layers=(0, 1), slots=4, max_new=24, shard_samples=3, n_threads=1)
    n = data_stage.generate(tiny_gguf, file_sha256(tiny_gguf), PROMPTS, folder, settings, max_answer_tokens=120,
                            log=lambda m: None)
    return folder, n


def test_data_is_the_targets_greedy_answer_with_its_features(tiny_data, tiny_gguf):
    from engine.target import Target, TargetSettings
    from engine.train.sequences import Sequences

    folder, n = tiny_data
    ds = data_stage.Dataset(folder)
    assert n == ds.answer_tokens() >= 120 and len(ds) >= 5
    tokens, n_prompt, feats = ds.sample(1)
    assert feats.shape == (len(tokens) - 1, 2 * 64) and feats.dtype == np.float16
    with Target.load(tiny_gguf, TargetSettings(n_ctx=256, n_threads=1, capture_layers=(0, 1))) as t:
        anchor, _ = t.prepare(list(tokens[:n_prompt]))
        # the stored answer is what plain greedy decoding of the same prompt produces, and the stored
        # top-k is that decoding's own distribution at every answer position
        out, expected = [], []
        for tok in [anchor] + list(tokens[n_prompt:-1]):
            logits, _ = Sequences(t).decode([(0, len(t.tokens) + len(out), int(tok))])
            out.append(int(logits[0].argmax()))
            expected.append(torch.log_softmax(torch.from_numpy(logits[0]), -1).topk(16))
        assert out[:len(tokens) - n_prompt] == list(tokens[n_prompt:])
    ids, logp = ds.top(1)
    assert ids.shape == logp.shape == (len(tokens) - 1, 16) and (ids[:n_prompt - 1] == -1).all()
    assert list(ids[n_prompt - 1:, 0]) == list(tokens[n_prompt:])
    for row, e in zip(range(n_prompt - 1, len(tokens) - 1), expected):
        np.testing.assert_allclose(logp[row].astype(np.float32), e.values.numpy(), atol=0.02)
        assert set(ids[row, :8]) == set(e.indices.numpy()[:8])  # past the first few, near-ties may swap


def test_data_generation_resumes_without_repeating_prompts(tiny_data, tiny_gguf):
    folder, n = tiny_data
    before = data_stage.done_prompts(folder)
    settings = data_stage.DataSettings(layers=(0, 1), slots=4, max_new=24, shard_samples=3, n_threads=1)
    more = data_stage.generate(tiny_gguf, file_sha256(tiny_gguf), PROMPTS, folder, settings,
                               max_answer_tokens=n + 60, log=lambda m: None)
    after = data_stage.done_prompts(folder)
    ds = data_stage.Dataset(folder)
    assert more >= n + 60 and before < after
    assert len(after) == len(ds)  # every prompt answered once
    with pytest.raises(ValueError, match="another layers"):
        data_stage.generate(tiny_gguf, file_sha256(tiny_gguf), PROMPTS, folder,
                            data_stage.DataSettings(layers=(0,), max_new=24), max_answer_tokens=1)


def test_saved_answers_rebuild_the_data_with_one_prefill_each(tiny_data, tiny_gguf, tmp_path, monkeypatch):
    from engine.train.sequences import Sequences

    folder, _ = tiny_data
    sha = file_sha256(tiny_gguf)
    path = tmp_path / "answers.npz"
    data_stage.save_answers(folder, path)
    saved = data_stage.load_answers(path, sha, max_new=24)
    old = data_stage.Dataset(folder)
    assert len(saved) == len(old)

    def no_generation(*args):
        raise AssertionError("a saved answer was generated again")

    monkeypatch.setattr(Sequences, "decode", no_generation)
    settings = data_stage.DataSettings(layers=(0, 1), slots=4, max_new=24, shard_samples=3, n_threads=1)
    n = data_stage.generate(tiny_gguf, sha, PROMPTS, tmp_path / "fresh", settings,
                            max_answer_tokens=old.answer_tokens(), saved=saved, log=lambda m: None)
    new = data_stage.Dataset(tmp_path / "fresh")
    assert n == old.answer_tokens() and len(new) == len(old)
    by_prompt = {old.prompt_index(i): old.sample(i) for i in range(len(old))}
    for i in range(len(new)):
        tokens, n_prompt, feats = new.sample(i)
        old_tokens, old_n_prompt, old_feats = by_prompt[new.prompt_index(i)]
        assert list(tokens) == list(old_tokens) and n_prompt == old_n_prompt
        # one prefill instead of token-by-token decodes: llama.cpp's batch noise, a float16 step or two
        np.testing.assert_allclose(feats.astype(np.float32), old_feats.astype(np.float32), atol=0.02, rtol=0)
        old_i = next(j for j in range(len(old)) if old.prompt_index(j) == new.prompt_index(i))
        answer = slice(n_prompt - 1, None)  # prompt rows: the generated data kept only the last one
        np.testing.assert_allclose(new.top(i)[1][answer].astype(np.float32),
                                   old.top(old_i)[1][answer].astype(np.float32), atol=0.05)
    with pytest.raises(ValueError, match="another target"):
        data_stage.load_answers(path, "0" * 64, max_new=24)
    with pytest.raises(ValueError, match="at most 24 tokens"):
        data_stage.load_answers(path, sha, max_new=32)


def test_training_reads_the_layers_the_data_holds_not_the_recipes_default(tiny_data, tiny_gguf, tmp_path):
    folder = tiny_data[0]                                      # holds layers (0, 1)
    drafter_reads_1 = replace(RECIPE, layers=(1,))
    assert data_layers(folder, drafter_reads_1) == (0, 1)     # the drafter's layer 1 is the second column block
    assert data_layers(tmp_path / "empty", drafter_reads_1) == (1,)
    with pytest.raises(ValueError, match="holds features of layers"):
        data_layers(folder, replace(RECIPE, data_layers=(1,)))
    ds, config, _ = _setup(tiny_gguf, folder)
    head = SharedHead.from_gguf(tiny_gguf)
    emb, out = head.weights(torch.device("cpu"), torch.float32)
    one_layer = drafter_config(drafter_reads_1, head.info.n_embd, head.info.n_vocab, head.info.n_layer)
    wrong = Frozen(emb, out, DraftVocab(np.arange(8)), one_layer, (1,))   # as if the data held layer 1 alone
    with pytest.raises(ValueError, match="wide"):
        wrong.features(ds.sample(0)[2])
    right = Frozen(emb, out, DraftVocab(np.arange(8)), one_layer, (0, 1))
    assert np.array_equal(right.features(ds.sample(0)[2]).numpy(), ds.sample(0)[2][:, head.info.n_embd:].astype(np.float32))


def _setup(tiny_gguf, folder, scale=None):
    ds = data_stage.Dataset(folder)
    head = SharedHead.from_gguf(tiny_gguf)
    config = drafter_config(RECIPE, head.info.n_embd, head.info.n_vocab, head.info.n_layer)
    emb, out = head.weights(torch.device("cpu"), torch.float32)
    vocab = DraftVocab.from_counts(count_vocab(ds, range(len(ds)), head.info.n_vocab), 64)
    return ds, config, Frozen(emb, out, vocab, config, (0, 1), scale)


def test_training_resumes_to_the_same_weights_and_a_kill_loses_at_most_one_interval(tiny_data, tiny_gguf, tmp_path):
    ds, config, frozen = _setup(tiny_gguf, tiny_data[0])
    samples, _ = heldout(ds)
    settings = TrainSettings("block", steps=8, anchors_per_step=4, checkpoint_every=3, warmup=2)
    straight = DFlashModel.untrained(config, 0)
    train(straight, frozen, ds, samples, tmp_path / "a", settings, log=lambda m: None)

    calls = {"n": 0}

    def killed_after_five():
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt  # like a kill: no final save
        return False

    resumed = DFlashModel.untrained(config, 0)
    with pytest.raises(KeyboardInterrupt):
        train(resumed, frozen, ds, samples, tmp_path / "b", settings, stop=killed_after_five, log=lambda m: None)
    assert json.loads((tmp_path / "b" / "state.json").read_text())["step"] == 3  # steps 4..5 lost, < one interval
    resumed = DFlashModel.untrained(config, 0)
    step, history = train(resumed, frozen, ds, samples, tmp_path / "b", settings, log=lambda m: None)
    assert step == 8 and history
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_vp_training_changes_weights_and_lowers_loss(tiny_data, tiny_gguf, tmp_path):
    from engine.train.trainer import row_loss, step_rows

    ds, config, frozen = _setup(tiny_gguf, tiny_data[0])
    samples, _ = heldout(ds)
    model = DFlashModel.untrained(config, 0)
    settings = TrainSettings("vp", steps=30, anchors_per_step=8, lr=3e-3, warmup=2, checkpoint_every=100)
    longest = max(samples, key=lambda i: len(ds.sample(i)[0]) - ds.sample(i)[1])
    tokens, n_prompt, feats = ds.sample(longest)
    rows = step_rows(settings, tokens, n_prompt, config.block_size, config.mask_token_id, np.random.default_rng(5))
    with torch.no_grad():
        before = float(row_loss(model, frozen, feats, rows))
    train(model, frozen, ds, [longest], tmp_path, settings, log=lambda m: None)
    with torch.no_grad():
        after = float(row_loss(model, frozen, feats, rows))
    assert after < before - 0.1


def test_bf16_training_keeps_float32_weights_and_follows_the_float32_run(tiny_data, tiny_gguf, tmp_path):
    ds, config, frozen = _setup(tiny_gguf, tiny_data[0])
    samples, _ = heldout(ds)
    runs = {}
    for bf16 in (False, True):
        model = DFlashModel.untrained(config, 0)
        settings = TrainSettings("block", steps=20, anchors_per_step=8, lr=3e-3, warmup=2, log_every=10, bf16=bf16)
        _, history = train(model, frozen, ds, samples, tmp_path / str(bf16), settings, log=lambda m: None)
        runs[bf16] = model, [h["loss"] for h in history]
    (full, full_loss), (half, half_loss) = runs[False], runs[True]
    assert all(p.dtype == torch.float32 for p in half.parameters())
    # the matmuls really ran in bfloat16 (the weights moved apart), and learnt the same (the losses agree)
    assert not torch.equal(full.fc.weight, half.fc.weight)
    assert half_loss[-1] < half_loss[0] and np.allclose(full_loss, half_loss, rtol=0.02)


def test_pipeline_exports_a_pair_that_loads_as_drafters(tiny_gguf, tmp_path):
    out = tmp_path / "pair"
    record = run(tiny_gguf, out, RECIPE, prompts=PROMPTS, n_threads=1, log=lambda m: None)
    assert record is not None and {"data", "block", "vp", "eval"} <= set(record["seconds"])
    head = SharedHead.from_gguf(tiny_gguf)
    for name in ("block", "vp"):
        drafter = Drafter.load(out / name, head, device="cpu")
        assert drafter.config.target_layer_ids == (0, 1) and drafter.vocab is not None
        assert len(drafter.vocab) <= 64
    card = (out / "MODEL_CARD.md").read_text()
    assert "Held-out acceptance" in card and "sharegpt" in card.lower()
    assert "| drafter 1 | 6 |" in card and "| VP | 4 |" in card  # the held-out log at the last steps
    e = record["eval"]["d2sd"]
    assert e["rows"] > 0 and 1.0 <= e["tau_dflash"] <= e["tau_d2sd"] <= RECIPE.block_size
    # the training logs end with the held-out figures of the exported weights
    work = work_dir(file_sha256(tiny_gguf))
    runs = run_dir(work, RECIPE)
    block_end = json.loads((runs / "block" / "state.json").read_text())["log"][-1]["heldout"]
    vp_end = json.loads((runs / "vp" / "state.json").read_text())["log"][-1]["heldout"]
    assert block_end["tau_dflash"] == round(record["eval"]["d2sd_reuse"]["tau_dflash"], 3)
    assert block_end["tau_d2sd"] == round(record["eval"]["d2sd_reuse"]["tau_d2sd"], 3)
    assert vp_end["tau_d2sd"] == round(e["tau_d2sd"], 3)
    # a second run finds every stage done and does not generate or train again; asked to, it keeps the
    # answers' token ids for a machine without this cache
    answers = tmp_path / "answers.npz"
    again = run(tiny_gguf, out, RECIPE, prompts=PROMPTS, n_threads=1, answers=answers, log=lambda m: None)
    assert again["data"] == record["data"]
    assert len(data_stage.load_answers(answers, file_sha256(tiny_gguf), RECIPE.max_new)) == record["data"]["samples"]
    assert record["data"]["layers"] == [0, 1] and "layers (0, 1)" in card
    assert again["seconds"]["block"] == pytest.approx(record["seconds"]["block"], abs=1.0)   # nothing trained
    # another recipe trains afresh beside it on the same data (it used to resume these weights)
    other = replace(RECIPE, lam=2.0)
    third = run(tiny_gguf, tmp_path / "other", other, prompts=PROMPTS, n_threads=1, log=lambda m: None)
    assert run_dir(work, other) != runs and third["data"] == record["data"]
    assert json.loads((run_dir(work, other) / "block" / "state.json").read_text())["settings"]["lam"] == 2.0
    assert json.loads((runs / "block" / "state.json").read_text())["settings"]["lam"] == RECIPE.lam
    assert run_dir(work, replace(RECIPE, int8=True)) == run_dir(work, RECIPE)   # an export choice only


def test_budget_that_runs_out_stops_cleanly(tiny_gguf, tmp_path, monkeypatch):
    monkeypatch.setenv("D2SD_CACHE_DIR", str(tmp_path / "cache"))
    assert run(tiny_gguf, tmp_path / "pair", RECIPE, hours=0.0, prompts=PROMPTS, n_threads=1, log=lambda m: None) is None
    assert not (tmp_path / "pair").exists()


def test_feature_scale_is_folded_into_the_exported_fusion_layer(tiny_data, tiny_gguf):
    from engine.train.trainer import export_weights, feature_columns, feature_scale, hidden_states, step_rows

    ds, config, plain = _setup(tiny_gguf, tiny_data[0])
    samples, _ = heldout(ds)
    scale = feature_scale(ds, samples, feature_columns(config, (0, 1)))
    assert scale.shape == (2 * 64,) and (scale > 0).all()
    # The tiny model's channels are all of one size; a spread like Qwen's makes the fold matter.
    scale = scale * np.geomspace(0.05, 20, len(scale)).astype(np.float32)
    scaled = _setup(tiny_gguf, tiny_data[0], scale)[2]
    tokens, n_prompt, feats = ds.sample(samples[0])
    assert torch.allclose(scaled.features(feats) * torch.as_tensor(scale), plain.features(feats), rtol=1e-5)

    trained = DFlashModel.untrained(config, 3)
    exported = DFlashModel(config)
    exported.load_state_dict(export_weights(trained, scaled, torch.float32))
    rows = step_rows(TrainSettings("block", 1, anchors_per_step=4), tokens, n_prompt, config.block_size,
                     config.mask_token_id, np.random.default_rng(0))
    with torch.no_grad():
        # what the trainer sees (scaled features) is what the exported drafter computes from raw ones
        assert torch.allclose(hidden_states(trained, scaled, feats, rows),
                              hidden_states(exported, plain, feats, rows), atol=1e-4)
        assert not torch.allclose(hidden_states(trained, plain, feats, rows),
                                  hidden_states(exported, plain, feats, rows), atol=1e-2)


def test_resume_refuses_a_checkpoint_trained_on_other_feature_scaling(tiny_data, tiny_gguf, tmp_path):
    from engine.train.trainer import feature_columns, feature_scale

    ds, config, raw = _setup(tiny_gguf, tiny_data[0])
    samples, _ = heldout(ds)
    settings = TrainSettings("block", steps=2, anchors_per_step=4, warmup=1)
    train(DFlashModel.untrained(config, 0), raw, ds, samples, tmp_path, settings, log=lambda m: None)
    scaled = _setup(tiny_gguf, tiny_data[0], feature_scale(ds, samples, feature_columns(config, (0, 1))))[2]
    more = TrainSettings("block", steps=4, anchors_per_step=4, warmup=1, scaled_features=True)
    with pytest.raises(ValueError, match="trained on raw features"):
        train(DFlashModel.untrained(config, 0), scaled, ds, samples, tmp_path, more, log=lambda m: None)
    with pytest.raises(ValueError, match="scaled_features"):
        train(DFlashModel.untrained(config, 0), scaled, ds, samples, tmp_path / "b", settings, log=lambda m: None)


def test_top_logprobs_are_the_most_likely_tokens_most_likely_first():
    logits = np.random.default_rng(0).normal(size=(5, 300)).astype(np.float32) * 3
    ids, logp = data_stage.top_logprobs(logits, 4)
    want = torch.log_softmax(torch.from_numpy(logits), -1).topk(4)
    assert ids.dtype == np.int32 and logp.dtype == np.float16
    assert ids.tolist() == want.indices.tolist()
    np.testing.assert_allclose(logp.astype(np.float32), want.values.numpy(), atol=2e-3)


def test_topk_labels_of_a_certain_target_are_the_hard_labels_and_spread_ones_differ(tiny_data, tiny_gguf):
    from engine.train.trainer import row_loss, step_rows

    ds, config, frozen = _setup(tiny_gguf, tiny_data[0])
    i = max(range(len(ds)), key=lambda j: len(ds.sample(j)[0]) - ds.sample(j)[1])
    tokens, n_prompt, feats = ds.sample(i)
    settings = TrainSettings("block", steps=1, anchors_per_step=8, sample_positions=False)
    rows = step_rows(settings, tokens, n_prompt, config.block_size, config.mask_token_id, np.random.default_rng(1))
    model = DFlashModel.untrained(config, 0)
    certain_ids = np.full((len(tokens) - 1, 3), -1, dtype=np.int32)
    certain_ids[:, 0] = tokens[1:]
    certain = (certain_ids, np.zeros((len(tokens) - 1, 3), dtype=np.float16))
    with torch.no_grad():
        hard = float(row_loss(model, frozen, feats, rows))
        assert float(row_loss(model, frozen, feats, rows, certain)) == pytest.approx(hard, rel=1e-5)
        assert float(row_loss(model, frozen, feats, rows, ds.top(i))) != pytest.approx(hard, rel=1e-3)


def test_ablation_trains_each_variant_once_on_the_same_data(tiny_gguf, tmp_path):
    from engine.train import ablation

    recipe = replace(RECIPE, data_tokens=100)
    with pytest.raises(ValueError, match="field=value"):
        ablation.run(tiny_gguf, None, recipe, ["base", "labels"], steps=3, log=lambda m: None)
    assert not list(work_dir(file_sha256(tiny_gguf)).glob("ablation-data*"))  # refused before any data work
    answers = tmp_path / "answers.npz"
    data_stage.write_answers(answers, {i: (np.array(t), n) for i, (t, n) in enumerate(_answers(tiny_gguf))},
                             file_sha256(tiny_gguf), recipe.max_new)
    first = ablation.run(tiny_gguf, answers, recipe, ["base", "labels=topk,intermediate_size=48"], steps=3,
                         n_threads=1, log=lambda m: None)
    assert set(first) == {"base@3", "labels=topk,intermediate_size=48@3"}
    assert first["labels=topk,intermediate_size=48@3"]["parameters"] > first["base@3"]["parameters"]
    assert all(r["steps"] == 3 and r["heldout_rows"] > 0 and 0 <= r["first_token"] <= 1 for r in first.values())
    assert all(0 <= r["first_token_int8"] <= 1 and r["tau_dflash_int8"] >= 1 for r in first.values())
    again = ablation.run(tiny_gguf, answers, recipe, ["base"], steps=3, log=lambda m: None)
    assert again["base@3"] == first["base@3"]  # done already: not trained again
    longer = ablation.run(tiny_gguf, answers, recipe, ["base"], steps=4, log=lambda m: None)
    assert longer["base@3"] == first["base@3"] and longer["base@4"]["steps"] == 4  # both lengths kept
    assert "| base |" in ablation.table(again)
    less = ablation.run(tiny_gguf, answers, recipe, ["train_tokens=30"], steps=3, log=lambda m: None)
    assert less["train_tokens=30@3"]["heldout_rows"] == first["base@3"]["heldout_rows"]  # the same held-out answers
    assert 30 <= less["train_tokens=30@3"]["data"]["train_answer_tokens"] < first["base@3"]["data"]["train_answer_tokens"]


def test_ablation_variants_read_other_layers_of_the_stored_features(tiny_gguf, tmp_path):
    from engine.train import ablation

    recipe = replace(RECIPE, data_tokens=100, layers=(0,), data_layers=(0, 1))
    answers = tmp_path / "answers.npz"
    data_stage.write_answers(answers, {i: (np.array(t), n) for i, (t, n) in enumerate(_answers(tiny_gguf))},
                             file_sha256(tiny_gguf), recipe.max_new)
    rows = ablation.run(tiny_gguf, answers, recipe, ["base", "layers=1", "layers=0+1"], steps=2, n_threads=1,
                        log=lambda m: None)
    assert all(r["data"]["layers"] == [0, 1] for r in rows.values())
    # one fused layer against two: the fusion layer's input width is what differs
    assert rows["layers=1@2"]["parameters"] == rows["base@2"]["parameters"] < rows["layers=0+1@2"]["parameters"]


def test_ablation_refuses_data_layers_that_are_not_numbers(capsys):
    from engine.train import ablation

    assert ablation.main(["--data-layers", "1+x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["ablation: error: --data-layers '1+x' is not layer numbers joined by +"]


def _answers(tiny_gguf) -> list[tuple[list[int], int]]:
    """Token ids as the answers file holds them: prompt then a made-up answer (recapture reads any text)."""
    from engine.target import Target, TargetSettings

    with Target.load(tiny_gguf, TargetSettings(n_ctx=256, n_threads=1)) as t:
        prompts = [t.chat_tokens([{"role": "user", "content": p}]) for p in PROMPTS[:24]]
    return [(p + p[:20], len(p)) for p in prompts]
