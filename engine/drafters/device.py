"""Where drafters run and in which precision."""
from __future__ import annotations

import torch


def pick_device(requested: str | torch.device | None = None) -> torch.device:
    """The requested device, else the first available of cuda, mps, cpu."""
    if requested is not None:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def pick_dtype(device: torch.device, requested: torch.dtype | None = None) -> torch.dtype:
    """bf16 on GPUs that support it, fp16 on other accelerators, fp32 on CPU.

    CPUs without native bf16 matmul run it slower than fp32, hence fp32 there unless asked.
    """
    if requested is not None:
        return requested
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32


def cpu_bf16_fast() -> bool:
    """Whether oneDNN runs bf16 matmuls on this CPU in hardware (AVX512 with BF16, or AMX): there they
    were 2-3x faster than float32 on the development CPU; elsewhere they are emulated and slower."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
