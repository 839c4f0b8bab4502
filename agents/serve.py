"""An OpenAI-compatible chat server over the transformers backend (``pyvision-gym serve PATH``).

Endpoints: ``POST /v1/chat/completions`` (text and ``image_url`` content parts; images must
be ``data:`` URLs — the server never fetches anything), ``GET /v1/models`` (the served model,
with its ``model_hash``), ``GET /health``. No streaming, ``n`` = 1.

Server choice: the standard library's ``ThreadingHTTPServer`` rather than FastAPI + uvicorn.
Generation is compute-bound and runs in one batching thread either way, so an async stack
buys nothing; each connection thread only parses JSON and waits on a future. Concurrent
requests are grouped into one batched ``generate`` (requests with the same sampling settings
that arrive within ``batch_wait_s``), which is what makes serving many environments at once
fast. The stdlib keeps ``serve`` free of extra dependencies and the API surface is small
enough to validate by hand. It is meant for loopback / trusted networks (no auth, no TLS).

Stop strings follow the OpenAI API: the text stops before the stop string, which is not
included; like vLLM, the choice carries ``stop_reason`` (the stop string that matched), so
clients can restore it.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import queue
import threading
import time
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from pyvision_gym.agents.backends.base import Backend
from pyvision_gym.agents.backends.transformers_backend import HFBackend
from pyvision_gym.agents.chat import SamplingConfig

MAX_BODY_BYTES = 64 * 2**20
DEFAULT_MAX_TOKENS = 1024


class RequestError(ValueError):
    """A client error: answered with HTTP 400 and an OpenAI-style error body."""


@dataclass
class _Job:
    conversation: list[dict[str, Any]]
    sampling: SamplingConfig
    future: Future


class ChatService:
    """Owns the backend; one thread runs batched generation for queued requests."""

    def __init__(self, backend: Backend, model_name: str, max_batch_size: int = 8, batch_wait_s: float = 0.01) -> None:
        self.backend = backend
        self.model_name = model_name
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_wait_s = float(batch_wait_s)
        self.created = int(time.time())
        self.batch_sizes: list[int] = []  # one entry per generate call (for monitoring and tests)
        self._queue: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="vlm-serve-batcher", daemon=True)
        self._thread.start()

    def submit(self, conversation: list[dict[str, Any]], sampling: SamplingConfig) -> Future:
        fut: Future = Future()
        self._queue.put(_Job(conversation, sampling, fut))
        return fut

    def _loop(self) -> None:
        held: list[_Job] = []
        while True:
            job = held.pop(0) if held else self._queue.get()
            if job is None:
                return
            batch, rest = [job], []
            for h in held:  # requests set aside earlier for different sampling settings
                (batch if h.sampling == job.sampling and len(batch) < self.max_batch_size else rest).append(h)
            held = rest
            deadline = time.monotonic() + self.batch_wait_s
            while len(batch) < self.max_batch_size:
                left = deadline - time.monotonic()
                try:
                    nxt = self._queue.get(timeout=max(left, 0.0)) if left > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                (batch if nxt.sampling == job.sampling else held).append(nxt)
            self.batch_sizes.append(len(batch))
            try:
                gens = self.backend.generate([j.conversation for j in batch], job.sampling)
            except Exception as e:  # the clients get the error; the server keeps serving
                for j in batch:
                    j.future.set_exception(e)
            else:
                for j, g in zip(batch, gens, strict=True):
                    j.future.set_result(g)

    def models(self) -> dict[str, Any]:
        desc = self.backend.describe()
        entry = {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "pyvision-gym",
            "root": desc.get("model"),
            "model_hash": desc.get("model_hash"),
            "backend": desc.get("backend"),
            "max_pixels": getattr(self.backend, "max_pixels", None),
        }
        return {"object": "list", "data": [entry]}

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.backend.close()


# ----------------------------------------------------------------------------- request parsing
def _decode_image(url: str) -> Any:
    if not url.startswith("data:"):
        raise RequestError("only data: image URLs are accepted (this server fetches nothing)")
    header, sep, data = url.partition(",")
    if not sep or ";base64" not in header:
        raise RequestError("image data URLs must be base64 encoded (data:image/png;base64,...)")
    try:
        im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        im.load()
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError) as e:
        raise RequestError(f"cannot decode image: {e}") from e
    return im.convert("RGB")


def parse_messages(raw: Any) -> list[dict[str, Any]]:
    """OpenAI chat messages → the agents' dict messages (PIL images in ``image`` parts)."""
    if not isinstance(raw, list) or not raw:
        raise RequestError("'messages' must be a non-empty list")
    out = []
    for i, m in enumerate(raw):
        if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant", "developer"):
            raise RequestError(f"messages[{i}]: needs a role of system, user or assistant")
        role = "system" if m["role"] == "developer" else m["role"]
        content = m.get("content")
        if content is None:
            content = ""
        if isinstance(content, str):
            out.append({"role": role, "content": [{"type": "text", "text": content}]})
            continue
        if not isinstance(content, list):
            raise RequestError(f"messages[{i}].content must be a string or a list of parts")
        parts = []
        for j, p in enumerate(content):
            kind = p.get("type") if isinstance(p, dict) else None
            if kind == "text" and isinstance(p.get("text"), str):
                parts.append({"type": "text", "text": p["text"]})
            elif kind == "image_url":
                ref = p.get("image_url")
                url = ref.get("url") if isinstance(ref, dict) else ref
                if not isinstance(url, str):
                    raise RequestError(f"messages[{i}].content[{j}]: image_url needs a url")
                parts.append({"type": "image", "image": _decode_image(url)})
            else:
                raise RequestError(f"messages[{i}].content[{j}]: unsupported part {kind!r} (text and image_url only)")
        out.append({"role": role, "content": parts})
    return out


def parse_sampling(body: dict[str, Any]) -> SamplingConfig:
    """OpenAI request fields → :class:`SamplingConfig` (OpenAI defaults: temperature 1)."""
    if body.get("stream"):
        raise RequestError("stream=true is not supported")
    if int(body.get("n", 1) or 1) != 1:
        raise RequestError("only n=1 is supported")
    stop = body.get("stop")
    if stop is None:
        stops: tuple[str, ...] = ()
    elif isinstance(stop, str):
        stops = (stop,)
    elif isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        stops = tuple(s for s in stop if s)
    else:
        raise RequestError("'stop' must be a string or a list of strings")
    try:
        max_tokens = int(body.get("max_completion_tokens") or body.get("max_tokens") or DEFAULT_MAX_TOKENS)
        temperature = float(1.0 if body.get("temperature") is None else body["temperature"])
        top_p = float(1.0 if body.get("top_p") is None else body["top_p"])
        seed = None if body.get("seed") is None else int(body["seed"])
    except (TypeError, ValueError) as e:
        raise RequestError(f"bad sampling parameter: {e}") from e
    if max_tokens < 1 or temperature < 0 or not 0 < top_p <= 1:
        raise RequestError("need max_tokens >= 1, temperature >= 0 and 0 < top_p <= 1")
    return SamplingConfig(max_new_tokens=max_tokens, temperature=temperature, top_p=top_p, stop=stops, seed=seed)


def completion_body(model: str, gen: Any, include_stop: bool = False) -> dict[str, Any]:
    text = gen.text
    if gen.stop_reason and not include_stop and text.endswith(gen.stop_reason):
        text = text[: -len(gen.stop_reason)]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": gen.finish_reason,
                "stop_reason": gen.stop_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": gen.prompt_tokens,
            "completion_tokens": gen.completion_tokens,
            "total_tokens": gen.prompt_tokens + gen.completion_tokens,
        },
    }


# ----------------------------------------------------------------------------- HTTP
def _handler(service: ChatService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive: every reply carries Content-Length
        server_version = "pyvision-gym-serve"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # quiet: evaluation loops send thousands of requests

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
            self._send(status, {"error": {"message": message, "type": kind, "code": status}})

        def do_GET(self) -> None:  # noqa: N802 - stdlib naming
            path = self.path.split("?")[0].rstrip("/")
            if path in ("/v1/models", "/models"):
                self._send(200, service.models())
            elif path in ("/health", "/v1/health"):
                self._send(200, {"status": "ok"})
            else:
                self._error(404, f"no route {self.path}", "not_found_error")

        def do_POST(self) -> None:  # noqa: N802 - stdlib naming
            path = self.path.split("?")[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                return self._error(413, f"request body over {MAX_BODY_BYTES} bytes")
            raw = self.rfile.read(length) if length else b""
            if path not in ("/v1/chat/completions", "/chat/completions"):
                return self._error(404, f"no route {self.path}", "not_found_error")
            try:
                body = json.loads(raw or b"{}")
                if not isinstance(body, dict):
                    raise RequestError("the request body must be a JSON object")
                model = body.get("model")
                if model not in (None, service.model_name):
                    return self._error(404, f"model {model!r} is not served here (serving {service.model_name!r})", "not_found_error")
                conversation = parse_messages(body.get("messages"))
                sampling = parse_sampling(body)
            except json.JSONDecodeError as e:
                return self._error(400, f"invalid JSON: {e}")
            except (RequestError, TypeError, ValueError) as e:
                return self._error(400, str(e))
            try:
                gen = service.submit(conversation, sampling).result()
            except Exception as e:
                return self._error(500, f"generation failed: {type(e).__name__}: {e}", "server_error")
            self._send(200, completion_body(service.model_name, gen, bool(body.get("include_stop_str_in_output"))))

    return Handler


class ServerHandle:
    """A running server (from :func:`start_server`): ``url`` (ending in ``/v1``), ``shutdown()``."""

    def __init__(self, httpd: ThreadingHTTPServer, service: ChatService, thread: threading.Thread) -> None:
        self.httpd, self.service, self.thread = httpd, service, thread
        host, port = httpd.server_address[:2]
        self.host, self.port = str(host), int(port)
        self.url = f"http://{self.host}:{self.port}/v1"

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=30)
        self.service.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def _make_server(
    path: str | Path, host: str, port: int, model_name: str | None, max_batch_size: int, batch_wait_s: float, backend_kw: dict[str, Any]
) -> tuple[ThreadingHTTPServer, ChatService]:
    backend = HFBackend(path, max_batch_size=max_batch_size, **backend_kw)
    service = ChatService(backend, model_name or Path(path).resolve().name, max_batch_size, batch_wait_s)
    httpd = ThreadingHTTPServer((host, port), _handler(service))
    httpd.daemon_threads = True
    return httpd, service


def start_server(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
    **backend_kw: Any,
) -> ServerHandle:
    """Serve ``path`` from a background thread; ``port=0`` picks a free port."""
    httpd, service = _make_server(path, host, port, model_name, max_batch_size, batch_wait_s, backend_kw)
    thread = threading.Thread(target=httpd.serve_forever, name="vlm-serve-http", daemon=True)
    thread.start()
    return ServerHandle(httpd, service, thread)


def serve(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
    **backend_kw: Any,
) -> None:
    """Serve the model folder ``path`` until interrupted (``pyvision-gym serve PATH``).

    ``model_name`` defaults to the folder's name; ``backend_kw`` go to :class:`HFBackend`
    (``device``, ``dtype``, ``num_threads``).
    """
    httpd, service = _make_server(path, host, port, model_name, max_batch_size, batch_wait_s, backend_kw)
    h, p = httpd.server_address[:2]
    print(f"serving {service.model_name!r} ({Path(path).resolve()}) at http://{h}:{p}/v1", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
        service.close()
