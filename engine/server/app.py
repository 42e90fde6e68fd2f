"""The OpenAI-compatible HTTP API over one loaded target (FastAPI): /v1/models, /v1/chat/completions,
/v1/completions (plain, or streamed as server-sent events ending in `data: [DONE]`) and /health.

Every answer carries the engine's decoding statistics in `timings`, named as llama-server names its
own (prompt_n, predicted_per_second, ...) plus the speculative ones (method, tau, acceptance). Every
error is an OpenAI-style body {"error": {"message", "type", "param", "code"}}, never a traceback.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from typing import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sse_starlette.sse import EventSourceResponse
from starlette.exceptions import HTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from engine.events import Finished, RunStats, TextDelta
from engine.server.generation import Failed, GenerationWorker, Job, QueueFull, Refused, Started
from engine.server.requests import ChatRequest, CompletionRequest

log = logging.getLogger("d2sd.server")
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]
FINISH = {"eos": "stop", "stop": "stop", "length": "length", "context": "length", "cancel": "stop"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers

    def response(self) -> JSONResponse:
        return JSONResponse({"error": {"message": self.message, "type": self.kind, "param": self.param,
                                       "code": self.code}}, self.status, headers=self.headers)


class _ClientGone(Exception):
    pass


def timings(s: RunStats) -> dict:
    """The run's statistics: llama-server's `timings` fields, then the speculative decoding ones."""
    decode_s = s.total_s - s.prefill_s
    read = s.prompt_tokens - s.reused_tokens
    return {"cache_n": s.reused_tokens, "prompt_n": read, "prompt_ms": s.prefill_s * 1000,
            "prompt_per_second": read / s.prefill_s if s.prefill_s > 0 else 0.0,
            "predicted_n": s.new_tokens, "predicted_ms": decode_s * 1000, "predicted_per_second": s.tokens_per_s,
            "method": s.method, "tau": s.tau, "target_passes": s.target_passes, "draft_proposed": s.proposed,
            "draft_accepted": s.accepted, "acceptance": s.acceptance_rate}


def usage(s: RunStats) -> dict:
    return {"prompt_tokens": s.prompt_tokens, "completion_tokens": s.new_tokens,
            "total_tokens": s.prompt_tokens + s.new_tokens,
            "prompt_tokens_details": {"cached_tokens": s.reused_tokens}}


class _Shape:
    """How one kind of completion is written: chat (message / delta) or text completion (text)."""

    def __init__(self, chat: bool, model: str):
        self.chat, self.model = chat, model
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    def _wrap(self, choices: list, chunk: bool, **extra) -> dict:
        kind = ("chat.completion.chunk" if chunk else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model, "choices": choices,
                **extra}

    def answer(self, fin: Finished) -> dict:
        choice = {"index": 0, "finish_reason": FINISH[fin.stats.stop_reason], "logprobs": None}
        choice |= {"message": {"role": "assistant", "content": fin.text}} if self.chat else {"text": fin.text}
        return self._wrap([choice], False, usage=usage(fin.stats), timings=timings(fin.stats))

    def chunk(self, text: str | None, finish: str | None = None, **extra) -> dict:
        """text None: the opening chat chunk (the role)."""
        if self.chat:
            delta = {"role": "assistant", "content": ""} if text is None else ({"content": text} if text else {})
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return self._wrap([choice], True, **extra)

    def usage_chunk(self, fin: Finished) -> dict:
        return self._wrap([], True, usage=usage(fin.stats))


def create_app(worker: GenerationWorker, model_id: str, method: str, api_key: str | None = None,
               loopback: bool = True) -> FastAPI:
    """`loopback`: the server listens on a loopback address only, so requests must name a loopback host
    (a web page cannot reach it through DNS rebinding). Any other bind requires `api_key`."""
    if not loopback and not api_key:
        raise ValueError("a server reachable from other machines needs an API key")
    app = FastAPI(title="d2sd", docs_url=None, redoc_url=None, openapi_url=None)
    if api_key:
        app.add_middleware(_RequireKey, key=api_key)
    if loopback:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES)

    @app.exception_handler(ApiError)
    async def _api_error(request, e: ApiError):
        return e.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, e: RequestValidationError):
        return _validation_error(e.errors()).response()

    @app.exception_handler(HTTPException)
    async def _http_error(request, e: HTTPException):
        return ApiError(e.status_code, str(e.detail), code=None if e.status_code != 404 else "not_found",
                        headers=e.headers).response()

    @app.exception_handler(Exception)
    async def _bug(request, e: Exception):
        log.exception("unexpected error")
        return ApiError(500, f"internal error: {type(e).__name__}", kind="server_error").response()

    @app.get("/health")
    async def health():
        return {"status": "ok", "model_loaded": True, "model": model_id, "method": method,
                "busy": worker.busy, "waiting": worker.waiting}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card(model_id)]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str):
        _check_model(name, model_id)
        return _model_card(model_id)

    @app.post("/v1/chat/completions")
    async def chat(body: ChatRequest, request: Request):
        _check_model(body.model, model_id)
        messages = [m.plain() for m in body.messages]
        job = _job(body, lambda target: target.chat_tokens(messages), body.limit())
        return await _respond(worker, job, request, body, _Shape(True, model_id), "messages")

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        _check_model(body.model, model_id)
        text = body.text()
        job = _job(body, lambda target: target.tokenize(text), body.limit())
        return await _respond(worker, job, request, body, _Shape(False, model_id), "prompt")

    return app


def _model_card(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": "d2sd"}


def _check_model(name: str, model_id: str) -> None:
    if name != model_id:
        raise ApiError(404, f"the model {name!r} does not exist; this server serves {model_id!r}", "model",
                       "model_not_found")


def _job(body, prompt: Callable, max_tokens: int | None) -> Job:
    try:
        sampler = body.sampler()
    except ValueError as e:  # combinations the request model cannot see alone
        raise ApiError(400, str(e)) from None
    return Job(prompt, sampler, max_tokens, body.stops(), asyncio.get_running_loop())


def _validation_error(errors: list[dict]) -> ApiError:
    """The first problem, in words a client's user can act on."""
    e = errors[0]
    if e["type"] == "json_invalid":
        return ApiError(400, f"the request body is not valid JSON: {e.get('ctx', {}).get('error', e['msg'])}",
                        code="invalid_json")
    where = [str(part) for part in e["loc"] if part != "body"]
    param = ".".join(where) or None
    if e["type"] == "missing":
        return ApiError(400, f"missing required field {param!r}" if param else "the request has no JSON body",
                        param, "missing_field")
    if not where and e["type"] == "model_attributes_type":
        return ApiError(400, "the request body must be a JSON object (sent as Content-Type: application/json)",
                        code="invalid_body")
    msg = e["msg"].removeprefix("Value error, ")
    return ApiError(400, f"{param}: {msg}" if param else msg, param, "invalid_value")


class _Events:
    """A job's events as one request reads them. Until its response starts streaming (sse-starlette
    watches the connection from then on) it checks twice a second whether the client is still there."""

    def __init__(self, job: Job, request: Request):
        self.job, self.request, self._checked = job, request, time.monotonic()

    async def next(self):
        while True:
            try:
                event = await asyncio.wait_for(self.job.events.get(), timeout=0.5)
            except asyncio.TimeoutError:
                event = None
            if time.monotonic() - self._checked >= 0.5:
                self._checked = time.monotonic()
                if await self.request.is_disconnected():
                    self.job.cancel.set()  # the generation thread stops at its next step (or skips a queued job)
                    raise _ClientGone
            if event is not None:
                return event


async def _respond(worker: GenerationWorker, job: Job, request: Request, body, shape: _Shape, prompt_field: str):
    try:
        worker.submit(job)
    except QueueFull:
        wait = worker.retry_after()
        raise ApiError(503, f"the server is busy ({worker.waiting} requests waiting); retry in {wait} s",
                       code="server_busy", kind="server_error", headers={"Retry-After": str(wait)}) from None
    events = _Events(job, request)
    try:
        first = await events.next()
        if isinstance(first, Refused):
            raise ApiError(400, first.message, prompt_field, "context_length_exceeded")
        if isinstance(first, Failed):
            raise ApiError(500, first.message, kind="server_error")
        assert isinstance(first, Started)
        if body.stream:
            usage_too = bool(body.stream_options and body.stream_options.include_usage)
            return EventSourceResponse(_stream(job, shape, usage_too), ping=15)
        while not isinstance(event := await events.next(), Finished):
            if isinstance(event, Failed):
                raise ApiError(500, event.message, kind="server_error")
        return JSONResponse(shape.answer(event))
    except _ClientGone:
        return Response(status_code=499)  # nobody reads it: the client has left
    except BaseException:
        job.cancel.set()  # an error answer, or the server stopping this handler: the generation is nobody's
        raise


async def _stream(job: Job, shape: _Shape, usage_too: bool):
    """Chunks as the engine streams them. sse-starlette cancels this generator when the client
    disconnects; `finally` then tells the generation thread to stop at its next step."""
    try:
        yield json.dumps(shape.chunk(None))
        while True:
            event = await job.events.get()
            if isinstance(event, TextDelta):
                if event.text:
                    yield json.dumps(shape.chunk(event.text))
            elif isinstance(event, Finished):
                yield json.dumps(shape.chunk("", FINISH[event.stats.stop_reason], timings=timings(event.stats)))
                if usage_too:
                    yield json.dumps(shape.usage_chunk(event))
                break
            elif isinstance(event, Failed):
                yield json.dumps({"error": {"message": event.message, "type": "server_error", "param": None,
                                            "code": None}})
                break
        yield "[DONE]"
    finally:
        job.cancel.set()


class _RequireKey:
    """Every request must send `Authorization: Bearer <key>` (compared in constant time)."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                error = ApiError(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'",
                                 code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)
