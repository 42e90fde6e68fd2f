"""The embedded Qwen target served with `auto` (its shipped drafters, its cost curve) to the openai client:
the greedy answer is plain decoding's up to the first near-tie, and a follow-up turn reads only its new
tokens."""
import pytest

from engine.calibrate import calibrate
from engine.target import Target, TargetSettings
from tests.engine.greedy_check import NEAR_TIE, greedy_reference
from tests.engine.server.conftest import client, served

pytestmark = pytest.mark.qwen
TOKENS = 32


def test_auto_through_the_openai_client(qwen_path):
    messages = [{"role": "user", "content": "Write a Python function that returns the square of a number."}]
    with Target.load(qwen_path, TargetSettings(n_ctx=1024)) as target:
        # one round of the cost curve (auto itself measures three), cached for the server to read: ~50 s here
        calibrate(target, repeats=1)
        ref, margins = greedy_reference(target, target.chat_tokens(messages), TOKENS)
        plain = [target.detokenize(ref[:n]) for n in range(TOKENS + 1)]
    with served(qwen_path, "auto", n_ctx=1024) as server:
        c = client(server.url, timeout=600)
        answer = c.chat.completions.create(model=server.model_id, messages=messages, max_tokens=TOKENS, temperature=0)
        text = answer.choices[0].message.content
        timings = answer.model_extra["timings"]
        follow = c.chat.completions.create(model=server.model_id, max_tokens=8, temperature=0, stream=True,
                                           stream_options={"include_usage": True},
                                           messages=messages + [{"role": "assistant", "content": text},
                                                                {"role": "user", "content": "Now the cube."}])
        chunks = list(follow)
    assert timings["method"] == "auto" and timings["tau"] >= 1 and answer.usage.completion_tokens <= TOKENS
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens >= answer.usage.prompt_tokens

    # equal up to the first near-tie, where a batched verify pass may legitimately pick the other token
    sure = next((i for i, m in enumerate(margins) if m < NEAR_TIE), TOKENS)
    sure = min(sure, answer.usage.completion_tokens)
    print(f"\nauto: tau {timings['tau']:.2f}, {timings['predicted_per_second']:.1f} tok/s, "
          f"{timings['draft_accepted']}/{timings['draft_proposed']} drafts accepted; equal for {sure} tokens")
    assert text.startswith(plain[sure])
