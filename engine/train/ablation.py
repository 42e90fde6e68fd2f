"""Drafter 1 variants trained side by side on the same data for the same number of steps, each measured
on the same held-out answers: which change to the recipe buys acceptance.

    python -m engine.train.ablation --answers data/<target>-answers.npz --data-tokens 24000 --steps 1000 \
        --variant base --variant labels=topk --variant intermediate_size=1152

A variant is `base` or recipe fields `name=value` joined by `,`. Data comes from the training cache's
folder for the target (recaptured from `--answers` as `d2sd train` does); each variant trains in its own
folder beside it, so a stopped run continues, and results go to `ablation.json` there as they come,
one row per variant and step count (`base@1000`): a longer run of the same variant is another row.
`train_tokens=N` trains on the first samples holding N answer tokens and is measured on the same held-out
answers, which gives the acceptance-vs-data curve.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import torch

from engine.drafters.cache import file_sha256
from engine.drafters.checkpoint import dequantize_int8, quantize_int8
from engine.drafters.model import DFlashModel
from engine.train.evaluate import acceptance
from engine.train.pipeline import Recipe, data_record, make_data, setup, work_dir
from engine.train.trainer import Frozen, TrainSettings, export_weights, train

MEASURES = ("first_token", "second_token", "tau_dflash", "tau_d2sd_reuse", "first_token_int8", "tau_dflash_int8")
TRAINING_FIELDS = ("train_tokens", "labels", "intermediate_size", "num_layers", "heads", "kv_heads", "head_dim", "lr",
                   "anchors_per_step", "lam", "layers", "vocab_size", "scale_features", "sample_positions", "bf16")


def layer_list(text: str) -> tuple[int, ...]:
    """"1+13+25" -> (1, 13, 25); ValueError when a part is not a number."""
    return tuple(int(v) for v in text.split("+"))


def parse_variant(text: str, base: Recipe) -> Recipe:
    """`base`, or `field=value[,field=value]` over the base recipe (only fields that shape drafter 1's
    training; the data is shared)."""
    if text == "base":
        return base
    changes = {}
    types = {f.name: f.type for f in dataclasses.fields(Recipe)}
    for part in text.split(","):
        name, _, value = part.partition("=")
        if name not in TRAINING_FIELDS or not value:
            raise ValueError(f"--variant {text!r}: {part!r} is not field=value for one of {', '.join(TRAINING_FIELDS)}")
        kind = types[name]
        try:
            if "tuple" in str(kind):
                changes[name] = layer_list(value)
            elif kind in ("bool", bool):
                changes[name] = {"1": True, "true": True, "0": False, "false": False}[value.lower()]
            elif kind in ("int", int):
                changes[name] = int(value)
            elif kind in ("float", float):
                changes[name] = float(value)
            else:
                changes[name] = value
        except (ValueError, KeyError):
            raise ValueError(f"--variant {text!r}: {value!r} is not a valid {kind} for {name}") from None
    return dataclasses.replace(base, **changes)


def run(target: Path, answers: Path | None, base: Recipe, variants: list[str], steps: int, *,
        heldout_every: int = 10, n_threads: int | None = None, log=print) -> dict:
    recipes = {v: parse_variant(v, base) for v in variants}  # every variant checked before hours of work
    sha = file_sha256(target)
    work = work_dir(sha)
    if n_threads:
        torch.set_num_threads(n_threads)
    folder = work / "ablation-data"  # grows when asked for more; a variant is trained again on new data
    make_data(target, sha, folder, base, n_threads=n_threads, answers=answers, log=log)
    results_path = folder / "ablation.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    for variant, recipe in recipes.items():
        name = f"{variant}@{steps}"
        ds, train_ids, held_ids, config, frozen, _ = setup(target, folder, recipe, heldout_every)
        data = data_record(ds, train_ids, held_ids, frozen)
        done = results.get(name)
        if done and done["data"] != data:  # trained on other data: afresh
            shutil.rmtree(folder / "variants" / name, ignore_errors=True)
            done = None
        if done and all(key in done for key in MEASURES):
            continue
        model = DFlashModel.untrained(config, recipe.seed)
        settings = TrainSettings("block", steps, anchors_per_step=recipe.anchors_per_step, lam=recipe.lam, lr=recipe.lr,
                                 seed=recipe.seed, scaled_features=frozen.scale is not None,
                                 sample_positions=recipe.sample_positions, labels=recipe.labels, bf16=recipe.bf16,
                                 eval_every=10 ** 9)
        t = time.time()
        train(model, frozen, ds, train_ids, folder / "variants" / name, settings, log=log)  # done: reloads it
        seconds = done["train_seconds"] if done else time.time() - t
        e = acceptance(model, model, frozen, ds, held_ids)
        q = int8_model(model, frozen)
        e8 = acceptance(q, q, raw_features(frozen), ds, held_ids)
        results[name] = {"variant": variant, "steps": steps, "train_seconds": round(seconds, 1),
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "first_token": e["acceptance_by_position"][0], "second_token": e["acceptance_by_position"][1],
                         "tau_dflash": round(e["tau_dflash"], 3), "tau_d2sd_reuse": round(e["tau_d2sd"], 3),
                         "first_token_int8": e8["acceptance_by_position"][0], "tau_dflash_int8": round(e8["tau_dflash"], 3),
                         "heldout_rows": e["rows"], "data": data}
        results_path.write_text(json.dumps(results, indent=1))
        log(f"[ablation] {name}: first token {results[name]['first_token']:.3f}, "
            f"tau dflash {results[name]['tau_dflash']:.2f} ({seconds / 60:.1f} min)")
    return results


def int8_model(model: DFlashModel, frozen: Frozen) -> DFlashModel:
    """`model` as its int8 export reads back (matrices rounded per row, on raw features)."""
    folded = export_weights(model, frozen, torch.float16)
    back = dequantize_int8(quantize_int8(folded), Path("int8 export"))
    copy = DFlashModel.untrained(model.config, 0)
    copy.load_state_dict({k: v.float() for k, v in back.items()})
    return copy.eval()


def raw_features(frozen: Frozen) -> Frozen:
    """`frozen` for a drafter that reads the target's features unscaled (an export)."""
    raw = copy.copy(frozen)
    raw.scale = None
    return raw


def table(results: dict) -> str:
    lines = ["| variant | training answer tokens | parameters | steps | minutes | first token | second token | τ dflash | τ d2sd (reuse) "
             "| first token, int8 | τ dflash, int8 |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results.values():
        trained = r["data"].get("train_answer_tokens")
        lines.append(f"| {r['variant']} | {'' if trained is None else f'{trained:,}'} | {r['parameters'] / 1e6:.1f}M | {r['steps']} | {r['train_seconds'] / 60:.0f} | "
                     f"{r['first_token']:.3f} | {r['second_token']:.3f} | {r['tau_dflash']:.2f} | "
                     f"{r['tau_d2sd_reuse']:.2f} | {r['first_token_int8']:.3f} | {r['tau_dflash_int8']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engine.train.ablation", description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", type=Path, help="target GGUF (default: the embedded Qwen2.5-Coder-1.5B-Instruct)")
    ap.add_argument("--answers", type=Path, help="saved answers whose features are recaptured")
    ap.add_argument("--data-tokens", type=int, default=40_000, help="answer tokens of data (default 40000)")
    ap.add_argument("--steps", type=int, default=1200, help="training steps of every variant (default 1200)")
    ap.add_argument("--variant", action="append", default=[], help="base, or field=value[,field=value]")
    ap.add_argument("--data-layers", default="", help="target layers whose features the data keeps, joined by + "
                    "(default: the drafter's), so that variants can read other layers (`layers=7+20+26`)")
    ap.add_argument("--threads", type=int, help="torch and llama.cpp threads (default: every core)")
    a = ap.parse_args(argv)
    try:
        data_layers = layer_list(a.data_layers) if a.data_layers else ()
    except ValueError:
        print(f"ablation: error: --data-layers {a.data_layers!r} is not layer numbers joined by +", file=sys.stderr)
        return 2
    if a.target is None:
        from engine.store.embedded import ensure

        a.target = ensure()
    try:
        base = Recipe(data_tokens=a.data_tokens, data_layers=data_layers)
        results = run(a.target, a.answers, base, a.variant or ["base"], a.steps, n_threads=a.threads,
                      log=lambda m: print(m, file=sys.stderr, flush=True))
    except (ValueError, OSError) as e:
        print(f"ablation: error: {e}", file=sys.stderr)
        return 1
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
