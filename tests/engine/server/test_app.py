"""The HTTP API as a client sees it: the real openai client (and raw HTTP where a client would refuse to
send the request) against the real server on the tiny model."""
import json

import httpx2
import openai
import pytest

from tests.engine.server.conftest import client, served

USER = [{"role": "user", "content": "def hello world"}]


def test_models_and_health(server):
    assert [m.id for m in client(server.url).models.list().data] == [server.model_id]
    health = httpx2.get(server.url.removesuffix("/v1") + "/health").json()
    assert health["model_loaded"] is True and health["model"] == server.model_id and health["method"] == "auto"


def test_chat_plain_and_streamed_give_the_same_answer_with_statistics(server):
    c = client(server.url)
    plain = c.chat.completions.create(model=server.model_id, messages=USER, max_tokens=12, temperature=0)
    assert plain.choices[0].message.role == "assistant" and plain.choices[0].finish_reason == "length"
    assert plain.usage.completion_tokens == 12 and plain.usage.prompt_tokens > 0
    t = plain.model_extra["timings"]
    assert t["method"] == "auto" and t["predicted_n"] == 12 and t["tau"] >= 1 and t["predicted_per_second"] > 0
    assert t["prompt_ms"] > 0 and t["predicted_ms"] > 0 and 0 <= t["acceptance"] <= 1

    chunks = list(c.chat.completions.create(model=server.model_id, messages=USER, max_tokens=12, temperature=0,
                                            stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == plain.choices[0].message.content
    last_choice = [ch for ch in chunks if ch.choices][-1]
    assert last_choice.choices[0].finish_reason == "length" and last_choice.model_extra["timings"]["predicted_n"] == 12
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 12


def test_completions_plain_and_streamed(server):
    c = client(server.url)
    plain = c.completions.create(model=server.model_id, prompt="def data list", max_tokens=10, temperature=0)
    assert plain.object == "text_completion" and plain.usage.completion_tokens == 10
    streamed = c.completions.create(model=server.model_id, prompt="def data list", max_tokens=10, temperature=0,
                                    stream=True)
    assert "".join(ch.choices[0].text for ch in streamed) == plain.choices[0].text


def test_a_stream_ends_with_done(server):
    body = {"model": server.model_id, "prompt": "hello", "max_tokens": 4, "stream": True, "temperature": 0}
    with httpx2.stream("POST", server.url + "/completions", json=body) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        data = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]" and json.loads(data[-2])["choices"][0]["finish_reason"] == "length"


def test_a_follow_up_turn_reuses_the_cached_conversation(tiny_gguf, isolated_cache):
    # ar, not auto: auto may re-measure a cost curve taken under load between two answers, which resets
    # the KV (the follow-up then honestly reports 0 cached tokens)
    with served(tiny_gguf, "ar") as server:
        _follow_up_reuses_the_cache(server)


def _follow_up_reuses_the_cache(server):
    c = client(server.url)
    first = c.chat.completions.create(model=server.model_id, messages=USER, max_tokens=8, temperature=0)
    turn = USER + [{"role": "assistant", "content": first.choices[0].message.content},
                   {"role": "user", "content": "and the data"}]
    second = c.chat.completions.create(model=server.model_id, messages=turn, max_tokens=8, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens - 1 and second.model_extra["timings"]["cache_n"] == cached
    assert second.model_extra["timings"]["prompt_n"] == second.usage.prompt_tokens - cached


def test_sampling_with_a_seed_repeats(server):
    c = client(server.url)
    ask = dict(model=server.model_id, messages=USER, max_tokens=12, temperature=0.9, top_p=0.9, seed=7)
    a, b = (c.chat.completions.create(**ask).choices[0].message.content for _ in range(2))
    assert a == b


def test_a_stop_string_ends_the_answer_before_it(server):
    c = client(server.url)
    full = c.completions.create(model=server.model_id, prompt="def data list", max_tokens=16, temperature=0)
    text = full.choices[0].text
    stop = text[5:8]
    cut = c.completions.create(model=server.model_id, prompt="def data list", max_tokens=16, temperature=0,
                               stop=[stop])
    assert cut.choices[0].finish_reason == "stop" and cut.choices[0].text == text[:text.index(stop)]


def _error(e: openai.APIStatusError) -> dict:
    body = e.response.json()["error"]
    assert set(body) == {"message", "type", "param", "code"} and "Traceback" not in body["message"]
    return body


@pytest.mark.parametrize("change, status, param", [
    ({"model": "gpt-4o"}, 404, "model"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"max_tokens": -3}, 400, "max_tokens"),
    ({"temperature": -0.1}, 400, "temperature"),
    ({"top_p": 0}, 400, "top_p"),
    ({"top_p": 1.5}, 400, "top_p"),
    ({"n": 2}, 400, "n"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages.0.role"),
    ({"stop": 5}, 400, "stop"),
    ({"messages": [{"role": "user", "content": "hello " * 600}]}, 400, "messages"),
])
def test_bad_chat_requests_get_an_openai_error(server, change, status, param):
    ask = {"model": server.model_id, "messages": USER, "max_tokens": 4, **change}
    with pytest.raises(openai.APIStatusError) as e:
        client(server.url).chat.completions.create(**ask)
    assert e.value.status_code == status
    body = _error(e.value)
    assert body["param"] == param and body["type"] == "invalid_request_error"


def test_a_prompt_longer_than_the_context(server):
    with pytest.raises(openai.BadRequestError) as e:
        client(server.url).completions.create(model=server.model_id, prompt="hello " * 600, max_tokens=4)
    body = _error(e.value)
    assert body["code"] == "context_length_exceeded" and "512" in body["message"]


@pytest.mark.parametrize("raw, param, words", [
    ('{"model": "tiny", "messages": [', None, "not valid JSON"),
    ("[1, 2]", None, "JSON object"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "model", "missing required field 'model'"),
    ('{"model": "tiny"}', "messages", "missing required field 'messages'"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "4"}', "max_tokens", "integer"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": 5}]}', "messages.0.content",
     "must be a string or a list of"),
    ('{"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}', "temperature",
     "number"),
])
def test_malformed_or_wrong_typed_bodies_are_400(server, raw, param, words):
    r = httpx2.post(server.url + "/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    body = r.json()["error"]
    assert body["param"] == param and words in body["message"] and body["type"] == "invalid_request_error"


def test_a_form_post_is_not_read_as_json(server):
    """A web page may POST a text/plain body without a CORS preflight: it is refused, not run."""
    r = httpx2.post(server.url + "/completions", content=json.dumps({"model": server.model_id, "prompt": "hi"}),
                    headers={"Content-Type": "text/plain", "Origin": "https://example.com"})
    assert r.status_code == 400 and "access-control-allow-origin" not in r.headers


def test_no_cors_and_only_loopback_host_names(server):
    r = httpx2.options(server.url + "/chat/completions",
                       headers={"Origin": "https://example.com", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in r.headers
    # a page on a rebinding domain reaches 127.0.0.1 with its own name in Host
    assert httpx2.get(server.url + "/models", headers={"Host": "attacker.example"}).status_code == 400


def test_an_api_key_is_required_when_set(tiny_gguf, isolated_cache):
    with served(tiny_gguf, "ar", api_key="s3cret") as server:
        with pytest.raises(openai.AuthenticationError) as e:
            client(server.url, api_key="wrong").models.list()
        assert _error(e.value)["code"] == "invalid_api_key"
        assert httpx2.get(server.url + "/models").status_code == 401
        assert httpx2.get(server.url.removesuffix("/v1") + "/health").status_code == 401
        answer = client(server.url, api_key="s3cret").completions.create(model=server.model_id, prompt="hi",
                                                                         max_tokens=3, temperature=0)
        assert answer.usage.completion_tokens == 3
