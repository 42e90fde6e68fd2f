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

import math
from dataclasses import dataclass, field
from typing import Any

from engine.drafters.errors import DrafterMismatch

ARCHITECTURE = "DFlashDraftModel"
# Inclusive bounds, checked before any tensor is allocated: far beyond any real drafter (z-lab's are
# 1-8 layers of a <= 8k hidden size, block size 16), near enough that a typo cannot ask for gigabytes.
LIMITS = {
    "hidden_size": (1, 16384),
    "intermediate_size": (1, 65536),
    "num_hidden_layers": (1, 64),
    "num_attention_heads": (1, 256),
    "num_key_value_heads": (1, 256),
    "head_dim": (2, 1024),
    "vocab_size": (2, 1 << 20),
    "block_size": (1, 256),
    "mask_token_id": (0, (1 << 20) - 1),
    "target_layer_ids": (0, 1023),
    "num_target_layers": (1, 1024),
    "max_position_embeddings": (1, 1 << 24),
}
MAX_FEATURE_LAYERS = 64  # entries of target_layer_ids


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
    def from_hf(cls, raw: Any) -> "DrafterConfig":
        """The config.json content, its types and bounds checked (`LIMITS`) before anything is allocated."""
        if not isinstance(raw, dict):
            raise DrafterMismatch(f"The drafter config.json holds a JSON {_json_kind(raw)}, not an object.")
        _refuse_unsupported(raw)
        dflash = raw.get("dflash_config") or {}
        if not isinstance(dflash, dict):
            raise DrafterMismatch("The drafter config.json's dflash_config is not an object.")

        def pick(name: str, default: Any = None) -> Any:
            return dflash.get(name, raw.get(name, default))

        def need(name: str, value: Any) -> Any:
            if value is None:
                raise DrafterMismatch(f"The drafter config.json lacks the field {name!r}.")
            return value

        hidden = _int("hidden_size", need("hidden_size", raw.get("hidden_size")))
        heads = _int("num_attention_heads", need("num_attention_heads", raw.get("num_attention_heads")))
        n_layers = _int("num_hidden_layers", need("num_hidden_layers", raw.get("num_hidden_layers")))
        n_target = raw.get("num_target_layers")
        n_target = None if n_target is None else _int("num_target_layers", n_target)
        layer_ids = pick("target_layer_ids")
        if layer_ids is None:
            layer_ids = default_target_layer_ids(need("target_layer_ids", n_target), n_layers)
        if not isinstance(layer_ids, (list, tuple)) or len(layer_ids) > MAX_FEATURE_LAYERS:
            raise DrafterMismatch("The drafter config.json's target_layer_ids is not a short list of layer numbers.")
        rope = raw.get("rope_parameters") or {}
        rope = (rope.get("rope_theta") if isinstance(rope, dict) else None) or raw.get("rope_theta", 10000.0)
        softcap = pick("final_logit_softcapping")
        config = cls(
            hidden_size=hidden,
            intermediate_size=_int("intermediate_size", need("intermediate_size", raw.get("intermediate_size"))),
            num_hidden_layers=n_layers,
            num_attention_heads=heads,
            num_key_value_heads=_int("num_key_value_heads", raw.get("num_key_value_heads", heads)),
            head_dim=_int("head_dim", raw.get("head_dim") or hidden // heads),  # heads >= 1: bounded
            vocab_size=_int("vocab_size", need("vocab_size", raw.get("vocab_size"))),
            block_size=_int("block_size", pick("block_size", 16)),
            mask_token_id=_int("mask_token_id", need("mask_token_id", pick("mask_token_id"))),
            target_layer_ids=tuple(_int("target_layer_ids", i) for i in layer_ids),
            num_target_layers=n_target,
            rms_norm_eps=_float("rms_norm_eps", raw.get("rms_norm_eps", 1e-6)),
            rope_theta=_float("rope_theta", rope),
            attention_bias=bool(raw.get("attention_bias", False)),
            max_position_embeddings=_int("max_position_embeddings", raw.get("max_position_embeddings", 40960)),
            input_embedding_scale=_float("input_embedding_scale", pick("input_embedding_scale", 1.0)),
            output_multiplier=_float("output_multiplier", pick("output_multiplier", 1.0)),
            final_logit_softcapping=_float("final_logit_softcapping", softcap) if softcap else None,
            extra=raw,
        )
        config.validate()
        return config

    def validate(self) -> None:
        """Bounds and internal consistency; compatibility with a target is checked by `check_compatible`."""
        for name in LIMITS:
            values = getattr(self, name)
            for v in (values if isinstance(values, tuple) else (values,)):
                if v is not None:
                    _check_bounds(name, v)
        if not 1 <= len(self.target_layer_ids) <= MAX_FEATURE_LAYERS:
            raise DrafterMismatch(
                f"The drafter names {len(self.target_layer_ids)} target layers to take features from; "
                f"it must name 1 to {MAX_FEATURE_LAYERS}.")
        if not self.mask_token_id < self.vocab_size:
            raise DrafterMismatch(
                f"The drafter's mask token id {self.mask_token_id} is outside its vocabulary of {self.vocab_size}.")
        if self.num_attention_heads % self.num_key_value_heads:
            raise DrafterMismatch(
                f"The drafter has {self.num_attention_heads} attention heads, not a multiple of its "
                f"{self.num_key_value_heads} key/value heads.")
        if self.head_dim % 2:
            raise DrafterMismatch(f"The drafter's head size {self.head_dim} is odd, which RoPE cannot use.")
        if self.block_size < 2:
            raise DrafterMismatch(
                f"The drafter's block size {self.block_size} leaves no position to draft (needs at least 2).")
        for name in ("rms_norm_eps", "rope_theta", "input_embedding_scale", "output_multiplier",
                     "final_logit_softcapping"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and (v > 0 or name.endswith(("scale", "multiplier")))):
                raise DrafterMismatch(f"The drafter's {name} is {v}; it must be a finite positive number.")

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


def _int(name: str, value: Any) -> int:
    """An integer field: an int, or a float with an integral value (some exporters write 16.0)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise DrafterMismatch(f"The drafter config.json's {name} is {_short(value)}, not an integer.")
    _check_bounds(name, value)
    return value


def _check_bounds(name: str, value: int) -> None:
    lo, hi = LIMITS[name]
    if not lo <= value <= hi:
        raise DrafterMismatch(f"The drafter's {name} is {value}; it must be between {lo} and {hi}.")


def _float(name: str, value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DrafterMismatch(f"The drafter config.json's {name} is {_short(value)}, not a number.")
    return float(value)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_kind(value: Any) -> str:
    return {list: "array", str: "string", bool: "boolean", type(None): "null"}.get(type(value), "number")


def _refuse_unsupported(raw: dict[str, Any]) -> None:
    """DFlash variants whose maths differs from what model.py computes must not load silently."""
    arch = raw.get("architectures") or [ARCHITECTURE]
    if not isinstance(arch, list) or ARCHITECTURE not in arch:
        raise DrafterMismatch(f"The checkpoint is a {_short(arch)}, not a {ARCHITECTURE} drafter.")
    if raw.get("hidden_act", "silu") != "silu":
        raise DrafterMismatch(f"The drafter uses activation {_short(raw['hidden_act'])}; only 'silu' is supported.")
    layer_types = raw.get("layer_types") or []
    if raw.get("use_sliding_window") or (isinstance(layer_types, list) and "sliding_attention" in layer_types):
        raise DrafterMismatch("The drafter uses sliding-window attention, which is not supported.")
    if raw.get("is_causal"):
        raise DrafterMismatch("The drafter declares causal attention inside the block, which is not supported.")
    scaling = raw.get("rope_scaling") or raw.get("rope_parameters") or {}
    if not isinstance(scaling, dict):
        raise DrafterMismatch("The drafter config.json's rope_scaling is not an object.")
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type != "default":
        raise DrafterMismatch(f"The drafter uses RoPE scaling {_short(rope_type)}, which is not supported.")
    if _float("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0)) != 1.0:
        raise DrafterMismatch("The drafter uses partial rotary embeddings, which are not supported.")
