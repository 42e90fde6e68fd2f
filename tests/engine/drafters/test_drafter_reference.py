"""The drafter's maths against a plain numpy statement of z-lab's DFlash forward pass: context keys and
values from k_proj/v_proj of hidden_norm(fc(features)) concatenated before the block's own, RoPE on
absolute positions, q/k RMS norms, GQA (query head h reads key head h // groups), no mask."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from safetensors.torch import load_file

from engine.drafters import Drafter
from tests.engine.drafters.drafter_helpers import (MASK, features, small_head, write_zlab_checkpoint,
                                                   zlab_config_json, zlab_weights)


def rms(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x: np.ndarray, positions: np.ndarray, theta: float) -> np.ndarray:
    d = x.shape[-1]
    freqs = positions[:, None] * (1.0 / theta ** (np.arange(0, d, 2) / d))[None, :]
    cos, sin = np.cos(np.concatenate([freqs, freqs], -1)), np.sin(np.concatenate([freqs, freqs], -1))
    rotated = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], -1)
    return x * cos[:, None] + rotated * sin[:, None]


def reference_logits(raw: dict, w: dict[str, np.ndarray], feats: np.ndarray, block_emb: np.ndarray,
                     out_head: np.ndarray) -> np.ndarray:
    eps, theta, d = raw["rms_norm_eps"], raw["rope_theta"], raw["head_dim"]
    heads, kv_heads = raw["num_attention_heads"], raw["num_key_value_heads"]
    n_ctx, n = len(feats), len(block_emb)
    ctx = rms(feats @ w["fc.weight"].T, w["hidden_norm.weight"], eps)
    x = block_emb
    for i in range(raw["num_hidden_layers"]):
        p = f"layers.{i}."
        h = rms(x, w[p + "input_layernorm.weight"], eps)
        q = rms((h @ w[p + "self_attn.q_proj.weight"].T).reshape(n, heads, d), w[p + "self_attn.q_norm.weight"], eps)
        q = rope(q, np.arange(n_ctx, n_ctx + n), theta)
        both = np.concatenate([ctx, h])
        k = rope(rms((both @ w[p + "self_attn.k_proj.weight"].T).reshape(-1, kv_heads, d),
                     w[p + "self_attn.k_norm.weight"], eps), np.arange(n_ctx + n), theta)
        v = (both @ w[p + "self_attn.v_proj.weight"].T).reshape(-1, kv_heads, d)
        attn = np.empty((n, heads, d))
        for hq in range(heads):
            kv = hq // (heads // kv_heads)
            s = q[:, hq] @ k[:, kv].T / np.sqrt(d)
            s = np.exp(s - s.max(-1, keepdims=True))
            attn[:, hq] = (s / s.sum(-1, keepdims=True)) @ v[:, kv]
        x = x + attn.reshape(n, heads * d) @ w[p + "self_attn.o_proj.weight"].T
        h = rms(x, w[p + "post_attention_layernorm.weight"], eps)
        gate, up = h @ w[p + "mlp.gate_proj.weight"].T, h @ w[p + "mlp.up_proj.weight"].T
        x = x + (gate / (1 + np.exp(-gate)) * up) @ w[p + "mlp.down_proj.weight"].T
    return rms(x, w["norm.weight"], eps) @ out_head.T


def test_forward_matches_a_plain_statement_of_dflash(tmp_path: Path) -> None:
    raw = zlab_config_json()
    folder = write_zlab_checkpoint(tmp_path / "zlab", raw, zlab_weights(raw, seed=5))
    head = small_head(seed=3)
    drafter = Drafter.load(folder, head)
    feats = features(7, drafter.config, seed=1)
    drafter.append_context(feats[:3])
    drafter.append_context(feats[3:])
    row = np.array([[21, 22] + [MASK] * 10])

    weights = {k: v.double().numpy() for k, v in load_file(str(folder / "model.safetensors")).items()}
    emb, out = (t.double().numpy() for t in head.weights(drafter.device, drafter.dtype))
    expected = reference_logits(raw, weights, feats.astype(np.float64), emb[row[0]], out)
    assert np.allclose(drafter.forward_block(row)[0], expected, atol=2e-4)
