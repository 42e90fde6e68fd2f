"""A bounded load on a running server: `clients` threads, each streaming `requests` greedy chat answers
with the openai client, one distinct prompt per request. A 503 is counted and retried after its
Retry-After; anything else that goes wrong (a cut stream, an error) is recorded as a failure.

    python -m tests.engine.server.load --model GGUF [--clients 8] [--requests 5] [--queue 8]

prints the figures docs/server.md records (it starts its own server on 127.0.0.1)."""
from __future__ import annotations

import argparse
import statistics
import threading
import time
from dataclasses import dataclass, field

import openai


@dataclass
class Answer:
    prompt: str
    text: str
    finish_reason: str | None
    seconds: float
    first_token_s: float
    tokens: int
    ids: set[str]              # chunk ids seen: one per answer unless streams were mixed up


@dataclass
class Report:
    answers: list[Answer] = field(default_factory=list)
    busy: int = 0              # 503s received (each retried)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def figures(self) -> str:
        lat = sorted(a.seconds for a in self.answers)
        first = sorted(a.first_token_s for a in self.answers)
        tokens = sum(a.tokens for a in self.answers)

        def p(values, q):
            return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")
        return (f"{len(self.answers)} answers, {len(self.failures)} failures, {self.busy} busy replies (503, retried); "
                f"{self.seconds:.1f} s wall, {len(self.answers) / self.seconds:.1f} answers/s, "
                f"{tokens / self.seconds:.0f} tokens/s overall; latency p50 {p(lat, 0.5):.2f} s "
                f"p95 {p(lat, 0.95):.2f} s max {max(lat, default=0):.2f} s; first token p50 {p(first, 0.5):.2f} s "
                f"p95 {p(first, 0.95):.2f} s; mean {statistics.fmean(lat) if lat else 0:.2f} s")


def prompt_for(client: int, request: int) -> str:
    return f"def hello {client} world {request} data list"


def _stream_one(c: openai.OpenAI, model: str, prompt: str, max_tokens: int) -> Answer:
    t0 = time.perf_counter()
    first, text, ids, finish, tokens = None, [], set(), None, 0
    for chunk in c.chat.completions.create(model=model, messages=[{"role": "user", "content": prompt}],
                                           max_tokens=max_tokens, temperature=0, stream=True,
                                           stream_options={"include_usage": True}):
        ids.add(chunk.id)
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        if not chunk.choices:
            continue
        piece = chunk.choices[0].delta.content
        if piece and first is None:
            first = time.perf_counter() - t0
        text.append(piece or "")
        finish = chunk.choices[0].finish_reason or finish
    return Answer(prompt, "".join(text), finish, time.perf_counter() - t0, first or 0.0, tokens, ids)


def run_load(url: str, model: str, clients: int = 8, requests: int = 5, max_tokens: int = 24) -> Report:
    report, lock = Report(), threading.Lock()

    def client_thread(k: int) -> None:
        c = openai.OpenAI(base_url=url, api_key="unused", max_retries=0, timeout=120)
        for i in range(requests):
            while True:
                try:
                    answer = _stream_one(c, model, prompt_for(k, i), max_tokens)
                except openai.APIStatusError as e:
                    if e.status_code != 503:
                        with lock:
                            report.failures.append(f"client {k} request {i}: {e.status_code} {e.message}")
                        break
                    with lock:
                        report.busy += 1
                    time.sleep(int(e.response.headers["Retry-After"]))
                    continue
                except Exception as e:  # a cut stream or a dropped connection: the load test's finding
                    with lock:
                        report.failures.append(f"client {k} request {i}: {type(e).__name__}: {e}")
                    break
                with lock:
                    report.answers.append(answer)
                break

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client_thread, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report.seconds = time.perf_counter() - t0
    return report


def main() -> None:
    from tests.engine.server.conftest import served

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--method", default="auto")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--queue", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--ctx", type=int, default=512)
    a = ap.parse_args()
    with served(a.model, a.method, n_ctx=a.ctx, queue_size=a.queue) as server:
        report = run_load(server.url, server.model_id, a.clients, a.requests, a.max_tokens)
    print(f"{a.clients} clients x {a.requests} requests, queue {a.queue}, {a.max_tokens} tokens each, "
          f"method {a.method}: {report.figures()}")
    for failure in report.failures:
        print(failure)


if __name__ == "__main__":
    main()
