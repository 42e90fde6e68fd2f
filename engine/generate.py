"""The streaming loop shared by every method: propose a trie, verify it in one target pass, walk it,
commit the accepted path, stream the new text and the step's statistics."""
from __future__ import annotations

import threading
import time
from typing import Iterator

from engine.events import Event, Finished, RunStats, StepStats, TextDelta, count_acceptance
from engine.methods.base import Method
from engine.stops import StopMatcher
from engine.verify import Sampler, SamplerSettings, accept


def generate(target, prompt: list[int], method: Method, sampler: SamplerSettings = SamplerSettings(),
             max_tokens: int = 512, stop: tuple[str, ...] | list[str] = (),
             cancel: threading.Event | None = None) -> Iterator[Event]:
    """Yields TextDelta and StepStats events, then one Finished. A set `cancel` ends it within one step."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")
    clock = time.perf_counter
    t0 = clock()
    sample = Sampler(sampler)
    target.set_sequences(1 if method.chain else target.settings.n_seq_max)
    anchor, reused = target.prepare(prompt, max_reuse=method.context_len())
    method.start(prompt, reused, target.features)
    prefill_s = clock() - t0

    stream, stopper = target.text_stream(), StopMatcher(stop)
    out_tokens: list[int] = []
    text: list[str] = []
    stats = RunStats(method=method.name, prompt_tokens=len(prompt), reused_tokens=reused, new_tokens=0,
                     target_passes=0, proposed=0, accepted=0, ttft_s=0.0, total_s=0.0,
                     prefill_s=prefill_s, draft_s=0.0, vp_s=0.0, verify_s=0.0, other_s=0.0, stop_reason="")
    reason = ""
    while not reason:
        if cancel is not None and cancel.is_set():
            reason = "cancel"
            break
        t_step = clock()
        proposal = method.propose(target.tokens, anchor)
        t_draft = clock()
        room = target.n_ctx - len(target.tokens)
        if room < 1:
            reason = "context"  # not one more token fits: end the answer, keep what was said
            break
        trie = proposal.trie.within_depth(room)
        logits, flat = target.decode_tree(trie, copy_logits=False)  # read by the walk before the next pass
        t_verify = clock()
        walk = accept(trie, logits, sample)
        target.commit(trie, flat, walk.path)
        t_observe = clock()
        method.observe([trie.tokens[i] for i in walk.path], target.features)
        t_observed = clock()  # the drafters reading the accepted tokens' features: drafter time, not host work

        emitted, provenance = [], []
        for tok, prov in zip(walk.tokens, walk.provenance):
            if target.is_eog(tok):
                reason = "eos"
                break
            emitted.append(tok)
            provenance.append(prov)
            if len(out_tokens) + len(emitted) >= max_tokens:
                reason = "length"
                break
        visible, hit = stopper.feed("".join(stream.push(t) for t in emitted))
        if hit:
            reason = "stop"
        out_tokens.extend(emitted)
        text.append(visible)
        anchor = walk.tokens[-1]

        stats.target_passes += 1
        stats.proposed += len(trie) - 1
        stats.accepted += len(walk.path) - 1
        stats.new_tokens = len(out_tokens)
        if stats.target_passes == 1:
            stats.ttft_s = clock() - t0
        t_end = clock()
        step = StepStats(step=stats.target_passes, tree_nodes=len(trie), proposed=len(trie) - 1,
                         accepted=len(walk.path) - 1, emitted=len(emitted),
                         draft_s=t_draft - t_step + t_observed - t_observe, vp_s=proposal.vp_s,
                         verify_s=t_verify - t_draft, other_s=t_end - t_verify - (t_observed - t_observe),
                         tree=trie.view(walk.path))
        count_acceptance(stats.accept_tries, stats.accept_hits, step.tree)
        stats.draft_s += step.draft_s
        stats.vp_s += step.vp_s
        stats.verify_s += step.verify_s
        stats.other_s += step.other_s
        yield TextDelta(visible, emitted, provenance)
        yield step

    if reason != "stop":
        tail = stopper.feed(stream.flush())[0] + stopper.flush()
        if tail:
            text.append(tail)
            yield TextDelta(tail, [], [])
    stats.stop_reason = reason
    stats.total_s = clock() - t0
    yield Finished("".join(text), out_tokens, stats)

