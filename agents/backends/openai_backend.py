"""The OpenAI-compatible backend: any ``/chat/completions`` endpoint (``pyvision-gym serve``,
``vllm serve``, hosted APIs) through the official ``openai`` client, images as base64 PNG
data URLs, the requests of a batch sent concurrently."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from openai import APIConnectionError, APIStatusError, OpenAI, Timeout

from pyvision_gym.agents.backends.base import Backend, BackendError
from pyvision_gym.agents.chat import (
    Generation,
    Message,
    SamplingConfig,
    finish_generation,
    infer_stop,
    png_base64,
)

__all__ = ["DEFAULT_OPENAI_MAX_PIXELS", "RETRIED_STATUS", "OpenAIBackend"]

DEFAULT_OPENAI_MAX_PIXELS = 2_000_000  # PyVision-RL's prompt-image cap
RETRIED_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
"""Statuses the ``openai`` client retries (with connection errors and timeouts)."""


class OpenAIBackend(Backend):
    """Chat completions over HTTP with the official ``openai`` client, one request per chat.

    The requests of a batch run on a thread pool of ``concurrency`` workers. Retries (of
    connection errors, timeouts and the statuses in :data:`RETRIED_STATUS`, ``max_retries``
    times with exponential backoff and the server's ``Retry-After``) and timeouts (``timeout``
    per request, ``connect_timeout`` to connect) are the client's. ``api_key`` defaults to
    ``$OPENAI_API_KEY``, else ``"EMPTY"`` (what vLLM-style local servers accept).

    Endpoints drop the stop string from the text (OpenAI semantics); it is put back from
    vLLM-style ``stop_reason`` or inferred from the open tag. ``max_pixels="auto"`` takes the
    per-image cap the server advertises in ``/models`` (``pyvision-gym serve`` does, so the
    model sees the same images as through :class:`HFBackend`). ``extra_body`` adds fields to
    every request (e.g. vLLM's ``top_k``).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 5,
        concurrency: int = 8,
        max_pixels: int | str | None = "auto",
        extra_body: dict[str, Any] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = max(0, int(max_retries))
        self.concurrency = max(1, int(concurrency))
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else (os.environ.get("OPENAI_API_KEY") or "EMPTY")
        self._client = OpenAI(
            base_url=self.base_url,
            api_key=key,
            timeout=Timeout(float(timeout), connect=float(connect_timeout)),
            max_retries=self.max_retries,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="vlm-openai")
        self._model_info: dict[str, Any] | None = None
        if max_pixels == "auto":  # the server's own limit when it says (pyvision-gym serve does), else 2 MP
            max_pixels = self.model_info().get("max_pixels") or DEFAULT_OPENAI_MAX_PIXELS
        self.max_pixels = int(max_pixels) if max_pixels else None

    # -------------------------------------------------------------- requests
    @staticmethod
    def to_openai_messages(conversation: Sequence[Message]) -> list[dict[str, Any]]:
        """Dict messages with PIL image parts → OpenAI content parts (PNG data URLs)."""
        out = []
        for m in conversation:
            content = m["content"]
            if isinstance(content, str):
                out.append({"role": m["role"], "content": content})
                continue
            if m["role"] != "user" and all(p["type"] == "text" for p in content):
                out.append({"role": m["role"], "content": "".join(p["text"] for p in content)})
                continue
            parts = []
            for p in content:
                if p["type"] == "text":
                    parts.append({"type": "text", "text": p["text"]})
                else:
                    parts.append({"type": "image_url", "image_url": {"url": "data:image/png;base64," + png_base64(p["image"])}})
            out.append({"role": m["role"], "content": parts})
        return out

    def _request(self, conversation: Sequence[Message], sampling: SamplingConfig) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create`` for one chat."""
        kw: dict[str, Any] = {
            "model": self.model,
            "messages": self.to_openai_messages(conversation),
            "max_tokens": int(sampling.max_new_tokens),
            "temperature": float(sampling.temperature),
            "n": 1,
        }
        if sampling.temperature > 0:
            kw["top_p"] = float(sampling.top_p)
        if sampling.stop:
            kw["stop"] = list(sampling.stop)[:4]  # the OpenAI API accepts at most 4
        if sampling.seed is not None:
            kw["seed"] = int(sampling.seed)
        if self.extra_body:
            kw["extra_body"] = self.extra_body
        return kw

    def _post(self, request: dict[str, Any]) -> dict[str, Any]:
        """One chat completion as a dict; the client's errors as :class:`BackendError`."""
        url = f"{self.base_url}/chat/completions"
        try:
            return self._client.chat.completions.create(**request).to_dict()
        except APIStatusError as e:
            detail = f"HTTP {e.status_code}: {e.message}"[:500]
            if e.status_code in RETRIED_STATUS:
                raise BackendError(f"{url} failed after {self.max_retries + 1} attempts: {detail}") from e
            raise BackendError(f"{url} refused the request: {detail}") from e
        except APIConnectionError as e:  # includes timeouts
            raise BackendError(f"{url} failed after {self.max_retries + 1} attempts: {type(e).__name__}: {e}") from e

    def _one(self, conversation: Sequence[Message], sampling: SamplingConfig) -> Generation:
        data = self._post(self._request(conversation, sampling))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            raise BackendError(f"malformed chat completion: {json.dumps(data)[:500]}") from e
        finish = choice.get("finish_reason") or "stop"
        usage = data.get("usage") or {}
        stop_reason = choice.get("stop_reason")
        if finish == "stop" and sampling.stop:
            matched = stop_reason if isinstance(stop_reason, str) and stop_reason in sampling.stop else infer_stop(text, sampling.stop)
            if matched and not text.endswith(matched):
                text += matched
        tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        return finish_generation(text, sampling.stop, finish == "stop", *tokens)

    def generate(self, conversations: Sequence[list[Message]], sampling: SamplingConfig) -> list[Generation]:
        if len(conversations) == 1:
            return [self._one(conversations[0], sampling)]
        return list(self._pool.map(lambda c: self._one(c, sampling), conversations))

    # -------------------------------------------------------------- identity
    def model_info(self) -> dict[str, Any]:
        """The endpoint's ``/models`` entry for this model (cached; empty when unavailable)."""
        if self._model_info is None:
            try:
                listing = self._client.with_options(max_retries=0, timeout=10.0).models.list()
                entries = [m.to_dict() for m in listing.data]
            except Exception:  # identity is best effort (asked again next time): never fail a run over it
                return {}
            self._model_info = next((m for m in entries if m.get("id") == self.model), {})
        return self._model_info

    def describe(self) -> dict[str, Any]:
        info = self.model_info()
        return {
            "backend": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "model_hash": info.get("model_hash"),
            "served_model": info.get("root"),
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()
