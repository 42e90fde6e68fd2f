"""A bounded load on loopback: 8 streaming clients x 5 requests on the tiny model. Every request completes
(a 503 is retried after its Retry-After), each stream carries its own answer whole, and the server still
answers afterwards. The figures of a run are in docs/server.md (python -m tests.engine.server.load)."""
import httpx2

from tests.engine.server.conftest import client, served
from tests.engine.server.load import prompt_for, run_load

CLIENTS, REQUESTS, TOKENS = 8, 5, 24


def test_concurrent_streams_each_get_their_whole_answer(tiny_gguf, isolated_cache):
    with served(tiny_gguf, queue_size=CLIENTS) as server:
        report = run_load(server.url, server.model_id, CLIENTS, REQUESTS, TOKENS)
        c = client(server.url)
        # the same prompts one at a time, not streamed: what each stream must have carried
        expected = {prompt_for(k, i): c.chat.completions.create(
            model=server.model_id, messages=[{"role": "user", "content": prompt_for(k, i)}], max_tokens=TOKENS,
            temperature=0).choices[0].message.content for k in range(CLIENTS) for i in range(REQUESTS)}
        health = httpx2.get(server.url.removesuffix("/v1") + "/health").json()
    print("\n" + report.figures())
    assert report.failures == []
    assert sorted(a.prompt for a in report.answers) == sorted(expected)
    # mostly distinct answers (the random model gives a few prompts the same one): a mixed-up stream would show
    assert len(set(expected.values())) > len(expected) * 3 // 4
    for a in report.answers:
        assert a.text == expected[a.prompt] and a.finish_reason == "length" and a.tokens == TOKENS
        assert len(a.ids) == 1
    assert health["model_loaded"] and not health["busy"] and health["waiting"] == 0
