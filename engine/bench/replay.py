"""τ of drafter methods on a prompt set without paying for their verify passes: each method is
replayed against the target's own greedy answers (generated once, with the target features of every
position, 16 prompts side by side).

Under greedy decoding a verify pass accepts exactly the longest trie path that spells the target's
greedy continuation, so walking each proposed trie against the stored answer repeats the steps of a
real run: same anchors, same drafter contexts, same accepted lengths. Only llama.cpp's batch noise
(a near-tie decided differently inside a big verify batch) can make a real run differ; `d2sd bench`
on a few prompts checks that. On this CPU a real d2sd run costs ~2 s a step; the replay costs only
the drafters' passes.

    python -m engine.bench.replay --prompts humaneval --n 20 --max-tokens 128 \
        --methods dflash,naive,ddtree,d2sd,d2sd:reuse=1
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from engine.train import data as data_stage


def answers(target_path: Path, sha256: str, prompts, layers: tuple[int, ...], max_new: int, folder: Path):
    """The target's greedy answers to `prompts` (bench Prompt objects) with features, cached in `folder`."""
    texts = [p.messages[-1]["content"] for p in prompts]
    settings = data_stage.DataSettings(layers=layers, slots=min(16, len(texts)), max_new=max_new,
                                       max_prompt=2048, shard_samples=len(texts), topk=0)
    # every prompt answered ends it; the bound only sizes the progress line
    data_stage.generate(target_path, sha256, texts, folder, settings, max_answer_tokens=len(texts) * max_new,
                        log=lambda m: print(m, file=sys.stderr, flush=True))
    ds = data_stage.Dataset(folder)
    order = {ds.prompt_index(i): i for i in range(len(ds))}
    return ds, [order[k] for k in range(len(texts)) if k in order]


def replay(method, tokens: np.ndarray, n_prompt: int, features: np.ndarray) -> dict:
    """One greedy generation of `method` over the stored answer: steps, tokens, accepted per step."""
    tokens = [int(t) for t in tokens]
    n = len(tokens)
    method.start(tokens[:n_prompt], 0, np.asarray(features[:n_prompt - 1], dtype=np.float32))
    p, accepted, nodes = n_prompt - 1, [], []
    while p < n - 1:
        trie = method.propose(tokens[:p], tokens[p]).trie
        node, a = 0, 0
        while p + a + 1 < n:
            child = trie.child(node, tokens[p + a + 1])
            if child is None:
                break
            node, a = child, a + 1
        accepted.append(a)
        nodes.append(len(trie))
        method.observe(tokens[p:p + a + 1], np.asarray(features[p:p + a + 1], dtype=np.float32))
        p += a + 1
    return {"steps": len(accepted), "tokens": n - n_prompt, "accepted": accepted, "nodes": nodes}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.bench.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default="dflash,naive,ddtree,d2sd,d2sd:reuse=1")
    ap.add_argument("--prompts", default="humaneval")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--out", help="JSON results file")
    a = ap.parse_args(argv)

    import engine.methods
    from engine.bench import prompts as prompt_sets
    from engine.bench.command import parse_methods
    from engine.drafters.cache import file_sha256
    from engine.drafters.pair import load_pair, pair_for
    from engine.paths import cache_dir
    from engine.store.embedded import ensure

    target_path = ensure()
    block, vp = pair_for(target_path)
    if block is None:
        raise SystemExit("no drafter pair is installed for the embedded target")
    d1, d2 = load_pair(target_path, block, vp)
    layers = d1.config.target_layer_ids
    sha = file_sha256(target_path)
    prompt_list = prompt_sets.load(a.prompts, a.n)
    folder = cache_dir() / "replay" / f"{sha[:16]}-{a.prompts}-{a.n}-{a.max_tokens}-{'_'.join(map(str, layers))}"
    ds, samples = answers(target_path, sha, prompt_list, layers, a.max_tokens, folder)
    results = {}
    for label, name, params in parse_methods(a.methods):
        reuse = params.pop("reuse", 0)
        method = engine.methods.make_method(name, None, drafter=d1, vp_drafter=None if reuse else d2, **params)
        t0 = time.perf_counter()
        runs = [replay(method, *ds.sample(i)) for i in samples]
        steps = sum(r["steps"] for r in runs)
        tokens = sum(r["tokens"] for r in runs)
        results[label] = {"tau": tokens / steps, "steps": steps, "tokens": tokens,
                          "mean_nodes": float(np.mean([n for r in runs for n in r["nodes"]])),
                          "tau_per_prompt": [r["tokens"] / r["steps"] for r in runs],
                          "seconds": round(time.perf_counter() - t0, 1)}
        print(f"{label:24s} tau {tokens / steps:5.2f}  mean tree {results[label]['mean_nodes']:5.1f} nodes",
              flush=True)
    doc = {"prompts": a.prompts, "n": len(samples), "max_tokens": a.max_tokens, "drafters": str(block.parent),
           "methods": results}
    if a.out:
        Path(a.out).write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
