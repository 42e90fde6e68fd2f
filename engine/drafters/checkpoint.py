"""Drafter checkpoints in the public DFlash layout: a folder with config.json + model.safetensors.

Only safetensors is read (never pickle) and no code from the checkpoint runs. Our own drafters are
written the same way, so z-lab's loaders can read them too; a reduced draft vocabulary, which
DFlash does not have, goes in a separate draft_vocab.safetensors beside them.

A checkpoint may store its large matrices as int8 (`int8=True`): each such weight `name` is int8 with
a float16 scale per output row in `name.int8_scale`, W = q * scale, dequantised when read. That halves
the file, so a drafter of twice the parameters fits the same size (DFlash's own loaders read only the
float layout).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.numpy import load_file as load_numpy, save_file as save_numpy
from safetensors.torch import load_file, save_file

from engine.drafters.cache import atomic_write
from engine.drafters.config import DrafterConfig
from engine.drafters.draft_vocab import DraftVocab
from engine.drafters.errors import DrafterMismatch
from engine.drafters.gguf_head import TargetInfo

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
VOCAB = "draft_vocab.safetensors"
# Some exports carry the target's embedding/head; the target GGUF's own are used instead.
SHARED_KEYS = frozenset({"embed_tokens.weight", "lm_head.weight"})
_DTYPE_NAMES = {torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}
INT8_SCALE = ".int8_scale"


def quantize_int8(weights: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every matrix as int8 rows with a float16 scale per row (absolute maximum / 127); vectors (norms)
    stay float: they weigh nothing."""
    out = {}
    for name, w in weights.items():
        if w.dim() == 2:
            w32 = w.float()
            scale = (w32.abs().amax(dim=1) / 127).clamp_min(1e-12).half()
            out[name] = torch.round(w32 / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
            out[name + INT8_SCALE] = scale
        else:
            out[name] = w
    return out


def dequantize_int8(weights: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """The float weights of a checkpoint that stores some as int8 (`quantize_int8`), in float16."""
    out = {}
    for name, w in weights.items():
        if name.endswith(INT8_SCALE):
            base = name[:-len(INT8_SCALE)]
            if base not in weights or weights[base].dtype != torch.int8:
                raise DrafterMismatch(f"The drafter's {path} holds a scale {name} without its int8 weight.")
            continue
        if w.dtype == torch.int8:
            scale = weights.get(name + INT8_SCALE)
            if scale is None or not scale.is_floating_point() or tuple(scale.shape) != (w.shape[0],) or w.dim() != 2:
                raise DrafterMismatch(f"The drafter's {path} holds {name} as int8 without a scale per row.")
            w = (w.float() * scale.float()[:, None]).half()
        out[name] = w
    return out


def read_checkpoint(folder: Path) -> tuple[DrafterConfig, dict[str, torch.Tensor], DraftVocab | None]:
    """Config (bounds checked first, so nothing is allocated for a config we refuse), weights and the
    optional draft vocabulary; any damage is a DrafterMismatch naming the file."""
    folder = Path(folder)
    for name in (CONFIG, WEIGHTS):
        if not (folder / name).is_file():
            raise DrafterMismatch(f"The drafter folder {folder.name} has no {name}.")
    try:
        raw = json.loads((folder / CONFIG).read_text(encoding="utf-8"))
    except (ValueError, RecursionError):
        raise DrafterMismatch(f"The drafter's {folder / CONFIG} is not valid JSON.") from None
    except OSError as e:
        raise DrafterMismatch(f"The drafter's {folder / CONFIG} cannot be read ({e.strerror or e}).") from None
    config = DrafterConfig.from_hf(raw)
    weights = {k: v for k, v in _load(folder / WEIGHTS, load_file).items() if k not in SHARED_KEYS}
    weights = dequantize_int8(weights, folder / WEIGHTS)
    bad = next((k for k, v in weights.items() if not v.is_floating_point()), None)
    if bad is not None:
        raise DrafterMismatch(f"The drafter's {folder / WEIGHTS} holds {bad} as {weights[bad].dtype}, not floats.")
    vocab = None
    if (folder / VOCAB).is_file():
        ids = _load(folder / VOCAB, load_numpy).get("ids")
        if ids is None or ids.dtype.kind not in "iu":
            raise DrafterMismatch(f"The drafter's {folder / VOCAB} holds no integer tensor 'ids'.")
        vocab = DraftVocab(ids)
    return config, weights, vocab


def _load(path: Path, loader) -> dict:
    """A safetensors file read by `loader`; a truncated or foreign file is one DrafterMismatch."""
    try:
        return loader(str(path))
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as e:
        reason = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise DrafterMismatch(f"The drafter's {path} is damaged or not a safetensors file ({reason}).") from None


def write_checkpoint(folder: Path, config: DrafterConfig, weights: dict[str, torch.Tensor],
                     vocab: DraftVocab | None = None, int8: bool = False) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    raw = config.to_hf()
    raw.pop("dtype", None)
    raw["torch_dtype"] = _DTYPE_NAMES[next(iter(weights.values())).dtype]
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in weights.items()}
    if int8:
        tensors = quantize_int8(tensors)
    with atomic_write(folder / WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    if vocab is not None:
        with atomic_write(folder / VOCAB) as tmp:
            save_numpy({"ids": vocab.ids}, str(tmp))
    else:
        (folder / VOCAB).unlink(missing_ok=True)
    with atomic_write(folder / CONFIG) as tmp:
        tmp.write_text(json.dumps(raw, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_compatible(config: DrafterConfig, target: TargetInfo) -> None:
    """Refuse, with one sentence, a drafter that cannot read this target's features and tokens."""
    if config.hidden_size != target.n_embd:
        raise DrafterMismatch(
            f"The drafter's hidden size {config.hidden_size} does not match the target's {target.n_embd}.")
    if config.vocab_size != target.n_vocab:
        raise DrafterMismatch(
            f"The drafter's vocabulary of {config.vocab_size} tokens does not match the target's {target.n_vocab}.")
    if config.num_target_layers is not None and config.num_target_layers != target.n_layer:
        raise DrafterMismatch(
            f"The drafter was trained for a target with {config.num_target_layers} layers, "
            f"this target has {target.n_layer}.")
    bad = [i for i in config.target_layer_ids if not 0 <= i < target.n_layer]
    if bad:
        raise DrafterMismatch(
            f"The drafter reads target layers {bad}, beyond the target's {target.n_layer} layers (0-based).")
    if not 0 <= config.mask_token_id < target.n_vocab:
        raise DrafterMismatch(
            f"The drafter's mask token id {config.mask_token_id} is outside the target's vocabulary "
            f"of {target.n_vocab}.")


def check_weights(expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]) -> None:
    """Names and shapes must match exactly; strict loading alone would give a torch traceback."""
    missing = sorted(set(expected) - set(found))
    if missing:
        raise DrafterMismatch(f"The drafter's {WEIGHTS} lacks {len(missing)} weights, e.g. {missing[0]}.")
    unknown = sorted(set(found) - set(expected))
    if unknown:
        raise DrafterMismatch(
            f"The drafter's {WEIGHTS} has weights a DFlash drafter does not have, e.g. {unknown[0]}.")
    for name, tensor in expected.items():
        if tuple(found[name].shape) != tuple(tensor.shape):
            raise DrafterMismatch(
                f"The drafter's weight {name} has shape {tuple(found[name].shape)}, "
                f"its config implies {tuple(tensor.shape)}.")
