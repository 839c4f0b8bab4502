"""The FastAPI app: ``POST /v1/chat/completions`` (whole or streamed), ``GET /v1/models``,
``GET /v1/stats`` and ``GET /health``.

Every waiting request watches its connection: when the client goes away, its job is
cancelled (dropped if queued, stopped at the next token if running), so an abandoned request
never holds the engine. With an API key, every ``/v1`` route needs ``Authorization: Bearer
<key>`` (401 otherwise); ``/health`` stays open. Errors use the OpenAI error envelope.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException

from pyvision_gym.agents.backends.transformers_backend import RowControl
from pyvision_gym.agents.chat import Generation
from pyvision_gym.agents.server.engine import ChatService, Job, JobCancelled
from pyvision_gym.agents.server.responses import Completion, StreamText
from pyvision_gym.agents.server.schema import (
    ChatRequest,
    RequestError,
    error_body,
    to_conversation,
    to_sampling,
)

__all__ = ["MAX_BODY_BYTES", "create_app"]

MAX_BODY_BYTES = 64 * 2**20
"""Largest request body accepted (by its ``Content-Length``)."""

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[Any]], Callable[[Any], Awaitable[None]]], Awaitable[None]]


def _error(status: int, message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, param, code), status_code=status)


def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """400 naming the first offending field (pydantic reports a 422 by default)."""
    errors = exc.errors() or [{"loc": (), "msg": "invalid request", "type": ""}]
    # the most telling error: an unknown field, else the deepest (a union reports every branch)
    first = max(errors, key=lambda e: (e.get("type") == "extra_forbidden", len(e.get("loc", ()))))
    loc = [str(p) for p in first.get("loc", ()) if p != "body" and p != "str" and "[" not in str(p)]
    param = ".".join(loc) or None
    if first.get("type") == "extra_forbidden":
        message = f"unsupported field {param!r}: this server does not implement it"
    elif first.get("type") == "json_invalid":
        message = f"invalid JSON: {first.get('msg')}"
    else:
        msg = str(first.get("msg", "")).removeprefix("Value error, ")
        message = f"{param}: {msg}" if param else msg
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    return _error(400, message + more, param=param)


def _add_error_handlers(app: FastAPI) -> None:
    async def request_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestError)
        return _error(exc.status, str(exc), "invalid_request_error", exc.param, exc.code)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return _validation_error(request, exc)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}", kind)

    app.add_exception_handler(RequestError, request_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)


def _auth(api_key: str | None) -> Callable[..., Awaitable[None]]:
    async def check(authorization: str | None = Header(None)) -> None:
        if api_key is None:
            return
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), api_key.encode()):
            raise RequestError("invalid or missing API key (send Authorization: Bearer <key>)", status=401, code="invalid_api_key")

    return check


def _limit_body(app: ASGIApp, limit: int) -> ASGIApp:
    """Refuse (413) requests whose ``Content-Length`` is over ``limit`` bytes."""

    async def wrapped(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Callable[[Any], Awaitable[None]]) -> None:
        if scope["type"] == "http":
            length = dict(scope.get("headers") or []).get(b"content-length", b"0")
            if not length.isdigit() or int(length) > limit:
                await _error(413, f"request body over {limit} bytes (or a bad Content-Length)")(scope, receive, send)
                return
        await app(scope, receive, send)

    return wrapped


# ----------------------------------------------------------------------------- waiting on jobs
async def _disconnected(request: Request) -> None:
    """Return when the client has gone (the request body is read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _watch(service: ChatService, job: Job, request: Request) -> tuple[asyncio.Future, asyncio.Task]:
    """The job's result as an asyncio future, and a task that cancels the job if the client
    disconnects first (it runs on its own even when nobody iterates the response any more)."""
    result = asyncio.wrap_future(job.future)
    result.add_done_callback(lambda f: f.cancelled() or f.exception())  # never "exception never retrieved"
    watcher = asyncio.ensure_future(_disconnected(request))
    watcher.add_done_callback(lambda t: t.cancelled() or service.cancel(job))
    return result, watcher


def _stop_watching(service: ChatService, job: Job, result: asyncio.Future, watcher: asyncio.Task) -> None:
    watcher.cancel()
    if not result.done():
        service.cancel(job)
        result.cancel()


async def _complete(service: ChatService, job: Job, request: Request) -> list[Generation] | None:
    """The job's generations, or ``None`` when the client disconnected first."""
    service.submit(job)
    result, watcher = _watch(service, job, request)
    try:
        await asyncio.wait({result, watcher}, return_when=asyncio.FIRST_COMPLETED)
        return result.result() if result.done() else None
    finally:
        _stop_watching(service, job, result, watcher)


def _sse(payload: dict[str, Any] | str) -> str:
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


async def _stream(service: ChatService, job_args: dict[str, Any], request: Request, reply: Completion, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events: a role chunk, content deltas as tokens come, one final chunk per
    choice (rest of the text, finish reason), the usage chunk if asked, ``[DONE]``."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[int | None] = asyncio.Queue()

    def on_token(index: int, row: RowControl) -> None:  # engine thread
        try:
            loop.call_soon_threadsafe(events.put_nowait, index)
        except RuntimeError:  # the event loop is gone (server stopping)
            row.cancelled.set()

    job = service.submit(Job(**job_args, on_token=on_token))
    result, watcher = _watch(service, job, request)
    for waited in (result, watcher):
        waited.add_done_callback(lambda _: events.put_nowait(None))
    texts = [StreamText(reply.tokenizer, job.sampling.stop, reply.include_stop) for _ in range(job.n)]
    try:
        yield _sse(reply.chunk([reply.delta(i, {"role": "assistant", "content": ""}) for i in range(job.n)]))
        while not result.done() and not watcher.done():
            ready = {await events.get()}
            while not events.empty():
                ready.add(events.get_nowait())
            for i in sorted(i for i in ready if i is not None):
                choice = _token_delta(reply, texts[i], i, job.controls[i])
                if choice is not None:
                    yield _sse(reply.chunk([choice]))
        if not result.done():
            return
        try:
            gens = result.result()
        except Exception as e:
            yield _sse(error_body(f"generation failed: {type(e).__name__}: {e}", "server_error"))
            return
        for i, (gen, text) in enumerate(zip(gens, texts, strict=True)):
            rest = gen.token_ids[text.tokens_sent :] if gen.token_ids else []
            logprobs = reply.logprobs(rest, (gen.logprobs or [])[text.tokens_sent :], (gen.extra.get("top_logprobs") or [])[text.tokens_sent :])
            yield _sse(reply.chunk([reply.delta(i, {"content": text.finish(gen)}, logprobs, gen)]))
        if include_usage:
            yield _sse(reply.chunk([], usage=reply.usage(gens)))
        yield _sse("[DONE]")
    finally:
        _stop_watching(service, job, result, watcher)


def _token_delta(reply: Completion, text: StreamText, index: int, row: RowControl) -> dict[str, Any] | None:
    """The streamed choice for a row's new tokens (``None`` when there is nothing to send)."""
    n = len(row.token_ids)
    delta = text.update(row.token_ids[:n])
    logprobs = None
    if reply.top_logprobs is not None and n > text.tokens_sent:
        k = min(n, len(row.logprobs), len(row.top_logprobs))
        logprobs = reply.logprobs(row.token_ids[text.tokens_sent : k], row.logprobs[text.tokens_sent : k], row.top_logprobs[text.tokens_sent : k])
        text.tokens_sent = k
    if not delta and not (logprobs and logprobs["content"]):
        return None
    return reply.delta(index, {"content": delta}, logprobs)


# ----------------------------------------------------------------------------- the app
def _routes(service: ChatService, api_key: str | None) -> APIRouter:
    router = APIRouter(dependencies=[Depends(_auth(api_key))])

    @router.get("/v1/models")
    @router.get("/models", include_in_schema=False)
    async def models() -> dict[str, Any]:
        return service.models()

    @router.get("/v1/stats")
    async def stats() -> dict[str, Any]:
        return service.stats()

    @router.post("/v1/chat/completions", response_model=None)
    @router.post("/chat/completions", include_in_schema=False, response_model=None)
    async def chat_completions(body: ChatRequest, request: Request) -> JSONResponse | StreamingResponse:
        if body.model not in (None, service.model_name):
            raise RequestError(f"model {body.model!r} is not served here (serving {service.model_name!r})", "model", 404, "model_not_found")
        conversation = await run_in_threadpool(to_conversation, body)
        job_args = {"conversation": conversation, "sampling": to_sampling(body), "n": body.n, "top_logprobs": body.top}
        reply = Completion(service.model_name, service.backend.tokenizer, body.include_stop_str_in_output, body.top)
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            events = _stream(service, job_args, request, reply, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        try:
            gens = await _complete(service, Job(**job_args), request)
        except JobCancelled as e:  # the server is shutting down
            return _error(503, str(e), "server_error")
        except Exception as e:  # the backend failed: the client hears why, the server goes on
            return _error(500, f"generation failed: {type(e).__name__}: {e}", "server_error")
        if gens is None:  # nobody is listening any more
            return _error(499, "client closed the request")
        return JSONResponse(reply.body(gens))

    return router


def create_app(service: ChatService, api_key: str | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> ASGIApp:
    """The ASGI app serving ``service`` (``api_key``: require ``Authorization: Bearer``)."""
    app = FastAPI(title="pyvision-gym", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.service = service
    _add_error_handlers(app)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(_routes(service, api_key))
    return _limit_body(app, max_body_bytes)
