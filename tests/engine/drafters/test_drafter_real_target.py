"""The shared head of the embedded Qwen2.5-Coder-1.5B target, and what a drafter of its width costs
on this machine (printed for the `auto` method's cost model, never asserted)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from engine.drafters import Drafter, DrafterConfig, DraftVocab, SharedHead, default_target_layer_ids

GAMMA = 16
QWEN3_MASK_ID = 151669  # the id z-lab's Qwen-family drafters use; any in-vocab id serves a random drafter


def timed_ms(fn, repeats: int = 3) -> str:
    """Median wall time, and this process's CPU time per call: on a shared, busy machine the wall
    time inflates with the load while CPU time / threads still estimates an idle machine's wall time."""
    fn()  # warm-up: first calls pay for allocations
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return f"{np.median(walls) * 1e3:6.0f} ms (cpu {np.median(cpus) * 1e3:6.0f} ms)"


@pytest.mark.qwen
def test_real_target_head_and_drafter_forward_time(qwen_path: Path, qwen_head: SharedHead) -> None:
    start = time.perf_counter()
    head = SharedHead.from_gguf(qwen_path)  # a later start: hash memo and cached head, no GGUF read
    emb, _ = head.weights(torch.device("cpu"), torch.float32)
    reloaded = time.perf_counter() - start
    info = head.info
    assert (info.architecture, info.n_embd, info.n_layer, info.n_vocab) == ("qwen2", 1536, 28, 151936)
    assert torch.isfinite(emb).all() and 0.001 < emb.std().item() < 1.0

    config = DrafterConfig(hidden_size=1536, intermediate_size=8960, num_hidden_layers=2, num_attention_heads=12,
                           num_key_value_heads=2, head_dim=128, vocab_size=info.n_vocab, block_size=GAMMA,
                           mask_token_id=QWEN3_MASK_ID, target_layer_ids=default_target_layer_ids(info.n_layer),
                           num_target_layers=info.n_layer)
    rng = np.random.default_rng(0)
    context = rng.standard_normal((256, config.feature_size)).astype(np.float32)
    rows = np.full((5, GAMMA), QWEN3_MASK_ID, dtype=np.int64)
    rows[:, 0] = 13
    report = [f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, torch threads "
              f"{torch.get_num_threads()}; head loaded from "
              f"cache in {reloaded:.1f} s, tied={head.tied}; context 256 positions, gamma {GAMMA}"]
    for label, vocab in (("full vocab", None), ("32k draft vocab", DraftVocab(np.arange(32768)))):
        drafter = Drafter.random(config, head, seed=0, vocab=vocab)
        drafter.append_context(context)
        for batch in (1, 5) if vocab is None else (5,):
            forward = timed_ms(lambda: drafter.forward_block(rows[:batch]))
            draft = timed_ms(lambda: drafter.draft(rows[:batch]))
            report.append(f"{label:>15}, B={batch}: forward_block {forward}, draft {draft}")
        tokens, conf = drafter.draft(rows)
        assert tokens.shape == (5, GAMMA) and (tokens[:, 1:] != QWEN3_MASK_ID).all()
    print("\n" + "\n".join(report))
