"""The OpenAI-compatible backend: any ``/chat/completions`` endpoint (``pyvision-gym serve``,
``vllm serve``, hosted APIs) over ``httpx``, images as base64 PNG data URLs, with retries,
timeouts and bounded concurrency."""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyvision_gym.agents.backends.base import Backend, BackendError
from pyvision_gym.agents.chat import (
    Generation,
    Message,
    SamplingConfig,
    finish_generation,
    infer_stop,
    png_base64,
)

__all__ = ["DEFAULT_OPENAI_MAX_PIXELS", "RETRY_STATUS", "OpenAIBackend"]

# httpx rather than the openai SDK: one endpoint is needed, the retry policy (which statuses,
# exponential backoff with jitter, Retry-After) stays explicit and testable, and httpx is
# already a dependency of the openai package, so nothing extra is installed either way.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_OPENAI_MAX_PIXELS = 2_000_000  # PyVision-RL's prompt-image cap


class OpenAIBackend(Backend):
    """Chat completions over HTTP: ``POST {base_url}/chat/completions`` per conversation.

    Requests of a batch run on a thread pool of ``concurrency`` workers. Connection errors,
    timeouts and statuses in :data:`RETRY_STATUS` are retried ``max_retries`` times with
    exponential backoff (``backoff`` × 2^attempt, capped at ``max_backoff``, with jitter, or the
    server's ``Retry-After``). Endpoints drop the stop string from the text (OpenAI semantics);
    it is put back from vLLM-style ``stop_reason`` or inferred from the open tag.
    ``max_pixels="auto"`` takes the per-image cap the server advertises in ``/models``
    (``pyvision-gym serve`` does, so the model sees the same images as through :class:`HFBackend`).
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
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        max_pixels: int | str | None = "auto",
        extra_body: dict[str, Any] | None = None,
        transport: Any = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.concurrency = max(1, int(concurrency))
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            transport=transport,
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

    def _body(self, conversation: Sequence[Message], sampling: SamplingConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.to_openai_messages(conversation),
            "max_tokens": int(sampling.max_new_tokens),
            "temperature": float(sampling.temperature),
            "n": 1,
        }
        if sampling.temperature > 0:
            body["top_p"] = float(sampling.top_p)
        if sampling.stop:
            body["stop"] = list(sampling.stop)[:4]  # the OpenAI API accepts at most 4
        if sampling.seed is not None:
            body["seed"] = int(sampling.seed)
        body.update(self.extra_body)
        return body

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                r = self._client.post("/chat/completions", json=body)
            except (httpx.TransportError, httpx.TimeoutException) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:500]}"
                if r.status_code not in RETRY_STATUS:
                    raise BackendError(f"{self.base_url}/chat/completions refused the request: {last}")
                retry_after = r.headers.get("retry-after")
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        raise BackendError(f"{self.base_url}/chat/completions failed after {self.max_retries + 1} attempts: {last}")

    def _one(self, conversation: Sequence[Message], sampling: SamplingConfig) -> Generation:
        data = self._post(self._body(conversation, sampling))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError) as e:
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
                r = self._client.get("/models")
                if r.status_code != 200:
                    return {}
                self._model_info = next((m for m in r.json().get("data", []) if m.get("id") == self.model), {})
            except Exception:  # identity is best effort (asked again next time): never fail a run over it
                return {}
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
