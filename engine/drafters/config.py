"""Drafter hyper-parameters and their config.json form (the public DFlash layout).

A z-lab DFlash checkpoint's config.json is a Qwen3 config (hidden_size, num_hidden_layers, heads,
rope_theta, ...) plus the drafting fields: `block_size` (top level, or inside `dflash_config` in newer
exports), `dflash_config.mask_token_id`, `dflash_config.target_layer_ids` and `num_target_layers`.
Optional output shaping fields that newer exports put in `dflash_config` (`input_embedding_scale`,
`output_multiplier`, `final_logit_softcapping`) are honoured.

Layer-id convention (same as z-lab's `extract_context_feature`, which reads HF
`hidden_states[layer_id + 1]` because index 0 there is the embedding output): target layer id `i`
is the OUTPUT of decoder block `i`, counting blocks from 0. In llama.cpp that is the graph tensor
`l_out-<i>` with the same `i`; no offset is applied anywhere in this package.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.drafters.errors import DrafterMismatch

ARCHITECTURE = "DFlashDraftModel"


def default_target_layer_ids(n_target_layers: int, n_features: int = 5) -> tuple[int, ...]:
    """Feature layers spread evenly from block 1 to block n_target_layers-3 (z-lab's default)."""
    if n_features == 1:
        return (n_target_layers // 2,)
    start, end = 1, n_target_layers - 3
    return tuple(int(round(start + i * (end - start) / (n_features - 1))) for i in range(n_features))


@dataclass(frozen=True)
class DrafterConfig:
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    vocab_size: int
    block_size: int
    mask_token_id: int
    target_layer_ids: tuple[int, ...]
    num_target_layers: int | None = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1_000_000.0
    attention_bias: bool = False
    max_position_embeddings: int = 40960
    input_embedding_scale: float = 1.0
    output_multiplier: float = 1.0
    final_logit_softcapping: float | None = None
    # The config.json read, so that a re-save keeps the fields this package does not interpret.
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def feature_size(self) -> int:
        """Width of one position's concatenated target features (fc's input)."""
        return len(self.target_layer_ids) * self.hidden_size

    @classmethod
    def from_hf(cls, raw: dict[str, Any]) -> "DrafterConfig":
        _refuse_unsupported(raw)
        dflash = dict(raw.get("dflash_config") or {})

        def pick(name: str, default: Any = None) -> Any:
            return dflash.get(name, raw.get(name, default))

        try:
            hidden = int(raw["hidden_size"])
            heads = int(raw["num_attention_heads"])
            n_layers = int(raw["num_hidden_layers"])
            mask = pick("mask_token_id")
            if mask is None:
                raise KeyError("mask_token_id")
            layer_ids = pick("target_layer_ids")
            if layer_ids is None:
                if raw.get("num_target_layers") is None:
                    raise KeyError("target_layer_ids")
                layer_ids = default_target_layer_ids(int(raw["num_target_layers"]), n_layers)
            rope = (raw.get("rope_parameters") or {}).get("rope_theta", raw.get("rope_theta", 10000.0))
            softcap = pick("final_logit_softcapping")
            known = {
                "hidden_size": hidden,
                "intermediate_size": int(raw["intermediate_size"]),
                "num_hidden_layers": n_layers,
                "num_attention_heads": heads,
                "num_key_value_heads": int(raw.get("num_key_value_heads", heads)),
                "head_dim": int(raw.get("head_dim") or hidden // heads),
                "vocab_size": int(raw["vocab_size"]),
                "block_size": int(pick("block_size", 16)),
                "mask_token_id": int(mask),
                "target_layer_ids": tuple(int(i) for i in layer_ids),
                "num_target_layers": (int(raw["num_target_layers"])
                                      if raw.get("num_target_layers") is not None else None),
                "rms_norm_eps": float(raw.get("rms_norm_eps", 1e-6)),
                "rope_theta": float(rope),
                "attention_bias": bool(raw.get("attention_bias", False)),
                "max_position_embeddings": int(raw.get("max_position_embeddings", 40960)),
                "input_embedding_scale": float(pick("input_embedding_scale", 1.0)),
                "output_multiplier": float(pick("output_multiplier", 1.0)),
                "final_logit_softcapping": float(softcap) if softcap else None,
            }
        except KeyError as e:
            raise DrafterMismatch(f"The drafter config.json lacks the field {e.args[0]!r}.") from None
        except (TypeError, ValueError):
            raise DrafterMismatch("The drafter config.json has a field of the wrong type.") from None
        config = cls(**known, extra=raw)
        config.validate()
        return config

    def validate(self) -> None:
        """Internal consistency; compatibility with a target is checked by `check_compatible`."""
        if self.num_attention_heads % self.num_key_value_heads:
            raise DrafterMismatch(
                f"The drafter has {self.num_attention_heads} attention heads, not a multiple of its "
                f"{self.num_key_value_heads} key/value heads.")
        if self.head_dim % 2:
            raise DrafterMismatch(f"The drafter's head size {self.head_dim} is odd, which RoPE cannot use.")
        if self.block_size < 2:
            raise DrafterMismatch(
                f"The drafter's block size {self.block_size} leaves no position to draft (needs at least 2).")
        if not self.target_layer_ids:
            raise DrafterMismatch("The drafter names no target layers to take features from.")

    def to_hf(self) -> dict[str, Any]:
        """config.json content in z-lab's layout (what `from_hf` reads back unchanged)."""
        dflash = {k: v for k, v in (self.extra.get("dflash_config") or {}).items() if k != "block_size"}
        dflash.update(mask_token_id=self.mask_token_id, target_layer_ids=list(self.target_layer_ids))
        for name, neutral in (("input_embedding_scale", 1.0), ("output_multiplier", 1.0),
                              ("final_logit_softcapping", None)):
            if getattr(self, name) != neutral:
                dflash[name] = getattr(self, name)
            else:
                dflash.pop(name, None)
        # Descriptive fields a loaded checkpoint already has are kept as they were.
        out: dict[str, Any] = {
            "model_type": "qwen3", "attention_dropout": 0.0, "tie_word_embeddings": True,
            "layer_types": ["full_attention"] * self.num_hidden_layers, "use_sliding_window": False,
            "sliding_window": None, **self.extra,
        }
        out.pop("auto_map", None)  # we ship no remote code; HF must not look for dflash.py
        out.pop("rope_parameters", None)  # superseded by rope_theta below
        out.update(
            architectures=[ARCHITECTURE],
            hidden_act="silu",
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            head_dim=self.head_dim,
            vocab_size=self.vocab_size,
            block_size=self.block_size,
            rms_norm_eps=self.rms_norm_eps,
            rope_theta=self.rope_theta,
            attention_bias=self.attention_bias,
            max_position_embeddings=self.max_position_embeddings,
            dflash_config=dflash,
        )
        if self.num_target_layers is not None:
            out["num_target_layers"] = self.num_target_layers
        return out


def _refuse_unsupported(raw: dict[str, Any]) -> None:
    """DFlash variants whose maths differs from what model.py computes must not load silently."""
    arch = raw.get("architectures") or [ARCHITECTURE]
    if ARCHITECTURE not in arch:
        raise DrafterMismatch(f"The checkpoint is a {', '.join(arch)}, not a {ARCHITECTURE} drafter.")
    if raw.get("hidden_act", "silu") != "silu":
        raise DrafterMismatch(f"The drafter uses activation {raw['hidden_act']!r}; only 'silu' is supported.")
    if raw.get("use_sliding_window") or "sliding_attention" in (raw.get("layer_types") or []):
        raise DrafterMismatch("The drafter uses sliding-window attention, which is not supported.")
    if raw.get("is_causal"):
        raise DrafterMismatch("The drafter declares causal attention inside the block, which is not supported.")
    scaling = raw.get("rope_scaling") or (raw.get("rope_parameters") or {})
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type != "default":
        raise DrafterMismatch(f"The drafter uses RoPE scaling {rope_type!r}, which is not supported.")
    if float(raw.get("partial_rotary_factor", 1.0)) != 1.0:
        raise DrafterMismatch("The drafter uses partial rotary embeddings, which are not supported.")
