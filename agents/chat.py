"""What the VLM agent, its backends, the server and the trainer share: chat messages, stop
strings, sampling settings, generation records and image encoding.

This module imports nothing else from ``pyvision_gym.agents``, so every other module of the
package can import it without cycles.

- **Messages** are plain dicts, ``{"role": ..., "content": [part, ...]}`` with parts
  ``{"type": "text", "text": ...}`` and ``{"type": "image", "image": PIL.Image}`` (content may
  also be a plain string). :func:`text_part`, :func:`image_part` and :func:`merge_text` build
  them; :func:`message_images` and :func:`messages_to_text` read them.
- **Stop strings**: generation stops at ``</code>`` or ``</answer>`` and the stop string is kept
  (:func:`truncate_at_stop`); :func:`infer_stop` recovers it from endpoints that drop it.
- **Sampling and results**: :class:`SamplingConfig` in, one :class:`Generation` per chat out.
- **Images**: :func:`to_pil` (arrays to capped RGB images), :func:`png_base64`,
  :func:`image_data_url`, :func:`decode_image_b64`.
- **Pinning and markup**: :func:`model_fingerprint`, :data:`QWEN_CONTROL_TOKENS`, :func:`scrub_text`.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "MAX_ASPECT",
    "QWEN_CONTROL_TOKENS",
    "STOP_STRINGS",
    "Generation",
    "Message",
    "SamplingConfig",
    "decode_image_b64",
    "finish_generation",
    "image_data_url",
    "image_part",
    "infer_stop",
    "merge_text",
    "message_images",
    "messages_to_text",
    "model_fingerprint",
    "png_base64",
    "scrub_text",
    "text_part",
    "to_pil",
    "truncate_at_stop",
]

Message = dict[str, Any]

STOP_STRINGS: tuple[str, ...] = ("</code>", "</answer>")
# Widest aspect ratio Qwen-VL image processors accept (they refuse > 200); thinner strips are padded.
MAX_ASPECT = 150.0
# Chat-markup tokens that must never reach a model as text: a literal "<|image_pad|>" inside an
# action or a printed output would be tokenised as the image token and break the image count.
QWEN_CONTROL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Weight files are pinned by name and size only (reading gigabytes to hash them is too slow).
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


# ----------------------------------------------------------------------------- sampling and results
@dataclass(frozen=True)
class SamplingConfig:
    """How to sample one turn."""

    max_new_tokens: int = 1024
    """Most tokens generated for the turn."""
    temperature: float = 0.0
    """Softmax temperature; ``0`` is greedy decoding."""
    top_p: float = 1.0
    """Nucleus-sampling mass (used only when ``temperature > 0``)."""
    stop: tuple[str, ...] = STOP_STRINGS
    """Strings that end the turn; the matched one is kept at the end of the text."""
    seed: int | None = None
    """Sampling seed, where the backend supports one."""


@dataclass
class Generation:
    """One generated turn. ``text`` keeps the stop string that ended it (if any)."""

    text: str
    finish_reason: str = "stop"
    """``"stop"`` (a stop string or the end of the turn) or ``"length"`` (token budget spent)."""
    stop_reason: str | None = None
    """The stop string that ended the turn."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific notes (e.g. ``{"error": "prompt too long"}``)."""
    prompt_token_ids: list[int] | None = None
    """The prompt's token ids, for backends that report them (for training)."""
    token_ids: list[int] | None = None
    """The generated token ids, for backends that report them (for training)."""
    logprobs: list[float] | None = None
    """The log-probability of each generated token, for backends that report them."""


def finish_generation(text: str, stops: Sequence[str], ended: bool, prompt_tokens: int = 0, completion_tokens: int = 0) -> Generation:
    """A :class:`Generation` cut just after the earliest stop string in ``text`` (kept).

    Without a stop string the turn ended on its own (``"stop"``) when ``ended`` (end-of-turn
    token, endpoint said so), else it ran out of tokens (``"length"``).
    """
    cut, hit = truncate_at_stop(text, stops)
    if hit is not None:
        return Generation(cut, "stop", hit, prompt_tokens, completion_tokens)
    return Generation(text, "stop" if ended else "length", None, prompt_tokens, completion_tokens)


# ----------------------------------------------------------------------------- stop strings
def truncate_at_stop(text: str, stops: Sequence[str] = STOP_STRINGS) -> tuple[str, str | None]:
    """Cut ``text`` just after the earliest stop string (kept); return (text, matched stop)."""
    best: tuple[int, str] | None = None
    for s in stops:
        if not s:
            continue
        i = text.find(s)
        if i >= 0 and (best is None or i + len(s) < best[0] + len(best[1])):
            best = (i, s)
    if best is None:
        return text, None
    return text[: best[0] + len(best[1])], best[1]


def infer_stop(text: str, stops: Sequence[str] = STOP_STRINGS) -> str | None:
    """Which closing-tag stop string an endpoint that drops the stop string most likely hit.

    For ``</x>``-style stops: the one whose opening ``<x>`` appears last in ``text`` and is not
    closed after it. ``None`` when no open tag is found (the model ended with EOS instead).
    """
    best: tuple[int, str] | None = None
    for s in stops:
        if not (s.startswith("</") and s.endswith(">")):
            continue
        opener = "<" + s[2:]
        i = text.rfind(opener)
        if i >= 0 and s not in text[i:] and (best is None or i > best[0]):
            best = (i, s)
    return best[1] if best else None


def scrub_text(text: str, tokens: Sequence[str] = QWEN_CONTROL_TOKENS) -> str:
    """Neutralise chat-markup tokens inside free text ("<|im_end|>" → "<| im_end|>")."""
    if "<|" not in text:
        return text
    for t in tokens:
        if t in text:
            text = text.replace(t, "<| " + t[2:])
    return text


# ----------------------------------------------------------------------------- messages
def text_part(text: str) -> dict[str, Any]:
    """A text content part."""
    return {"type": "text", "text": text}


def image_part(image: Image.Image) -> dict[str, Any]:
    """An image content part."""
    return {"type": "image", "image": image}


def merge_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join neighbouring text parts and drop empty ones (fewer parts, the same rendered text)."""
    out: list[dict[str, Any]] = []
    for p in parts:
        if p["type"] == "text" and out and out[-1]["type"] == "text":
            out[-1] = text_part(out[-1]["text"] + p["text"])
        elif p["type"] != "text" or p["text"]:
            out.append(p)
    return out


def message_images(messages: Sequence[Message]) -> list[Image.Image]:
    """Every image in ``messages``, in order."""
    return [p["image"] for m in messages if not isinstance(m["content"], str) for p in m["content"] if p["type"] == "image"]


def messages_to_text(messages: Sequence[Message]) -> str:
    """A readable dump (images as ``[image WxH]``), for logs and tests."""
    lines = []
    for m in messages:
        content = m["content"]
        if isinstance(content, str):
            body = content
        else:
            body = "".join(p["text"] if p["type"] == "text" else f"[image {p['image'].size[0]}x{p['image'].size[1]}]" for p in content)
        lines.append(f"<{m['role']}>\n{body}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- images
def _array_to_pil(image: np.ndarray) -> Image.Image:
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = arr.astype(np.float64)
        if arr.size and np.nanmax(arr) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[2] not in (3, 4)) or 0 in arr.shape:
        raise ValueError(f"not an image array: shape {arr.shape}")
    return Image.fromarray(arr).convert("RGB")


def to_pil(image: np.ndarray | Image.Image, max_pixels: int | None = None) -> Image.Image:
    """An RGB PIL image from an H×W(×C) array (or PIL image), at most ``max_pixels`` pixels.

    Larger images are downscaled (aspect kept); strips thinner than 1:``MAX_ASPECT`` are padded
    with black so that Qwen-VL processors accept them.
    """
    pil = image.convert("RGB") if isinstance(image, Image.Image) else _array_to_pil(image)
    w, h = pil.size
    if max_pixels and w * h > max_pixels:
        scale = (max_pixels / (w * h)) ** 0.5
        pil = pil.resize((max(1, int(w * scale)), max(1, int(h * scale))), Image.Resampling.BICUBIC)
        w, h = pil.size
    if max(w, h) / min(w, h) > MAX_ASPECT:
        side = int(np.ceil(max(w, h) / MAX_ASPECT))
        canvas = Image.new("RGB", (max(w, side), max(h, side)))
        canvas.paste(pil, (0, 0))
        pil = canvas
    return pil


def png_base64(image: Image.Image) -> str:
    """``image`` as base64-encoded PNG."""
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_image_b64(data: str) -> Image.Image:
    """The RGB image in base64 ``data`` (the inverse of :func:`png_base64`)."""
    im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    im.load()
    return im.convert("RGB")


def image_data_url(image: np.ndarray | Image.Image, max_pixels: int | None = None) -> str:
    """A ``data:image/png;base64,...`` URL (how OpenAI-compatible endpoints take images)."""
    return "data:image/png;base64," + png_base64(to_pil(image, max_pixels))


# ----------------------------------------------------------------------------- pinning
def model_fingerprint(path: str | Path) -> str:
    """A hash of a model folder: small files (configs, tokenizer) by content, large ones
    (weights) by name and size, so that results can be pinned to the model without reading
    gigabytes."""
    path = Path(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = f.relative_to(path).as_posix()
        if rel.startswith(".") or "/." in rel:
            continue
        size = f.stat().st_size
        h.update(f"{rel}\0{size}\0".encode())
        if size <= 4 * 2**20 and not rel.endswith(_WEIGHT_SUFFIXES):
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]
