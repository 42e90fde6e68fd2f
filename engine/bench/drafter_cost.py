"""What drafting costs on this machine: the target's verify time with and without feature capture, and
a Qwen-width drafter's block and VP passes (γ=16, K=4), for the embedded target or a given GGUF.

    python -m engine.bench.drafter_cost [TARGET.gguf]
"""
from __future__ import annotations

import os
import statistics
import sys
import time

import numpy as np

from engine.calibrate import measure
from engine.drafters import Drafter, DrafterConfig, DraftVocab, SharedHead, default_target_layer_ids
from engine.store.embedded import ensure
from engine.target import Target, TargetSettings


def median_ms(fn, repeats: int = 5) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main(argv: list[str]) -> None:
    path = argv[0] if argv else ensure()
    head = SharedHead.from_gguf(path)
    layers = default_target_layer_ids(head.info.n_layer)
    for capture in ((), layers):
        with Target.load(path, TargetSettings(n_ctx=1024, capture_layers=capture)) as target:
            curve = measure(target, sizes=(1, 8, 16), repeats=5)
        times = ", ".join(f"t({n}) {s * 1000:.1f} ms" for n, s in sorted(curve.seconds.items()))
        print(f"verify, capture {capture or 'off'}: {times}")

    info = head.info
    mask = info.n_vocab - 1
    config = DrafterConfig(hidden_size=info.n_embd, intermediate_size=8960, num_hidden_layers=2,
                           num_attention_heads=12, num_key_value_heads=2, head_dim=128, vocab_size=info.n_vocab,
                           block_size=16, mask_token_id=mask, target_layer_ids=layers,
                           num_target_layers=info.n_layer)
    context = np.random.default_rng(0).standard_normal((256, config.feature_size)).astype(np.float32)
    block = np.full((1, 16), mask, dtype=np.int64)
    block[0, 0] = 13
    vp_rows = np.repeat(block, 4, axis=0)
    for r in range(4):
        vp_rows[r, 1:2 + r] = 7
    for label, vocab in (("full vocab", None), ("32k draft vocab", DraftVocab(np.arange(32768)))):
        drafter = Drafter.random(config, head, seed=0, vocab=vocab)
        drafter.append_context(context)
        print(f"drafter 2 layers x {info.n_embd}, {label}: block (B=1, γ=16) "
              f"{median_ms(lambda: drafter.draft(block)):.0f} ms, VP rows (B=4) "
              f"{median_ms(lambda: drafter.draft(vp_rows)):.0f} ms")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main(sys.argv[1:])
