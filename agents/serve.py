"""An OpenAI-compatible chat server for a model folder (``pyvision-gym serve PATH``):
FastAPI + uvicorn over the transformers backend.

Endpoints: ``POST /v1/chat/completions`` (text and ``image_url`` parts, images as ``data:``
URLs; ``stream``, ``n``, ``logprobs`` / ``top_logprobs``, ``stop``, ``seed``, ...; any field
it does not implement is a 400 naming it), ``GET /v1/models`` (the served model with its
``model_hash`` and pixel cap), ``GET /v1/stats`` (job counters: completed, cancelled, ...),
``GET /health``. Concurrent requests are batched into one ``generate``; a request whose
client disconnects is cancelled. With ``api_key`` (or ``$PYVISION_API_KEY``) the ``/v1``
routes need ``Authorization: Bearer <key>``. No TLS: put a proxy in front for that.

The pieces live in :mod:`pyvision_gym.agents.server` (``schema``: the request; ``engine``:
batching and cancellation; ``responses``: reply bodies and streaming; ``app``: routes).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from pyvision_gym.agents.backends.transformers_backend import HFBackend
from pyvision_gym.agents.server.app import create_app
from pyvision_gym.agents.server.engine import ChatService

__all__ = ["API_KEY_ENV", "ServerHandle", "resolve_api_key", "serve", "start_server"]

API_KEY_ENV = "PYVISION_API_KEY"
"""The environment variable read for the API key when none is passed."""


def resolve_api_key(api_key: str | None) -> str | None:
    """``api_key``, else ``$PYVISION_API_KEY``; ``None`` (no key required) when neither is set."""
    return api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)


def _listen(host: str, port: int) -> socket.socket:
    """A bound socket for ``host:port`` (``port=0``: a free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    return sock


def _build(
    path: str | Path, host: str, port: int, model_name: str | None, api_key: str | None, engine_kw: dict[str, Any], backend_kw: dict[str, Any]
) -> tuple[uvicorn.Server, ChatService, socket.socket]:
    backend = HFBackend(path, max_batch_size=engine_kw.get("max_batch_size", 8), **backend_kw)
    service = ChatService(backend, model_name or Path(path).resolve().name, **engine_kw)
    config = uvicorn.Config(create_app(service, resolve_api_key(api_key)), log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
    return uvicorn.Server(config), service, _listen(host, port)


class ServerHandle:
    """A server running in a background thread (from :func:`start_server`): ``url`` (ending in
    ``/v1``), ``service`` (the engine), ``stats()``, ``shutdown()``; a context manager."""

    def __init__(self, server: uvicorn.Server, service: ChatService, sock: socket.socket, start_timeout: float = 60.0) -> None:
        self.server, self.service, self._sock = server, service, sock
        host, port = sock.getsockname()[:2]
        self.host, self.port = str(host), int(port)
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{netloc}:{self.port}/v1"
        self.thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="vlm-serve-http", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.shutdown()
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.01)

    def stats(self) -> dict[str, Any]:
        """The engine's job counters (what ``GET /v1/stats`` answers)."""
        return self.service.stats()

    def shutdown(self) -> None:
        """Stop accepting requests, end open ones (after a grace period), free the model."""
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self._sock.close()
        self.service.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def start_server(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
    api_key: str | None = None,
    **backend_kw: Any,
) -> ServerHandle:
    """Serve ``path`` from a background thread (``port=0`` picks a free port); see :func:`serve`."""
    engine_kw = {"max_batch_size": max_batch_size, "batch_wait_s": batch_wait_s}
    return ServerHandle(*_build(path, host, port, model_name, api_key, engine_kw, backend_kw))


def serve(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api_key: str | None = None,
    model_name: str | None = None,
    max_batch_size: int = 8,
    batch_wait_s: float = 0.01,
    **backend_kw: Any,
) -> None:
    """Serve the model folder ``path`` until interrupted (``pyvision-gym serve PATH``).

    ``api_key`` (default ``$PYVISION_API_KEY``) makes the ``/v1`` routes require
    ``Authorization: Bearer <key>``; ``model_name`` defaults to the folder's name; requests
    with the same sampling settings that arrive within ``batch_wait_s`` share a batch of up to
    ``max_batch_size`` rows; ``backend_kw`` go to :class:`HFBackend` (``device``, ``dtype``,
    ``num_threads``).
    """
    engine_kw = {"max_batch_size": max_batch_size, "batch_wait_s": batch_wait_s}
    server, service, sock = _build(path, host, port, model_name, api_key, engine_kw, backend_kw)
    h, p = sock.getsockname()[:2]
    auth = " (API key required)" if resolve_api_key(api_key) else ""
    print(f"serving {service.model_name!r} ({Path(path).resolve()}) at http://{h}:{p}/v1{auth}", flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        service.close()
