"""`d2sd`: generate, chat and manage models from a terminal. Errors print one line and exit non-zero."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from engine.stop_request import stop_requested
from engine.store.errors import StoreError
from engine.verify import SamplerSettings


def _add_target_args(p: argparse.ArgumentParser, method: str) -> None:
    """The target, its decoding method and llama.cpp's resources."""
    p.add_argument("--model", help="target GGUF (default: the embedded Qwen2.5-Coder-1.5B-Instruct)")
    p.add_argument("--method", default=method,
                   help=f"decoding method: ar, lookup, ardraft, dflash, naive, ddtree, d2sd, auto (default {method})")
    p.add_argument("--gamma", type=int, default=None, help="draft length for lookup / drafters")
    p.add_argument("--k", type=int, default=None,
                   help="d2sd / naive / auto: rows re-anchored or resampled (default: 8 for d2sd, 4 for the others)")
    p.add_argument("--budget", type=int, default=None, help="most tokens in one verified tree")
    p.add_argument("--alt", action=argparse.BooleanOptionalAction, default=None,
                   help="d2sd: re-anchor the VP rows on drafter 1's runner-up tokens (the default); "
                        "--no-alt: at the paper's likeliest rejection points")
    p.add_argument("--drafter", help="drafter 1 folder (default: the one shipped for the target)")
    p.add_argument("--vp-drafter", help="VP drafter folder (default: shipped, else drafter 1 reused)")
    p.add_argument("--ctx", type=int, default=None,
                   help="context size in tokens (default: the model's training context, capped by free memory)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--gpu-layers", type=int, default=-1, help="layers to offload (-1: all, when supported)")


def _add_model_args(p: argparse.ArgumentParser) -> None:
    _add_target_args(p, "auto")
    p.add_argument("--max-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--stop", action="append", default=[], help="stop string (repeatable)")
    p.add_argument("--stats", action="store_true", help="print run statistics at the end")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="d2sd", description="D2SD speculative decoding on llama.cpp")
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate", help="complete one prompt and stream it to stdout")
    g.add_argument("prompt", help="the prompt text, or - to read stdin")
    g.add_argument("--raw", action="store_true", help="no chat template: continue the text as given")
    g.add_argument("--system", default=None)
    _add_model_args(g)
    c = sub.add_parser("chat", help="interactive chat in the terminal")
    c.add_argument("--system", default=None)
    _add_model_args(c)
    v = sub.add_parser("serve", help="serve the model to other tools with the OpenAI API (local by default)")
    _add_target_args(v, "auto")
    v.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; any other needs --api-key)")
    v.add_argument("--port", type=int, default=8080)
    v.add_argument("--api-key", default=os.environ.get("D2SD_API_KEY"),
                   help="key every request must send as 'Authorization: Bearer KEY' (default: $D2SD_API_KEY)")
    v.add_argument("--queue", type=int, default=8,
                   help="requests that may wait while one is generated; beyond them: 503 (default 8)")
    m = sub.add_parser("models", help="list, verify or install models")
    m.add_argument("action", choices=["list", "verify", "install-default"], nargs="?", default="list")
    m.add_argument("path", nargs="?", help="for verify: a GGUF file")
    m.add_argument("--quiet", action="store_true")
    b = sub.add_parser("bench", help="benchmark decoding methods side by side")
    b.add_argument("--methods", default="ar,lookup",
                   help="comma-separated methods, options as name:key=value (e.g. ardraft:gamma=5:p_min=0.6)")
    b.add_argument("--prompts", default="humaneval", help="humaneval, sharegpt-heldout, or a .jsonl file of prompts")
    b.add_argument("--n", type=int, default=20, help="first N prompts of the set (0: all)")
    b.add_argument("--max-tokens", type=int, default=128)
    b.add_argument("--sampling", choices=["greedy", "sample", "both"], default="both")
    b.add_argument("--temperature", type=float, default=0.8, help="for the sampled mode")
    b.add_argument("--seed", type=int, default=0, help="sampled mode: prompt i uses seed + i for every method")
    b.add_argument("--model", help="target GGUF (default: the embedded Qwen2.5-Coder-1.5B-Instruct)")
    b.add_argument("--ctx", type=int, default=4096)
    b.add_argument("--threads", type=int, default=None)
    b.add_argument("--gpu-layers", type=int, default=-1)
    b.add_argument("--repeats", type=int, default=3, help="verify cost calibration: rounds per size")
    b.add_argument("--no-calibrate", action="store_true", help="skip the verify cost curve")
    b.add_argument("--recalibrate", action="store_true", help="measure the cost curve again, ignoring the cache")
    b.add_argument("--out", help="output folder (default bench-results/<time>)")
    b.add_argument("--resume", action="store_true",
                   help="continue the stopped run in --out (same settings): finished prompts are kept")
    b.add_argument("--project", metavar="COSTS.json",
                   help="cost curve t(n) of another device: print the speedup each method would reach there")
    b.add_argument("--results", metavar="RESULTS.json",
                   help="with --project or --execute: re-project or check a saved run, run nothing")
    b.add_argument("--execute", action="store_true",
                   help="with --results: run the HumanEval answers against their tests (executes the "
                        "model's code in a subprocess) and print pass@1 per method")
    b.add_argument("--anchors", action="store_true",
                   help="also run llama.cpp's own llama-completion and llama-speculative-simple (make anchors)")
    t = sub.add_parser("train", help="distil drafter 1 and the VP drafter for a target (resumable)")
    t.add_argument("--target", help="target GGUF (default: the embedded Qwen2.5-Coder-1.5B-Instruct)")
    t.add_argument("--out", required=True, help="folder for block/, vp/ and MODEL_CARD.md")
    t.add_argument("--hours", type=float, default=None, help="time budget; run again to continue")
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--data-tokens", type=int, help="answer tokens to generate")
    t.add_argument("--block-steps", type=int, help="drafter 1 training steps")
    t.add_argument("--vp-steps", type=int, help="VP drafter training steps")
    t.add_argument("--layers", help="target layers the drafters read, e.g. 1,13,25")
    t.add_argument("--intermediate-size", type=int)
    t.add_argument("--vocab-size", type=int, help="draft vocabulary size")
    t.add_argument("--answers", help="token ids of answers generated before (a .npz this option wrote): "
                                     "reused instead of generated, and updated with new ones")
    t.add_argument("--raw-features", action="store_true",
                   help="train on the target's unscaled features (continues a run begun that way)")
    t.add_argument("--labels", choices=("hard", "topk"),
                   help="learn the target's top-k distribution (topk, the default) or the answer's tokens (hard)")
    t.add_argument("--num-layers", type=int, help="drafter layers (default 1)")
    t.add_argument("--lam", type=float, help="loss weight exp(-(k-1)/lam) at the k-th position past the anchor")
    t.add_argument("--int8", action="store_true", help="export the matrices as int8: half the file")
    t.add_argument("--fp32", action="store_true",
                   help="train in float32 (default: bfloat16 matmuls where the CPU runs them natively)")
    return ap


def _sampler(a) -> SamplerSettings:
    return SamplerSettings(temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p, seed=a.seed)


def _load(a):
    from engine.store.embedded import ensure
    from engine.target import Target
    from engine.target_settings import TargetSettings

    from engine.context_size import default_context

    path = a.model or ensure()
    n_ctx = a.ctx if a.ctx is not None else default_context(path)
    return Target.load(path, TargetSettings(n_ctx=n_ctx, n_threads=a.threads, n_gpu_layers=a.gpu_layers))


def _method_params(a) -> dict:
    return {"gamma": a.gamma, "k": a.k, "budget": a.budget, "alt": a.alt}


def _drafter_folders(a) -> tuple[str, str]:
    return (a.drafter, a.vp_drafter or "") if a.drafter else ("", "")


def _say_measuring() -> None:
    print("measuring this machine's verify cost for auto (once per model and settings) ...", file=sys.stderr)


def _method(a, ready):
    """The method the options ask for, its drafters loaded and its cost curve read or measured."""
    return ready.get(a.method, _method_params(a), _drafter_folders(a))


def _ready(target):
    from engine.ready_method import ReadyMethod

    return ReadyMethod(target, on_measure=_say_measuring)


def _stats_line(s) -> str:
    return (f"[{s.method}] {s.new_tokens} tokens, {s.tokens_per_s:.1f} tok/s, tau {s.tau:.2f}, "
            f"accepted {s.accepted}/{s.proposed}, TTFT {s.ttft_s * 1000:.0f} ms, "
            f"passes {s.target_passes}, stop: {s.stop_reason}")


def _stream(target, tokens, method, a, cancel) -> str:
    from engine.events import Finished, TextDelta
    from engine.generate import generate

    text = ""
    for ev in generate(target, tokens, method, _sampler(a), a.max_tokens, a.stop, cancel):
        if isinstance(ev, TextDelta) and ev.text:
            sys.stdout.write(ev.text)
            sys.stdout.flush()
        elif isinstance(ev, Finished):
            text = ev.text
            sys.stdout.write("\n")
            if a.stats or a.cmd == "chat":
                print(_stats_line(ev.stats), file=sys.stderr)
    return text


def _cmd_generate(a) -> int:
    _sampler(a)  # validate before the model loads
    prompt = sys.stdin.read() if a.prompt == "-" else a.prompt
    with _load(a) as target, _ready(target) as ready:
        method = _method(a, ready)
        if a.raw:
            tokens = target.tokenize(prompt)
        else:
            msgs = ([{"role": "system", "content": a.system}] if a.system else []) + [
                {"role": "user", "content": prompt}]
            tokens = target.chat_tokens(msgs)
        with stop_requested() as cancel:  # Ctrl-C ends after the current step, with the stats line
            _stream(target, tokens, method, a, cancel)
    return 130 if cancel.is_set() else 0


def _cmd_chat(a) -> int:
    _sampler(a)
    with _load(a) as target, _ready(target) as ready:
        method = _method(a, ready)
        msgs = [{"role": "system", "content": a.system}] if a.system else []
        print(f"{target.info.name} · method {a.method} · Ctrl-C stops an answer, Ctrl-D quits", file=sys.stderr)
        while True:
            try:
                line = input("> ")
            except EOFError:
                print(file=sys.stderr)
                return 0
            if not line.strip():
                continue
            msgs.append({"role": "user", "content": line})
            try:
                # Ctrl-C ends the answer after the current step; what was written stays in the conversation
                with stop_requested() as cancel:
                    answer = _stream(target, target.chat_tokens(msgs), method, a, cancel)
            except KeyboardInterrupt:  # a second Ctrl-C, before the step ended
                print("\n[stopped]", file=sys.stderr)
                answer = ""
            msgs.append({"role": "assistant", "content": answer})


def _cmd_serve(a) -> int:
    from engine.server.bind import check_bind

    check_bind(a.host, a.api_key)  # before the model loads (and before fastapi and uvicorn are imported)
    from engine.server.serve import LocalServer

    with _load(a) as target, _ready(target) as ready:
        server = LocalServer(ready, a.method, _method_params(a), _drafter_folders(a), a.host, a.port, a.api_key,
                             a.queue)
        print(f"serving {server.model_id} with {a.method} at {server.url} (Ctrl-C stops)", file=sys.stderr)
        server.run()
    return 0


def _cmd_models(a) -> int:
    from engine.gguf_check import inspect
    from engine.store.embedded import DEFAULT_TARGET, ensure, is_installed

    if a.action == "install-default":
        if not is_installed(DEFAULT_TARGET):
            if not a.quiet:
                print(f"assembling {DEFAULT_TARGET.filename} ...", file=sys.stderr)
            ensure()
        if not a.quiet:
            print(DEFAULT_TARGET.path())
        return 0
    if a.action == "verify":
        info = inspect(a.path or DEFAULT_TARGET.path())
        print(f"ok: {info.name} ({info.architecture}, {info.n_layer} layers, n_embd {info.n_embd}, "
              f"vocab {info.n_vocab})")
        return 0
    _list_models()
    return 0


def _list_models() -> None:
    """What can be loaded: the embedded models assembled in the models folder, what the store installed
    (targets, drafters, draft models, from its registry: no network), and any other GGUF file left
    directly in the folder. One line each: size, kind, name, what --model or --drafter takes."""
    from engine.store.embedded import DEFAULT_DRAFT, DEFAULT_TARGET, is_installed
    from engine.store.model_store import ModelStore

    store = ModelStore()
    rows = []   # (bytes, kind, name, path, note)
    embedded = ((DEFAULT_TARGET, "target", "embedded default"), (DEFAULT_DRAFT, "draft", "embedded draft"))
    for model, kind, role in embedded:
        if model.path().is_file():
            state = "verified" if is_installed(model) else "not verified"
            rows.append((model.path().stat().st_size, kind, model.filename, model.path(), f"{role}, {state}"))
    for listing in store.installed():
        m = listing.model
        rows.append((m.size, m.kind, m.id, listing.path, "" if listing.present else "files missing or changed"))
    shown = {r[3] for r in rows}
    loose = sorted(store.root.glob("*.gguf")) if store.root.is_dir() else []
    rows += [(f.stat().st_size, "gguf", f.name, f, "not in the store") for f in loose if f not in shown]
    if not rows:
        print(f"no models in {store.root}")
    for size, kind, name, path, note in rows:
        print(f"{size / 2**20:9.1f} MiB  {kind:<7}  {name}  {path}" + (f"  ({note})" if note else ""))


def _cmd_bench(a) -> int:
    from engine.bench.command import run

    return run(a)


def train_recipe(a):
    """The training recipe a `d2sd train` command line asks for: the defaults with its overrides."""
    from dataclasses import replace

    from engine.drafters.device import cpu_bf16_fast
    from engine.train.pipeline import Recipe

    recipe = Recipe()
    for field, value in (("data_tokens", a.data_tokens), ("block_steps", a.block_steps), ("vp_steps", a.vp_steps),
                         ("intermediate_size", a.intermediate_size), ("vocab_size", a.vocab_size),
                         ("labels", a.labels), ("num_layers", a.num_layers), ("lam", a.lam)):
        if value is not None:
            recipe = replace(recipe, **{field: value})
    if a.raw_features:
        recipe = replace(recipe, scale_features=False)
    if a.int8:
        recipe = replace(recipe, int8=True)
    if not a.fp32 and cpu_bf16_fast():
        recipe = replace(recipe, bf16=True)
    if a.layers:
        recipe = replace(recipe, layers=tuple(int(x) for x in a.layers.split(",")))
    return recipe


def _cmd_train(a) -> int:
    from engine.train.pipeline import run

    recipe = train_recipe(a)
    if a.target:
        target = Path(a.target)
    else:
        from engine.store.embedded import ensure

        target = ensure()
    done = run(target, Path(a.out), recipe, hours=a.hours, n_threads=a.threads,
               answers=Path(a.answers) if a.answers else None,
               log=lambda m: print(m, file=sys.stderr, flush=True))
    if done is None:
        print("d2sd: the time budget ran out; run the same command again to continue", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    a = _parser().parse_args(argv)
    try:
        return {"generate": _cmd_generate, "chat": _cmd_chat, "serve": _cmd_serve, "models": _cmd_models,
                "bench": _cmd_bench, "train": _cmd_train}[a.cmd](a)
    except KeyboardInterrupt:
        return 130
    except (OSError, ValueError, RuntimeError, StoreError) as e:
        print(f"d2sd: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
