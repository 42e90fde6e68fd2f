"""The DFlash block-diffusion drafter network (torch), with parameter names equal to the
checkpoint keys of z-lab's DFlash drafters, so `load_state_dict` takes their model.safetensors as is.

Per position of committed context, the concatenated target features are fused once,
`c = hidden_norm(fc(features))`, and every drafter layer turns `c` into extra keys/values with its
own k_proj/k_norm/v_proj (the context never passes through the drafter's layers). The block's
tokens attend, without a causal mask, to all context keys and all block keys.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from engine.drafters.config import DrafterConfig

LayerKV = tuple[torch.Tensor, torch.Tensor]  # keys, values: [kv_heads, positions, head_dim] each


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 and scale in the input dtype, as Qwen3 does, so bf16 runs match it.
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


def rope_tables(positions: torch.Tensor, head_dim: int, theta: float,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin [..., n, head_dim] for absolute positions [..., n] (Qwen3's default, non-interleaved RoPE)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device,
                                             dtype=torch.float32) / head_dim))
    freqs = positions.float()[..., None] * inv_freq
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., n, heads, head_dim] rotated by per-position cos/sin [..., n, head_dim]."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos.unsqueeze(-2) + rotated * sin.unsqueeze(-2)


class Attention(nn.Module):
    def __init__(self, config: DrafterConfig) -> None:
        super().__init__()
        c = config
        self.heads, self.kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.q_proj = nn.Linear(c.hidden_size, c.num_attention_heads * c.head_dim, bias=c.attention_bias)
        self.k_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.attention_bias)
        self.v_proj = nn.Linear(c.hidden_size, c.num_key_value_heads * c.head_dim, bias=c.attention_bias)
        self.o_proj = nn.Linear(c.num_attention_heads * c.head_dim, c.hidden_size, bias=c.attention_bias)
        self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)
        self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)

    def keys_values(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> LayerKV:
        """Rotated, normed keys and values of x [..., n, hidden] as [..., kv_heads, n, head_dim]."""
        shape = (*x.shape[:-1], self.kv_heads, self.head_dim)
        k = apply_rope(self.k_norm(self.k_proj(x).view(shape)), cos, sin)
        v = self.v_proj(x).view(shape)
        return k.transpose(-3, -2), v.transpose(-3, -2)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, context: LayerKV,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        b, n, _ = x.shape
        groups = self.heads // self.kv_heads
        q = apply_rope(self.q_norm(self.q_proj(x).view(b, n, self.heads, self.head_dim)), cos, sin)
        # Query head h reads key head h // groups (HF's repeat_kv order); grouping the queries per
        # key head lets the shared context K/V broadcast over the batch instead of being copied.
        q = q.view(b, n, self.kv_heads, groups, self.head_dim).permute(0, 2, 3, 1, 4)
        q = q.reshape(b, self.kv_heads, groups * n, self.head_dim)
        k_blk, v_blk = self.keys_values(x, cos, sin)
        k_ctx, v_ctx = context
        scale = self.head_dim ** -0.5
        ctx_scores = q @ k_ctx.transpose(-1, -2)
        if context_mask is not None:
            ctx_scores = ctx_scores.masked_fill(~context_mask[:, None, None, :], float("-inf"))
        scores = torch.cat((ctx_scores, q @ k_blk.transpose(-1, -2)), dim=-1) * scale
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        n_ctx = k_ctx.shape[-2]
        out = probs[..., :n_ctx] @ v_ctx + probs[..., n_ctx:] @ v_blk
        out = out.view(b, self.kv_heads, groups, n, self.head_dim).permute(0, 3, 1, 2, 4)
        return self.o_proj(out.reshape(b, n, self.heads * self.head_dim))


class MLP(nn.Module):
    def __init__(self, config: DrafterConfig) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=False)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, config: DrafterConfig) -> None:
        super().__init__()
        self.self_attn = Attention(config)
        self.mlp = MLP(config)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, context: LayerKV,
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, context, context_mask)
        return x + self.mlp(self.post_attention_layernorm(x))


class DFlashModel(nn.Module):
    def __init__(self, config: DrafterConfig) -> None:
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList(DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.fc = nn.Linear(config.feature_size, config.hidden_size, bias=False)
        self.hidden_norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    @classmethod
    def untrained(cls, config: DrafterConfig, seed: int = 0, std: float = 0.02) -> "DFlashModel":
        """N(0, std) matrices, unit norms, zero biases: for tests and as a training start."""
        model = cls(config)
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name.endswith("norm.weight"):
                    param.fill_(1.0)
                elif name.endswith(".bias"):
                    param.zero_()
                else:
                    param.normal_(0.0, std, generator=gen)
        return model

    def rope(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return rope_tables(positions, self.config.head_dim, self.config.rope_theta, dtype)

    def context_kv(self, features: torch.Tensor, positions: torch.Tensor) -> list[LayerKV]:
        """Per-layer context keys/values [kv_heads, n, head_dim] for features [n, feature_size]."""
        fused = self.hidden_norm(self.fc(features))
        cos, sin = self.rope(positions, fused.dtype)
        return [layer.self_attn.keys_values(fused, cos, sin) for layer in self.layers]

    def forward(self, embeddings: torch.Tensor, positions: torch.Tensor, context: list[LayerKV],
                context_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Final-normed hidden states [B, n, hidden] of a block [B, n, hidden] at `positions` [n]
        (or [B, n] when rows sit at different places: training). `context_mask` [B, n_ctx] (True =
        visible) lets each row see only the context before its own anchor."""
        cos, sin = self.rope(positions, embeddings.dtype)
        x = embeddings
        for layer, kv in zip(self.layers, context):
            x = layer(x, cos, sin, kv, context_mask)
        return self.norm(x)
