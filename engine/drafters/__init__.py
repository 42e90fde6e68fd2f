"""Torch block-diffusion drafters (DFlash architecture) and their checkpoints.

The only engine package besides engine/train that imports torch. Target layer id `i` in a drafter
config means the output of target decoder block `i` (0-based), i.e. llama.cpp's `l_out-<i>`.
"""
from engine.drafters.config import DrafterConfig, default_target_layer_ids
from engine.drafters.draft_vocab import DraftVocab
from engine.drafters.drafter import Drafter
from engine.drafters.errors import DrafterMismatch
from engine.drafters.gguf_head import TargetInfo
from engine.drafters.shared_head import SharedHead

__all__ = ["Drafter", "DrafterConfig", "DrafterMismatch", "DraftVocab", "SharedHead", "TargetInfo",
           "default_target_layer_ids"]
