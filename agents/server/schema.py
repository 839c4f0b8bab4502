"""The chat-completions request the server accepts, as strict pydantic models, and its
translation into the agents' messages and :class:`~pyvision_gym.agents.chat.SamplingConfig`.

Every field the server implements is declared; any other field is refused with HTTP 400
naming it (``tools``, ``response_format``, ``logit_bias``, ...), unless its value is ``null``
(which in the OpenAI API means "not set"). Images must be base64 ``data:`` URLs: the server
never fetches anything.
"""

from __future__ import annotations

import base64
import binascii
import io
from typing import Annotated, Any, Literal

from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pyvision_gym.agents.backends.transformers_backend import MAX_TOP_LOGPROBS
from pyvision_gym.agents.chat import Message, SamplingConfig, image_part, text_part

__all__ = [
    "DEFAULT_MAX_TOKENS",
    "MAX_N",
    "ChatRequest",
    "RequestError",
    "decode_image_url",
    "error_body",
    "to_conversation",
    "to_sampling",
]

DEFAULT_MAX_TOKENS = 1024
MAX_N = 16
"""Most choices one request may ask for (``n``)."""


class RequestError(ValueError):
    """A client error, answered with an OpenAI-style error body (HTTP ``status``)."""

    def __init__(self, message: str, param: str | None = None, status: int = 400, code: str | None = None) -> None:
        super().__init__(message)
        self.param, self.status, self.code = param, status, code


def error_body(message: str, kind: str = "invalid_request_error", param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The OpenAI error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _Strict(BaseModel):
    """Unknown fields are errors; explicit ``null`` for a field we do not declare is dropped."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _drop_unset(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None or k in cls.model_fields}
        return data


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Strict):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Strict):
    include_usage: bool = False
    """Send one more chunk before ``[DONE]`` with the request's token usage."""


class ChatRequest(_Strict):
    """``POST /v1/chat/completions``: the fields this server implements, nothing else."""

    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    n: int = Field(1, ge=1, le=MAX_N)
    stop: str | list[str] | None = Field(None, max_length=16)
    stream: bool = False
    stream_options: StreamOptions | None = None
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    seed: int | None = None
    user: str | None = None
    include_stop_str_in_output: bool = False
    """vLLM's extension: keep the matched stop string at the end of the text."""

    @model_validator(mode="after")
    def _check_combinations(self) -> ChatRequest:
        if self.top_logprobs is not None and not self.logprobs:
            raise ValueError("top_logprobs needs logprobs=true")
        if self.stream_options is not None and not self.stream:
            raise ValueError("stream_options needs stream=true")
        return self

    @property
    def top(self) -> int | None:
        """The backend's ``top_logprobs``: ``None`` without log-probs, else the count of alternatives."""
        return (self.top_logprobs or 0) if self.logprobs else None


# ----------------------------------------------------------------------------- translation
def decode_image_url(url: str, param: str) -> Image.Image:
    """The RGB image in a base64 ``data:`` URL; :class:`RequestError` for anything else."""
    if not url.startswith("data:"):
        raise RequestError("only data: image URLs are accepted (this server fetches nothing)", param)
    header, sep, data = url.partition(",")
    if not sep or ";base64" not in header:
        raise RequestError("image data URLs must be base64 encoded (data:image/png;base64,...)", param)
    try:
        im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        im.load()
    except (binascii.Error, UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
        raise RequestError(f"cannot decode image: {e}", param) from e
    return im.convert("RGB")


def to_conversation(request: ChatRequest) -> list[Message]:
    """The request's messages as the agents' dict messages (PIL images in ``image`` parts)."""
    out: list[Message] = []
    for i, m in enumerate(request.messages):
        role = "system" if m.role == "developer" else m.role
        if m.content is None or isinstance(m.content, str):
            out.append({"role": role, "content": [text_part(m.content or "")]})
            continue
        parts = []
        for j, p in enumerate(m.content):
            if isinstance(p, TextPart):
                parts.append(text_part(p.text))
            else:
                parts.append(image_part(decode_image_url(p.image_url.url, f"messages.{i}.content.{j}.image_url.url")))
        out.append({"role": role, "content": parts})
    return out


def to_sampling(request: ChatRequest) -> SamplingConfig:
    """The request's sampling fields (OpenAI defaults: temperature 1, no stop strings)."""
    stop = request.stop
    stops = (stop,) if isinstance(stop, str) else tuple(stop or ())
    return SamplingConfig(
        max_new_tokens=request.max_completion_tokens or request.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        stop=tuple(s for s in stops if s),
        seed=request.seed,
    )
