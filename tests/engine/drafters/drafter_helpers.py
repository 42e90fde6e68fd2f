"""Small drafters, heads and z-lab-layout checkpoints built in the tests themselves."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from engine.drafters import DrafterConfig, SharedHead

VOCAB = 300
HIDDEN = 32
TARGET_LAYERS = 8
MASK = VOCAB - 1


def small_config(**changes: object) -> DrafterConfig:
    fields = dict(hidden_size=HIDDEN, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=8, vocab_size=VOCAB, block_size=8, mask_token_id=MASK,
                  target_layer_ids=(1, 3, 5), num_target_layers=TARGET_LAYERS)
    fields.update(changes)
    return DrafterConfig(**fields)


def small_head(seed: int = 0, vocab: int = VOCAB, hidden: int = HIDDEN, n_layer: int = TARGET_LAYERS) -> SharedHead:
    gen = torch.Generator().manual_seed(seed)
    # A separate output head: with a tied random one, every position just predicts its own input.
    embedding = torch.randn(vocab, hidden, generator=gen) * 0.5
    output = torch.randn(vocab, hidden, generator=gen) * 0.5
    return SharedHead.from_tensors(embedding, output, n_layer=n_layer)


def features(n: int, config: DrafterConfig, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, config.feature_size)).astype(np.float32)


def zlab_config_json(hidden: int = HIDDEN, vocab: int = VOCAB, layer_ids: list[int] | None = None,
                     mask: int = MASK, n_target_layers: int = TARGET_LAYERS) -> dict:
    """Field for field the shape of z-lab's published DFlash config.json (e.g. Qwen3-4B-DFlash-b16)."""
    return {
        "architectures": ["DFlashDraftModel"],
        "attention_bias": False,
        "attention_dropout": 0.0,
        "auto_map": {"AutoModel": "dflash.DFlashDraftModel"},
        "block_size": 16,
        "bos_token_id": 151643,
        "dflash_config": {"mask_token_id": mask, "target_layer_ids": layer_ids or [1, 3, 5]},
        "dtype": "bfloat16",
        "eos_token_id": 151645,
        "head_dim": 8,
        "hidden_act": "silu",
        "hidden_size": hidden,
        "initializer_range": 0.02,
        "intermediate_size": 48,
        "layer_types": ["full_attention", "full_attention"],
        "max_position_embeddings": 40960,
        "max_window_layers": 2,
        "model_type": "qwen3",
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "num_key_value_heads": 2,
        "num_target_layers": n_target_layers,
        "rms_norm_eps": 1e-06,
        "rope_scaling": None,
        "rope_theta": 1000000,
        "sliding_window": None,
        "tie_word_embeddings": True,
        "transformers_version": "4.57.3",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": vocab,
    }


def zlab_weights(raw: dict, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random bf16 tensors under the key names of z-lab's model.safetensors."""
    gen = torch.Generator().manual_seed(seed)
    h, hd = raw["hidden_size"], raw["head_dim"]
    q, kv, inter = raw["num_attention_heads"] * hd, raw["num_key_value_heads"] * hd, raw["intermediate_size"]
    n_feat = len(raw["dflash_config"]["target_layer_ids"])

    def mat(rows: int, cols: int) -> torch.Tensor:
        return (torch.randn(rows, cols, generator=gen) * 0.1).to(torch.bfloat16)

    def ones(n: int) -> torch.Tensor:
        return torch.ones(n, dtype=torch.bfloat16)

    w = {"fc.weight": mat(h, n_feat * h), "hidden_norm.weight": ones(h), "norm.weight": ones(h)}
    for i in range(raw["num_hidden_layers"]):
        p = f"layers.{i}."
        w |= {p + "input_layernorm.weight": ones(h), p + "post_attention_layernorm.weight": ones(h),
              p + "self_attn.q_proj.weight": mat(q, h), p + "self_attn.k_proj.weight": mat(kv, h),
              p + "self_attn.v_proj.weight": mat(kv, h), p + "self_attn.o_proj.weight": mat(h, q),
              p + "self_attn.q_norm.weight": ones(hd), p + "self_attn.k_norm.weight": ones(hd),
              p + "mlp.gate_proj.weight": mat(inter, h), p + "mlp.up_proj.weight": mat(inter, h),
              p + "mlp.down_proj.weight": mat(h, inter)}
    return w


def write_zlab_checkpoint(folder: Path, raw: dict, weights: dict[str, torch.Tensor]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(raw, indent=2))
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def save_pair_for(gguf: Path, folder: Path) -> tuple[Path, Path]:
    """A random drafter pair that fits a tiny GGUF target, saved as folder/block and folder/vp."""
    from engine.drafters import Drafter

    head = SharedHead.from_gguf(gguf)
    config = DrafterConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=4,
                           num_key_value_heads=2, head_dim=16, vocab_size=head.info.n_vocab, block_size=8,
                           mask_token_id=head.info.n_vocab - 1, target_layer_ids=(0, 1), num_target_layers=3)
    Drafter.random(config, head, seed=1).save(folder / "block")
    Drafter.random(config, head, seed=2).save(folder / "vp")
    return folder / "block", folder / "vp"
