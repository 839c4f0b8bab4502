"""A vision-language-model agent: one prompt format, three generation backends.

The episode becomes a Qwen2.5-VL-style chat (the same messages for every backend):

- ``system``: a short system prompt;
- ``user``: the first observation — its images (each wrapped as ``<image_clue_k>`` image
  ``</image_clue_k>``, as PyVision-RL does for the prompt image) then its text;
- per turn: ``assistant`` = the action text as generated; ``user`` = the tool output as the
  original formats it: ``<interpreter>\\nText Result:\\n{text}\\n`` then, when the code showed
  images, ``Image Result:\\n`` and each image as ``<image_clue_k>`` image ``</image_clue_k>``,
  then ``</interpreter>`` (``k`` counts images over the whole episode).

Messages are plain dicts, ``{"role": ..., "content": [part, ...]}`` with parts
``{"type": "text", "text": ...}`` and ``{"type": "image", "image": PIL.Image}``; the backends
(``agents.vlm_backends``) render them with the model's chat template or send them to an
OpenAI-compatible endpoint. Generation stops at ``</code>`` or ``</answer>``; the stop string is
kept in the returned action, so the environment sees a complete tag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pyvision_gym.rollout.agent import Agent, Episode, Observation

SYSTEM_PROMPT = (
    "You are a helpful assistant that answers questions about images and videos. "
    "You may write Python code, which runs in a persistent session whose output comes back to you, "
    "before giving your final answer."
)
STOP_STRINGS: tuple[str, ...] = ("</code>", "</answer>")
BACKENDS = ("hf", "vllm", "openai")
# Widest aspect ratio Qwen-VL image processors accept (they refuse > 200); thinner strips are padded.
MAX_ASPECT = 150.0

Message = dict[str, Any]


# ----------------------------------------------------------------------------- images
def to_pil(image: np.ndarray | Image.Image, max_pixels: int | None = None) -> Image.Image:
    """An RGB PIL image from an H×W(×C) array (or PIL image), at most ``max_pixels`` pixels.

    Larger images are downscaled (aspect kept); strips thinner than 1:``MAX_ASPECT`` are padded
    with black so that Qwen-VL processors accept them.
    """
    if isinstance(image, Image.Image):
        pil = image.convert("RGB")
    else:
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
        pil = Image.fromarray(arr).convert("RGB")
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


def image_data_url(image: np.ndarray | Image.Image, max_pixels: int | None = None) -> str:
    """A ``data:image/png;base64,...`` URL (how OpenAI-compatible endpoints take images)."""
    from .vlm_backends import png_base64

    return "data:image/png;base64," + png_base64(to_pil(image, max_pixels))


# ----------------------------------------------------------------------------- messages
def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_part(image: Image.Image) -> dict[str, Any]:
    return {"type": "image", "image": image}


def _clue_parts(images: Sequence[Any], start: int, max_pixels: int | None) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for k, im in enumerate(images, start):
        parts += [text_part(f"<image_clue_{k}>"), image_part(to_pil(im, max_pixels)), text_part(f"</image_clue_{k}>\n")]
    return parts


def tool_output_content(obs: Observation, first_clue: int, max_pixels: int | None = None) -> list[dict[str, Any]]:
    """A tool observation as PyVision-RL formats it: ``<interpreter>`` text, then images."""
    parts = [text_part(f"<interpreter>\nText Result:\n{obs.text}\n")]
    if obs.images:
        parts.append(text_part("Image Result:\n"))
        parts += _clue_parts(obs.images, first_clue, max_pixels)
    parts.append(text_part("</interpreter>"))
    return _merge_text(parts)


def build_messages(episode: Episode, system_prompt: str | None = SYSTEM_PROMPT, max_pixels: int | None = None) -> list[Message]:
    """The chat for ``episode`` so far, ending with a user turn (the model answers next)."""
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": [text_part(system_prompt)]})
    first = _clue_parts(episode.first.images, 0, max_pixels) + [text_part(episode.first.text)]
    messages.append({"role": "user", "content": _merge_text(first)})
    clue = len(episode.first.images)
    for action, obs in episode.turns:
        messages.append({"role": "assistant", "content": [text_part(action)]})
        messages.append({"role": "user", "content": tool_output_content(obs, clue, max_pixels)})
        clue += len(obs.images)
    return messages


def _merge_text(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Join neighbouring text parts (fewer parts, the same rendered text)."""
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
        if size <= 4 * 2**20 and not rel.endswith((".safetensors", ".bin", ".pt", ".pth", ".gguf")):
            h.update(hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()[:16]


# ----------------------------------------------------------------------------- the agent
class VLMAgent(Agent):
    """Turns each episode into chat messages and asks a backend for the next turn's text."""

    def __init__(
        self,
        backend: Any,
        spec: str = "",
        system_prompt: str | None = SYSTEM_PROMPT,
        max_new_tokens: int = 1024,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] = STOP_STRINGS,
        seed: int | None = None,
        max_pixels: int | None = None,
    ) -> None:
        from .vlm_backends import SamplingConfig

        self.backend = backend
        self.spec = spec or f"vlm:{backend.name}"
        self.system_prompt = system_prompt
        self.sampling = SamplingConfig(
            max_new_tokens=int(max_new_tokens), temperature=float(temperature), top_p=float(top_p), stop=tuple(stop), seed=seed
        )
        self.max_pixels = max_pixels if max_pixels is not None else backend.max_pixels
        self.last_generations: list[Any] = []

    def messages(self, episode: Episode) -> list[Message]:
        """The chat the backend sees for ``episode``."""
        return build_messages(episode, self.system_prompt, self.max_pixels)

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        if not episodes:
            return []
        conversations = [self.messages(e) for e in episodes]
        gens = self.backend.generate(conversations, self.sampling)
        self.last_generations = list(gens)
        return [truncate_at_stop(g.text, self.sampling.stop)[0] for g in gens]

    def describe(self) -> dict[str, Any]:
        info = {"spec": self.spec, **self.backend.describe()}
        info["sampling"] = {
            "max_new_tokens": self.sampling.max_new_tokens,
            "temperature": self.sampling.temperature,
            "top_p": self.sampling.top_p,
            "stop": list(self.sampling.stop),
            "seed": self.sampling.seed,
        }
        info["max_pixels"] = self.max_pixels
        info["system_prompt_sha"] = hashlib.sha256(json.dumps(self.system_prompt).encode()).hexdigest()[:12]
        return info

    def close(self) -> None:
        self.backend.close()


_AGENT_KEYS = ("system_prompt", "max_new_tokens", "temperature", "top_p", "stop", "seed", "max_pixels")


def make_vlm_agent(backend: str, target: str, **kw: Any) -> VLMAgent:
    """A :class:`VLMAgent` on ``backend`` ("hf", "vllm" or "openai").

    ``target`` is a model folder for "hf" / "vllm" and ``URL#MODEL`` for "openai" (e.g.
    ``http://127.0.0.1:8000/v1#tiny``). Keyword arguments go to the agent when they are
    sampling / prompt options (``max_new_tokens``, ``temperature``, ``top_p``, ``stop``,
    ``seed``, ``system_prompt``, ``max_pixels``) and to the backend otherwise (e.g. ``device``,
    ``max_batch_size`` for "hf"; ``python`` for "vllm"; ``api_key``, ``timeout``,
    ``concurrency``, ``max_retries`` for "openai").
    """
    from . import vlm_backends

    agent_kw = {k: kw.pop(k) for k in _AGENT_KEYS if k in kw}
    if backend == "hf":
        be: Any = vlm_backends.HFBackend(target, **kw)
    elif backend == "vllm":
        be = vlm_backends.VLLMBackend(target, **kw)
    elif backend == "openai":
        url, sep, model = target.partition("#")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise ValueError(f"openai target must be URL#MODEL (e.g. http://127.0.0.1:8000/v1#tiny), got {target!r}")
        be = vlm_backends.OpenAIBackend(url, model, **kw)
    else:
        raise ValueError(f"unknown VLM backend {backend!r}; known: {', '.join(BACKENDS)}")
    return VLMAgent(be, spec=f"vlm:{backend}:{target}", **agent_kw)
