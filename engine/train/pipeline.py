"""`d2sd train`: distil drafter 1 and the VP drafter for one GGUF target, stage by stage, each stage
resumable, all under one time budget; running the same command again continues where it stopped.

Stages (in the user cache dir, per target sha256): data -> draft vocabulary -> drafter 1 ("block")
-> VP drafter (initialised from drafter 1) -> held-out evaluation -> export of both checkpoints
(DFlash layout, float16) with a model card to `out`. The data is shared by every recipe; the drafters
and the record of time spent live in a folder of their recipe's own (`run_dir`).
"""
from __future__ import annotations

import hashlib
import json
import platform
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.drafters.checkpoint import write_checkpoint
from engine.drafters.config import DrafterConfig
from engine.drafters.draft_vocab import DraftVocab
from engine.drafters.cache import file_sha256
from engine.drafters.model import DFlashModel
from engine.drafters.shared_head import SharedHead
from engine.paths import cache_dir
from engine.train import data as data_stage
from engine.train.evaluate import acceptance
from engine.train.model_card import write_model_card
from engine.train.trainer import (Frozen, TrainSettings, export_weights, feature_columns, feature_scale,
                                  heldout, train)


@dataclass(frozen=True)
class Recipe:
    data_tokens: int = 60_000                   # answer tokens to generate
    data_layers: tuple[int, ...] = ()           # layers stored (empty: the drafter's)
    layers: tuple[int, ...] = (1, 13, 25)       # the drafter's target layers
    intermediate_size: int = 576
    num_layers: int = 1
    heads: int = 8
    kv_heads: int = 4
    head_dim: int = 64
    block_size: int = 16
    vocab_size: int = 8192                      # draft vocabulary
    topk: int = 16                              # target top-k log-probabilities kept per answer position
    labels: str = "topk"                        # drafters learn the target's top-k (model card ablation) or the answer ("hard")
    int8: bool = False                          # export matrices as int8 (half the file: twice the parameters)
    train_tokens: int = 0                       # train on the first samples holding this many answer tokens (0: all)
    block_steps: int = 2000
    vp_steps: int = 600
    anchors_per_step: int = 48
    lam: float = 1.0                            # loss weight exp(-(k-1)/lam) at the k-th position past the anchor
                                                # (1 learnt the first positions far faster than 7: model card ablation)
    lr: float = 1e-3
    scale_features: bool = True                 # train on features divided by their channel RMS
    sample_positions: bool = True               # score a weight-proportional sample of block positions
    bf16: bool = False                          # training matmuls in bfloat16 (fast on CPUs with AVX512-BF16 or AMX)
    slots: int = 16
    max_new: int = 320
    seed: int = 0

    def stored_layers(self) -> tuple[int, ...]:
        return self.data_layers or self.layers


def data_layers(folder: Path, recipe: Recipe) -> tuple[int, ...]:
    """The layers the data folder holds once it exists (a recipe that does not name them takes them as
    they are: more layers than the drafter reads is fine); else the ones the recipe will store."""
    held = data_stage.stored_layers(folder)
    if held is None:
        return recipe.stored_layers()
    if recipe.data_layers and tuple(recipe.data_layers) != held:
        raise ValueError(f"{folder} holds features of layers {held}, the recipe asks for {tuple(recipe.data_layers)}")
    return held


def work_dir(sha256: str) -> Path:
    return cache_dir() / "train" / sha256[:16]


def run_dir(work: Path, recipe: Recipe) -> Path:
    """Where one recipe's drafters train and the time spent on them is recorded. Another recipe (loss
    weights, steps, sizes, ...) starts afresh there instead of resuming these weights, and its model card
    counts its own time only. Left out: what changes only the export (int8) or how the data is generated
    (slots), so changing those exports again without training again."""
    shaping = {k: v for k, v in asdict(recipe).items() if k not in ("int8", "slots")}
    return work / "runs" / hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:12]


def drafter_config(recipe: Recipe, n_embd: int, n_vocab: int, n_layer: int) -> DrafterConfig:
    # The mask id is the last vocabulary id: padding rows past the tokenizer's real tokens in Qwen
    # GGUFs, so a visible token is never mistaken for the mask.
    return DrafterConfig(
        hidden_size=n_embd, intermediate_size=recipe.intermediate_size, num_hidden_layers=recipe.num_layers,
        num_attention_heads=recipe.heads, num_key_value_heads=recipe.kv_heads, head_dim=recipe.head_dim,
        vocab_size=n_vocab, block_size=recipe.block_size, mask_token_id=n_vocab - 1,
        target_layer_ids=recipe.layers, num_target_layers=n_layer)


def count_vocab(ds: data_stage.Dataset, samples: list[int], n_vocab: int) -> np.ndarray:
    counts = np.zeros(n_vocab, dtype=np.int64)
    for i in samples:
        tokens, n_prompt, _ = ds.sample(i)
        np.add.at(counts, tokens[n_prompt:], 1)
    return counts


def make_data(target: Path, sha: str, folder: Path, recipe: Recipe, *, prompts: list[str] | None = None,
              n_threads: int | None = None, answers: Path | None = None, stop=lambda: False, log=print) -> bool:
    """The data stage: `recipe.data_tokens` answer tokens in `folder`, saved answers first (features
    recaptured), then new ones; True once they are all there. `answers` is rewritten with every answer."""
    from engine.train.prompts import training_prompts

    layers = data_layers(folder, recipe)
    have = data_stage.Dataset(folder).answer_tokens() if (folder / data_stage.META).exists() and \
        list(folder.glob("shard-*.npz")) else 0
    if have < recipe.data_tokens:
        settings = data_stage.DataSettings(layers=layers, slots=recipe.slots, max_new=recipe.max_new,
                                           n_threads=n_threads, topk=recipe.topk)
        saved = data_stage.load_answers(answers, sha, recipe.max_new) if answers and answers.exists() else None
        data_stage.generate(target, sha, prompts or training_prompts(recipe.seed), folder, settings,
                            max_answer_tokens=recipe.data_tokens, saved=saved, stop=stop, log=log)
        if stop():
            return False
    if answers and (not answers.exists() or len(data_stage.load_answers(answers, sha, recipe.max_new)) <
                    len(data_stage.done_prompts(folder))):
        data_stage.save_answers(folder, answers)
    return True


def first_answer_tokens(ds: data_stage.Dataset, samples: list[int], tokens: int) -> list[int]:
    """The first of `samples` up to the one that brings their answers to `tokens`: less data, same held-out
    answers, so acceptance can be measured against data size."""
    kept, total = [], 0
    for i in samples:
        if total >= tokens:
            break
        total += ds.answer_len(i)
        kept.append(i)
    return kept


def setup(target: Path, folder: Path, recipe: Recipe, heldout_every: int = 20):
    """What every drafter trains against, from the data in `folder`: (dataset, train and held-out sample
    indices, drafter config, Frozen with the draft vocabulary counted on the training answers, and the share
    of training answer tokens that vocabulary covers)."""
    ds = data_stage.Dataset(folder)
    train_ids, held_ids = heldout(ds, heldout_every)
    if recipe.train_tokens:
        train_ids = first_answer_tokens(ds, train_ids, recipe.train_tokens)
    layers = data_layers(folder, recipe)
    head = SharedHead.from_gguf(target)
    info = head.info
    config = drafter_config(recipe, info.n_embd, info.n_vocab, info.n_layer)
    counts = count_vocab(ds, train_ids, info.n_vocab)
    vocab = DraftVocab.from_counts(counts, min(recipe.vocab_size, int((counts > 0).sum())))
    embedding, output = head.weights(torch.device("cpu"), torch.float32)
    columns = feature_columns(config, layers)
    scale = feature_scale(ds, train_ids, columns, seed=recipe.seed) if recipe.scale_features else None
    coverage = round(float(counts[vocab.ids].sum() / counts.sum()), 4)
    return ds, train_ids, held_ids, config, Frozen(embedding, output, vocab, config, layers, scale), coverage


def data_record(ds: data_stage.Dataset, train_ids: list[int], held_ids: list[int], frozen: Frozen) -> dict:
    train_tokens = sum(ds.answer_len(i) for i in train_ids)
    return {"samples": len(ds), "train_samples": len(train_ids), "heldout_samples": len(held_ids),
            "answer_tokens": ds.answer_tokens(), "train_answer_tokens": train_tokens, "tokens": int(ds.lengths.sum()), "layers": list(frozen.data_layers)}


def run(target: Path, out: Path, recipe: Recipe, *, hours: float | None = None, prompts: list[str] | None = None,
        n_threads: int | None = None, answers: Path | None = None, log=print) -> dict | None:
    """Run or continue the stages; returns the evaluation when everything is done, None when the
    budget ran out first (run again to continue). `answers`: a `save_answers` file whose answers are
    reused instead of generated, and which is rewritten with every answer once the data stage is done."""
    deadline = None if hours is None else time.time() + hours * 3600

    def out_of_time() -> bool:
        return deadline is not None and time.time() > deadline

    started = time.time()
    sha = file_sha256(target)
    work = work_dir(sha)
    work.mkdir(parents=True, exist_ok=True)
    if n_threads:
        torch.set_num_threads(n_threads)
    runs = run_dir(work, recipe)
    runs.mkdir(parents=True, exist_ok=True)
    record_path = runs / "record.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {"seconds": {}}
    record["recipe"] = asdict(recipe)
    record["answers"] = str(answers) if answers else None

    def spent(stage: str, since: float) -> None:
        record["seconds"][stage] = round(record["seconds"].get(stage, 0) + time.time() - since, 1)
        record_path.write_text(json.dumps(record, indent=1))

    t = time.time()
    if not make_data(target, sha, work / "data", recipe, prompts=prompts, n_threads=n_threads, answers=answers,
                     stop=out_of_time, log=log):
        spent("data", t)
        return None
    spent("data", t)
    ds, train_ids, held_ids, config, frozen, coverage = setup(target, work / "data", recipe)
    vocab = frozen.vocab
    record["data"] = data_record(ds, train_ids, held_ids, frozen)
    record["vocab"] = {"size": len(vocab), "answer_coverage": coverage}

    common = dict(anchors_per_step=recipe.anchors_per_step, lam=recipe.lam, lr=recipe.lr, seed=recipe.seed,
                  scaled_features=frozen.scale is not None, sample_positions=recipe.sample_positions,
                  labels=recipe.labels, bf16=recipe.bf16)

    def heldout_check(drafter1: DFlashModel | None) -> Callable[[DFlashModel], dict]:
        """Held-out acceptance of the model in training: as drafter 1 (`drafter1` None; it then also
        plays the VP drafter) or as the VP drafter beside `drafter1`."""
        def check(model: DFlashModel) -> dict:
            e = acceptance(model if drafter1 is None else drafter1, model, frozen, ds, held_ids)
            return {"tau_dflash": round(e["tau_dflash"], 3), "tau_d2sd": round(e["tau_d2sd"], 3),
                    "first_token": e["acceptance_by_position"][0]}
        return check

    block = DFlashModel.untrained(config, recipe.seed)
    t = time.time()
    steps, block_log = train(block, frozen, ds, train_ids, runs / "block",
                             TrainSettings("block", recipe.block_steps, **common), stop=out_of_time, log=log,
                             heldout=heldout_check(None))
    spent("block", t)
    if steps < recipe.block_steps:
        return None
    vp = DFlashModel.untrained(config, recipe.seed)
    vp_dir = runs / "vp"
    if not (vp_dir / "state.json").exists():
        vp.load_state_dict(block.state_dict())
    t = time.time()
    steps, vp_log = train(vp, frozen, ds, train_ids, vp_dir,
                          TrainSettings("vp", recipe.vp_steps, **{**common, "lr": recipe.lr / 2}),
                          stop=out_of_time, log=log, heldout=heldout_check(block))
    spent("vp", t)
    if steps < recipe.vp_steps:
        return None

    t = time.time()
    evaluation = {"d2sd": acceptance(block, vp, frozen, ds, held_ids),
                  "d2sd_reuse": acceptance(block, block, frozen, ds, held_ids)}
    spent("eval", t)
    record["eval"] = evaluation
    record["loss"] = {"block": block_log[-1]["loss"] if block_log else None,
                      "vp": vp_log[-1]["loss"] if vp_log else None}
    record["heldout_log"] = {name: [{"step": e["step"], **e["heldout"]} for e in history if "heldout" in e]
                             for name, history in (("block", block_log), ("vp", vp_log))}
    record["machine"] = {"platform": platform.platform(), "processor": platform.processor(),
                         "torch_threads": torch.get_num_threads()}
    record["command"] = " ".join(shlex.quote(a) for a in ["d2sd", *sys.argv[1:]]) if sys.argv else ""
    record_path.write_text(json.dumps(record, indent=1))
    for name, model in (("block", block), ("vp", vp)):
        write_checkpoint(out / name, config, export_weights(model, frozen), vocab, int8=recipe.int8)
    write_model_card(out / "MODEL_CARD.md", target.name, sha, record)
    log(f"[train] done in {(time.time() - started) / 60:.1f} min this run: "
        f"held-out tau dflash {evaluation['d2sd']['tau_dflash']:.2f}, d2sd {evaluation['d2sd']['tau_d2sd']:.2f}")
    return record
