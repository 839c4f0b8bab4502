"""A vision-language-model agent: one prompt format, three generation backends.

The episode becomes a Qwen2.5-VL-style chat (the same messages for every backend):

- ``system``: a short system prompt;
- ``user``: the first observation — its images (each wrapped as ``<image_clue_k>`` image
  ``</image_clue_k>``, as PyVision-RL does for the prompt image) then its text;
- per turn: ``assistant`` = the action text as generated; ``user`` = the tool output as the
  original formats it: ``<interpreter>\\nText Result:\\n{text}\\n`` then, when the code showed
  images, ``Image Result:\\n`` and each image as ``<image_clue_k>`` image ``</image_clue_k>``,
  then ``</interpreter>`` (``k`` counts images over the whole episode).

With ``prompt_style="pyvision"`` (:func:`build_pyvision_messages`) the agent speaks the released
PyVision-RL format instead, for the authors' checkpoints: the environment (made with the same
``prompt_style``, which :attr:`VLMAgent.env_overrides` asks the evaluation for) writes the
prompt and the wrapped tool outputs with one ``<image>`` per image; the agent puts each image
at its placeholder, sends Qwen's default system message, stops only at ``</code>`` and allows
10,240 new tokens per turn (:mod:`pyvision_gym.authors_format`).

Messages are the plain dicts of :mod:`pyvision_gym.agents.chat`; the backends
(:mod:`pyvision_gym.agents.backends`) render them with the model's chat template or send them
to an OpenAI-compatible endpoint. Generation stops at ``</code>`` or ``</answer>``; the stop
string is kept in the returned action, so the environment sees a complete tag.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyvision_gym import authors_format
from pyvision_gym.agents.backends import BACKENDS, Backend
from pyvision_gym.agents.chat import (
    STOP_STRINGS,
    Generation,
    Message,
    SamplingConfig,
    image_part,
    merge_text,
    text_part,
    to_pil,
    truncate_at_stop,
)
from pyvision_gym.plugins import load
from pyvision_gym.rollout.agent import Agent, Episode, Observation

__all__ = [
    "STYLE_DEFAULTS",
    "SYSTEM_PROMPT",
    "VLMAgent",
    "build_messages",
    "build_pyvision_messages",
    "make_vlm_agent",
    "tool_output_content",
]

SYSTEM_PROMPT = (
    "You are a helpful assistant that answers questions about images and videos. "
    "You may write Python code, which runs in a persistent session whose output comes back to you, "
    "before giving your final answer."
)


# ----------------------------------------------------------------------------- the prompt format
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
    return merge_text(parts)


def build_messages(episode: Episode, system_prompt: str | None = SYSTEM_PROMPT, max_pixels: int | None = None) -> list[Message]:
    """The chat for ``episode`` so far, ending with a user turn (the model answers next)."""
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": [text_part(system_prompt)]})
    first = _clue_parts(episode.first.images, 0, max_pixels) + [text_part(episode.first.text)]
    messages.append({"role": "user", "content": merge_text(first)})
    clue = len(episode.first.images)
    for action, obs in episode.turns:
        messages.append({"role": "assistant", "content": [text_part(action)]})
        messages.append({"role": "user", "content": tool_output_content(obs, clue, max_pixels)})
        clue += len(obs.images)
    return messages


def _interleave(text: str, images: Sequence[Any], max_pixels: int | None) -> list[dict[str, Any]]:
    """``text`` with each ``<image>`` placeholder replaced by the next of ``images``."""
    pieces = text.split(authors_format.IMAGE_PLACEHOLDER)
    if len(pieces) - 1 != len(images):
        raise ValueError(
            f"prompt_style='pyvision' needs one {authors_format.IMAGE_PLACEHOLDER} per image in each observation, "
            f"got {len(pieces) - 1} for {len(images)} images: make the environment with prompt_style='pyvision'"
        )
    parts = [text_part(pieces[0])]
    for im, piece in zip(images, pieces[1:], strict=True):
        parts += [image_part(to_pil(im, max_pixels)), text_part(piece)]
    return merge_text(parts)


def build_pyvision_messages(
    episode: Episode, system_prompt: str | None = authors_format.SYSTEM_PROMPT, max_pixels: int | None = None
) -> list[Message]:
    """The chat for ``episode`` in the released PyVision-RL format: the observations' text as the
    environment wrote it (``prompt_style="pyvision"``), images at their ``<image>`` places."""
    messages: list[Message] = []
    if system_prompt:
        messages.append({"role": "system", "content": [text_part(system_prompt)]})
    messages.append({"role": "user", "content": _interleave(episode.first.text, episode.first.images, max_pixels)})
    for action, obs in episode.turns:
        messages.append({"role": "assistant", "content": [text_part(action)]})
        messages.append({"role": "user", "content": _interleave(obs.text, obs.images, max_pixels)})
    return messages


# ----------------------------------------------------------------------------- the agent
#: Per prompt style, the settings an agent takes unless given: system prompt, stop strings, tokens per turn.
STYLE_DEFAULTS: dict[str, dict[str, Any]] = {
    "default": {"system_prompt": SYSTEM_PROMPT, "stop": STOP_STRINGS, "max_new_tokens": 1024},
    "pyvision": {
        "system_prompt": authors_format.SYSTEM_PROMPT,
        "stop": authors_format.STOP_STRINGS,
        "max_new_tokens": authors_format.MAX_NEW_TOKENS,
    },
}


class _StyleDefault:
    """Marks an argument left to the prompt style's default (``None`` is a real system prompt value)."""

    def __repr__(self) -> str:
        return "<the prompt style's default>"


STYLE_DEFAULT: Any = _StyleDefault()


class VLMAgent(Agent):
    """Turns each episode into chat messages and asks a backend for the next turn's text.

    ``prompt_style`` (``"default"`` or ``"pyvision"``) picks the message format and the defaults
    of ``system_prompt`` (``None``: no system message), ``max_new_tokens`` and ``stop``
    (:data:`STYLE_DEFAULTS`).
    """

    def __init__(
        self,
        backend: Backend,
        spec: str = "",
        system_prompt: str | None = STYLE_DEFAULT,
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        max_pixels: int | None = None,
        prompt_style: str = "default",
        env_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.prompt_style = authors_format.check_prompt_style(prompt_style)
        extra = dict(env_overrides or {})
        if "prompt_style" in extra and extra.pop("prompt_style") != self.prompt_style:
            raise ValueError("env_overrides['prompt_style'] must match prompt_style (give prompt_style only)")
        self._env_overrides = extra
        style = STYLE_DEFAULTS[self.prompt_style]
        self.backend = backend
        self.spec = spec or f"vlm:{backend.name}"
        self.system_prompt = style["system_prompt"] if system_prompt is STYLE_DEFAULT else system_prompt
        self.sampling = SamplingConfig(
            max_new_tokens=int(style["max_new_tokens"] if max_new_tokens is None else max_new_tokens),
            temperature=float(temperature), top_p=float(top_p),
            stop=tuple(style["stop"] if stop is None else stop), seed=seed,
        )
        self.max_pixels = max_pixels if max_pixels is not None else backend.max_pixels
        self.last_generations: list[Generation] = []

    @property
    def env_overrides(self) -> dict[str, Any] | None:
        """Environment settings the evaluation applies for this agent: its prompt style and the
        ``env_overrides`` it was given (e.g. from a model folder's ``pyvision_agent.json``)."""
        out = dict(self._env_overrides)
        if self.prompt_style != "default":
            out["prompt_style"] = self.prompt_style
        return out or None

    def messages(self, episode: Episode) -> list[Message]:
        """The chat the backend sees for ``episode``."""
        if self.prompt_style == "pyvision":
            return build_pyvision_messages(episode, self.system_prompt, self.max_pixels)
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
        if self.prompt_style != "default":
            info["prompt_style"] = self.prompt_style
        if self.env_overrides:
            info["env_overrides"] = self.env_overrides
        return info

    def close(self) -> None:
        self.backend.close()


_AGENT_KEYS = ("system_prompt", "max_new_tokens", "temperature", "top_p", "stop", "seed", "max_pixels", "prompt_style",
               "env_overrides")
AGENT_FILE = "pyvision_agent.json"  # agent settings a model folder carries (``pyvision-gym export`` writes it)


def folder_settings(target: str) -> dict[str, Any]:
    """The agent settings stored in model folder ``target`` (``{}`` without the file)."""
    path = Path(target) / AGENT_FILE
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    unknown = sorted(set(data) - set(_AGENT_KEYS)) if isinstance(data, dict) else ["(not a mapping)"]
    if unknown:
        raise ValueError(f"{path}: unknown agent settings {unknown}; known: {', '.join(_AGENT_KEYS)}")
    return data


def make_vlm_agent(backend: str, target: str, **kw: Any) -> VLMAgent:
    """A :class:`VLMAgent` on ``backend`` (a key of :data:`~pyvision_gym.agents.backends.BACKENDS`:
    "hf", "vllm" or "openai").

    ``target`` is a model folder for "hf" / "vllm" and ``URL#MODEL`` for "openai" (e.g.
    ``http://127.0.0.1:8000/v1#tiny``). Keyword arguments go to the agent when they are
    sampling / prompt options (``max_new_tokens``, ``temperature``, ``top_p``, ``stop``,
    ``seed``, ``system_prompt``, ``max_pixels``, ``prompt_style``, ``env_overrides``) and to the
    backend otherwise (e.g. ``device``, ``max_batch_size`` for "hf"; ``python`` for "vllm";
    ``api_key``, ``timeout``, ``concurrency``, ``max_retries`` for "openai").

    A model folder may carry ``pyvision_agent.json`` (written by ``pyvision-gym export``): the
    settings its policy was trained with (``max_new_tokens``, ``env_overrides``), used unless
    given here.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown VLM backend {backend!r}; known: {', '.join(BACKENDS)}")
    if backend in ("hf", "vllm"):
        kw = {**folder_settings(target), **kw}
    authors_format.check_prompt_style(kw.get("prompt_style", "default"))  # before loading a model
    agent_kw = {k: kw.pop(k) for k in _AGENT_KEYS if k in kw}
    args: tuple[str, ...] = (target,)
    if backend == "openai":
        url, sep, model = target.partition("#")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise ValueError(f"openai target must be URL#MODEL (e.g. http://127.0.0.1:8000/v1#tiny), got {target!r}")
        args = (url, model)
    be = load(BACKENDS[backend])(*args, **kw)
    return VLMAgent(be, spec=f"vlm:{backend}:{target}", **agent_kw)
