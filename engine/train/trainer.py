"""Training loop for one drafter (block objective for drafter 1, VP objective for the VP drafter),
resumable from its last checkpoint.

One step = one training sample: its context keys/values are computed once, then `anchors_per_step`
rows are cut from its answer and scored together, each row seeing only the context before its own
anchor. The target's embedding and output head stay frozen; the loss is computed over the draft
vocabulary. Checkpoints are safetensors (weights and AdamW moments) plus a JSON state, written whole
every `checkpoint_every` steps, so a stop loses at most that many steps. Sample order and anchors
depend only on (seed, step): a resumed run makes the same steps an uninterrupted one would.
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.nn import functional as F

from engine.drafters.config import DrafterConfig
from engine.drafters.draft_vocab import DraftVocab
from engine.drafters.model import DFlashModel
from engine.train.data import Dataset
from engine.train.objectives import IGNORE, Rows, build_rows, pick_anchors, sample_positions, visible_prefix
from engine.train.progress import Progress

STATE = "state.json"
WEIGHTS = "state.safetensors"


@dataclass(frozen=True)
class TrainSettings:
    objective: str              # "block" (drafter 1) or "vp"
    steps: int
    anchors_per_step: int = 48
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.01
    lam: float = 1.0            # loss weight decay length
    beta: float = 0.9           # VP prior on the visible prefix length
    seed: int = 0
    checkpoint_every: int = 100
    log_every: int = 20
    eval_every: int = 500       # held-out acceptance, when train() is given an evaluation
    scaled_features: bool = False  # trained on features divided by their channel RMS (Frozen.scale)
    sample_positions: bool = True  # score a weight-proportional sample of positions (objectives.sample_positions)
    labels: str = "hard"        # "hard": the answer's tokens; "topk": the target's top-k distribution there
    bf16: bool = False          # forward matmuls in bfloat16 (torch autocast); weights, AdamW and losses stay float32

    def __post_init__(self):
        if self.objective not in ("block", "vp"):
            raise ValueError(f"objective must be 'block' or 'vp', got {self.objective!r}")
        if self.labels not in ("hard", "topk"):
            raise ValueError(f"labels must be 'hard' or 'topk', got {self.labels!r}")


def feature_columns(config: DrafterConfig, data_layers: tuple[int, ...]) -> np.ndarray:
    """Which columns of the stored features (layers `data_layers` side by side) are the drafter's."""
    missing = [i for i in config.target_layer_ids if i not in data_layers]
    if missing:
        raise ValueError(f"the data holds layers {data_layers}, not the drafter's {missing}")
    width = config.hidden_size
    return np.concatenate([np.arange(data_layers.index(i) * width, (data_layers.index(i) + 1) * width)
                           for i in config.target_layer_ids])


def feature_scale(ds: Dataset, samples: list[int], columns: np.ndarray, n: int = 64, seed: int = 0) -> np.ndarray:
    """Per-channel root mean square of the features over up to `n` samples. Qwen's residual stream
    carries a few channels with an RMS in the hundreds (single values near 4000) beside a median near 1;
    fed raw to the fusion layer they dominate its output until AdamW has shrunk their weights."""
    rng = np.random.default_rng(seed)
    total, count = np.zeros(len(columns)), 0
    for i in rng.choice(samples, size=min(n, len(samples)), replace=False):
        f = ds.sample(int(i))[2][:, columns].astype(np.float64)
        total += (f * f).sum(0)
        count += len(f)
    return np.sqrt(total / max(count, 1)).clip(min=1e-3).astype(np.float32)


class Frozen:
    """The frozen parts a drafter trains against: embedding, draft-vocab output rows, id maps, which
    columns of the stored features are this drafter's target layers, and the per-channel scale the
    features are divided by while training (folded into the fusion layer at export: `export_weights`)."""

    def __init__(self, embedding: torch.Tensor, output: torch.Tensor, vocab: DraftVocab,
                 config: DrafterConfig, data_layers: tuple[int, ...], scale: np.ndarray | None = None):
        self.embedding = embedding.float()
        self.output = output.float()[torch.as_tensor(vocab.ids)]
        self.to_draft = torch.full((embedding.shape[0],), IGNORE, dtype=torch.long)
        self.to_draft[torch.as_tensor(vocab.ids)] = torch.arange(len(vocab))
        self.vocab = vocab
        self.columns = feature_columns(config, data_layers)
        self.data_layers, self.width = tuple(data_layers), len(data_layers) * config.hidden_size
        self.scale = None if scale is None else torch.as_tensor(scale, dtype=torch.float32)

    def features(self, feats: np.ndarray) -> torch.Tensor:
        if feats.shape[1] != self.width:  # columns of the wrong layers would train silently
            raise ValueError(f"stored features are {feats.shape[1]} wide, not the {self.width} of layers "
                             f"{self.data_layers}: the data holds other layers than these")
        x = torch.from_numpy(np.ascontiguousarray(feats[:, self.columns], dtype=np.float32))
        return x if self.scale is None else x / self.scale


def export_weights(model: DFlashModel, frozen: Frozen, dtype: torch.dtype = torch.float16) -> dict[str, torch.Tensor]:
    """The weights of a drafter that reads raw target features: fc(x / s) = (fc.weight / s) x."""
    weights = {k: v.detach().float() for k, v in model.state_dict().items()}
    if frozen.scale is not None:
        weights["fc.weight"] = weights["fc.weight"] / frozen.scale
    return {k: v.to(dtype) for k, v in weights.items()}


def heldout(ds: Dataset, every: int = 20) -> tuple[list[int], list[int]]:
    """(train, held-out) sample indices: held-out = prompt index divisible by `every`."""
    train, held = [], []
    for i in range(len(ds)):
        (held if ds.prompt_index(i) % every == 0 else train).append(i)
    return train, held


def hidden_states(model: DFlashModel, frozen: Frozen, feats: np.ndarray, rows: Rows) -> torch.Tensor:
    """Final hidden states [A, gamma, hidden] of rows cut from one sample."""
    ctx = frozen.features(feats)
    kv = model.context_kv(ctx, torch.arange(len(ctx)))
    visible = torch.arange(len(ctx))[None, :] < torch.as_tensor(rows.anchors)[:, None]
    emb = frozen.embedding[torch.as_tensor(rows.tokens)]
    return model(emb, torch.as_tensor(rows.positions), kv, visible)


def soft_targets(frozen: Frozen, top: tuple[np.ndarray, np.ndarray], positions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The target's distribution over the token at each of `positions` (its top-k after reading the token
    before), restricted to the draft vocabulary and renormalised: (draft ids [S, k], probabilities [S, k];
    ids outside the draft vocabulary get probability 0 and id 0)."""
    ids, logp = top
    rows = positions - 1
    draft = frozen.to_draft[torch.from_numpy(np.maximum(ids[rows], 0).astype(np.int64))]
    known = (draft != IGNORE) & torch.from_numpy(ids[rows] >= 0)
    p = torch.from_numpy(logp[rows].astype(np.float32)).exp() * known
    return draft.clamp_min(0), p / p.sum(1, keepdim=True).clamp_min(1e-12)


def row_loss(model: DFlashModel, frozen: Frozen, feats: np.ndarray, rows: Rows,
             top: tuple[np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """Weighted cross-entropy of the scored positions against the answer's tokens, or with `top` (the
    sample's `Dataset.top`) against the target's own top-k distribution at each position: exact there,
    because the answer is the target's greedy text, and it says how close the runner-ups came."""
    weights = torch.as_tensor(rows.weights)
    scored = weights > 0
    hidden = hidden_states(model, frozen, feats, rows)[scored]
    labels = frozen.to_draft[torch.as_tensor(rows.labels)[scored]]
    w = weights[scored] * (labels != IGNORE)
    logits = hidden @ frozen.output.T
    if top is None:
        losses = F.cross_entropy(logits, labels, ignore_index=IGNORE, reduction="none")
    else:
        ids, p = soft_targets(frozen, top, rows.positions[scored.numpy()])
        losses = -(p * torch.log_softmax(logits, dim=-1).gather(1, ids)).sum(1)
    return (losses * w).sum() / w.sum().clamp_min(1e-6)


def step_rows(settings: TrainSettings, tokens: np.ndarray, n_prompt: int, gamma: int, mask_id: int,
              rng: np.random.Generator) -> Rows:
    anchors = pick_anchors(len(tokens), n_prompt, settings.anchors_per_step, rng)
    visible = (visible_prefix(len(anchors), gamma, settings.beta, rng)
               if settings.objective == "vp" else None)
    rows = build_rows(tokens, anchors, gamma, mask_id, settings.lam, visible)
    return sample_positions(rows, rng) if settings.sample_positions else rows


def _brief(result: dict) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items())


def lr_at(settings: TrainSettings, step: int) -> float:
    if step < settings.warmup:
        return settings.lr * (step + 1) / settings.warmup
    done = (step - settings.warmup) / max(1, settings.steps - settings.warmup)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))


def _save(folder: Path, model: DFlashModel, opt: torch.optim.Optimizer, step: int, settings: TrainSettings,
          log: list[dict]) -> None:
    tensors = {f"model.{k}": v.detach().contiguous() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_parameters()]
    for i, st in opt.state_dict()["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            tensors[f"opt.{names[i]}.{key}"] = st[key].contiguous()
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / WEIGHTS)
    tmp = folder / (STATE + ".tmp")
    tmp.write_text(json.dumps({"step": step, "settings": asdict(settings), "log": log}, indent=1))
    os.replace(tmp, folder / STATE)


def _restore(folder: Path, model: DFlashModel, opt: torch.optim.Optimizer,
             settings: TrainSettings) -> tuple[int, list[dict]]:
    state = json.loads((folder / STATE).read_text())
    # Weights trained on scaled features read raw ones wrongly, and the other way round.
    saved_scaled = state["settings"].get("scaled_features", False)
    if saved_scaled != settings.scaled_features:
        raise ValueError(f"{folder} holds a drafter trained on {'scaled' if saved_scaled else 'raw'} features; "
                         f"this run feeds {'scaled' if settings.scaled_features else 'raw'} ones. "
                         "Delete that folder to train afresh, or keep the scaling it was trained with "
                         "(d2sd train --raw-features).")
    tensors = load_file(str(folder / WEIGHTS))
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")})
    names = [n for n, _ in model.named_parameters()]
    opt_state = opt.state_dict()
    opt_state["state"] = {
        i: {"step": torch.tensor(float(state["step"])), "exp_avg": tensors[f"opt.{n}.exp_avg"],
            "exp_avg_sq": tensors[f"opt.{n}.exp_avg_sq"]}
        for i, n in enumerate(names) if f"opt.{n}.exp_avg" in tensors}
    opt.load_state_dict(opt_state)
    return state["step"], state["log"]


def train(model: DFlashModel, frozen: Frozen, ds: Dataset, samples: list[int], folder: Path,
          settings: TrainSettings, *, stop: Callable[[], bool] = lambda: False, log=print,
          heldout: Callable[[DFlashModel], dict] | None = None) -> tuple[int, list[dict]]:
    """Train `model` in place until settings.steps or until `stop()` says so (checked before each
    step); resumes from `folder` when it holds a checkpoint. Returns (steps done, loss log).
    `heldout(model)` (e.g. evaluate.acceptance on held-out samples) joins the log every eval_every steps."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(settings.seed)
    # fused: one kernel over all parameters; the default per-tensor loop took ~15% of a step on this CPU
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay, fused=True)
    step, history = (_restore(folder, model, opt, settings) if (folder / STATE).exists() else (0, []))
    order = np.random.default_rng(settings.seed).permutation(np.resize(samples, settings.steps))
    c = model.config
    if settings.scaled_features != (frozen.scale is not None):
        raise ValueError("settings.scaled_features must say whether `frozen` scales the features")
    progress = Progress(f"train {settings.objective}", settings.steps, start=step, log=log)
    running, t0 = [], time.time()
    model.train()
    while step < settings.steps and not stop():
        tokens, n_prompt, feats = ds.sample(int(order[step]))
        rng = np.random.default_rng([settings.seed, step])
        rows = step_rows(settings, tokens, n_prompt, c.block_size, c.mask_token_id, rng)
        for group in opt.param_groups:
            group["lr"] = lr_at(settings, step)
        # bf16 matmuls halve a step on CPUs with AVX512-BF16 or AMX (model card, "What held drafter 1 back")
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=settings.bf16):
            loss = row_loss(model, frozen, feats, rows, ds.top(int(order[step])) if settings.labels == "topk" else None)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        running.append(loss.item())
        if step % settings.log_every == 0 or step == settings.steps:
            history.append({"step": step, "loss": float(np.mean(running)), "lr": lr_at(settings, step - 1),
                            "seconds": round(time.time() - t0, 1)})
            running = []
            if heldout is not None and (step % settings.eval_every == 0 or step == settings.steps):
                model.eval()
                history[-1]["heldout"] = heldout(model)
                model.train()
                log(f"[train {settings.objective}] step {step}: held-out {_brief(history[-1]['heldout'])}")
        progress.update(step, f"loss {history[-1]['loss']:.3f}" if history else "")
        if step % settings.checkpoint_every == 0 or step == settings.steps:
            _save(folder, model, opt, step, settings, history)
    _save(folder, model, opt, step, settings, history)
    model.eval()
    return step, history
