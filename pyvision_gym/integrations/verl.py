"""verl's agent loop for PyVision environments: ``agent_name: pyvision_agent``.

verl (0.9) runs one *agent loop* per trajectory: it hands the loop a dataset row and a server
manager (token-in-token-out generation on vLLM / SGLang) and expects an
``AgentLoopOutput`` back. :class:`PyVisionAgentLoop` is that loop for our environments:

1. The row's ``extra_info`` names the task (``seed`` / ``family`` / ``difficulty`` or
   ``dataset_row``, and the ``split``; :mod:`pyvision_gym.integrations.verl_data` writes such
   rows). The loop makes **its own environment** for the trajectory and resets it onto the task.
2. The chat codec (``pyvision_gym.agents.codec:QwenChatCodec`` by default: the VLM agent's own
   prompts, so training prompts are evaluation prompts) encodes the reset observation once:
   prompt ids with each image's placeholder expanded, and the images.
3. Each turn, ``server_manager.generate`` continues prompt + response so far, with every image so
   far, stopping at the codec's stop strings (``</code>``, ``</answer>``). The generated ids are
   appended as they came, under ``response_mask`` 1 (with their log-probs); their decoded text is
   the action ``env.step`` runs in the episode's persistent runtime. The observation comes back
   as a codec delta (turn end, the ``<interpreter>`` user turn with its images, the next
   assistant header), appended under mask 0; its images join ``multi_modal_data["images"]``.
   Generated ids are never decoded and re-encoded.
4. At the end, the environment's reward (accuracy + the accumulative tool bonus) is the
   trajectory's ``reward_score``: verl puts it on the last response token (``rm_scores``) and
   skips its own reward function. ``extra_fields`` carries the end reason, and
   ``reward_extra_info`` the numbers verl logs per sample (accuracy, tool calls, images shown).

**Why a loop, not a verl tool.** verl 0.9's ``ToolAgentLoop`` creates and releases a
``BaseTool`` instance around every single call, which would start a fresh runtime each turn
(variables set in one turn gone in the next); it also wants JSON tool calls through a
tool-calling chat template and computes the reward elsewhere. Here the environment lives for
the whole trajectory, the action is the model's own text, and the reward is the environment's.

**Lengths.** The prompt must fit ``rollout.prompt_length`` (a longer one is an error: cutting
it would separate image placeholders from their images). Generated and observation tokens
share ``rollout.response_length``; a turn may generate ``max_turn_tokens`` but never past it.
An observation that leaves no room for one more generated token is not cut: the episode ends
as ``OVER_LENGTH`` with reward 0 (the trainer's rule, :mod:`pyvision_gym.train.rollout`).

Configure it with verl's ``actor_rollout_ref.rollout.agent.agent_loop_config_path`` (a YAML
list; ``verl_recipe/agent_loop.yaml``). This module imports verl at the top, so it is imported
only where verl is installed (its own venv: ``make verl``); nothing else in pyvision_gym
imports it.
"""

from __future__ import annotations

import difflib
import functools
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf
from PIL import Image
from verl.experimental.agent_loop.agent_loop import (
    AgentLoopBase,
    AgentLoopMetrics,
    AgentLoopOutput,
    register,
)

from pyvision_gym.plugins import load
from pyvision_gym.rollout.records import TaskSpec
from pyvision_gym.train.config import EnvConfig
from pyvision_gym.train.rollout import OVER_LENGTH, TokenState, env_factory

__all__ = ["AGENT_NAME", "DEFAULT_CODEC", "LoopSettings", "PyVisionAgentLoop", "VerlLoopError", "load_codec", "task_spec"]

AGENT_NAME = "pyvision_agent"
DEFAULT_CODEC = "pyvision_gym.agents.codec:QwenChatCodec"
_CODECS: dict[tuple[str, str, str], Any] = {}  # one codec per (class, model, kwargs) per process
_TASK_KEYS = ("seed", "family", "difficulty", "dataset_row")


class VerlLoopError(ValueError):
    """A setting, dataset row or length the PyVision agent loop cannot work with."""


@dataclass
class LoopSettings:
    """The agent loop's own settings (the keys of its entry in the agent-loop YAML)."""

    env: dict[str, Any] = field(default_factory=dict)
    """The environment: the trainer's ``env`` section (``id``, ``kwargs``, ``max_turns``,
    ``tool_reward_per_turn``, ``reward``, ``terminate_on_error``, ``cache_dir``)."""
    codec: str = DEFAULT_CODEC
    """The chat codec, ``module:Class``, built as ``Codec(model_path, **codec_kwargs)``."""
    codec_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra arguments of the codec (e.g. ``max_pixels``)."""
    model_path: str | None = None
    """A local model folder for the codec (default: ``actor_rollout_ref.model.path``)."""
    max_turn_tokens: int = 10240
    """Tokens one turn may generate (the paper: 10240), within ``rollout.response_length``."""


def _plain(value: Any) -> Any:
    """OmegaConf containers (hydra passes them) as plain dicts and lists."""
    if isinstance(value, DictConfig | ListConfig):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _checked(cls: type, data: Mapping[str, Any], where: str) -> Any:
    """``cls(**data)``; an unknown key is an error naming it and the nearest valid one."""
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(names)}"
            raise VerlLoopError(f"unknown {where} key {key!r}{hint}")
    return cls(**data)


def task_spec(extra_info: Mapping[str, Any] | None, index: int = 0) -> tuple[TaskSpec, str]:
    """The task a dataset row names (its ``extra_info``), and the split it is drawn from."""
    info = dict(_plain(extra_info) or {})
    if info.get("seed") is None and info.get("dataset_row") is None:
        raise VerlLoopError(
            "a PyVision row needs extra_info.seed or extra_info.dataset_row "
            f"(got extra_info keys {sorted(info)}); write rows with pyvision_gym.integrations.verl_data"
        )
    task = {k: None if info.get(k) is None else info[k] for k in _TASK_KEYS}
    for key in ("seed", "difficulty", "dataset_row"):
        if task[key] is not None:
            task[key] = int(task[key])
    split = str(info.get("split") or "train")
    return TaskSpec(task_id=str(info.get("task_id") or f"{split}-{index}"), index=int(index), **task), split


def load_codec(model_path: str, spec: str = DEFAULT_CODEC, kwargs: Mapping[str, Any] | None = None) -> Any:
    """The codec ``spec`` for ``model_path``, built once per process (it loads a processor)."""
    kwargs = dict(kwargs or {})
    key = (spec, str(model_path), json.dumps(kwargs, sort_keys=True, default=str))
    if key not in _CODECS:
        if not Path(model_path).is_dir():
            raise VerlLoopError(f"the codec needs a local model folder, got {model_path!r} (set model_path in the agent-loop YAML)")
        _CODECS[key] = load(spec)(model_path, **kwargs)
    return _CODECS[key]


def _pil(images: list[np.ndarray]) -> list[Image.Image]:
    return [Image.fromarray(np.asarray(im, dtype=np.uint8)) for im in images]


@dataclass
class _Episode:
    """One trajectory in progress: tokens, images, the environment's results, timings."""

    state: TokenState
    reward: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)
    end_reason: str | None = None
    generations: int = 0
    observations: int = 0
    observation_images: int = 0
    generate_s: float = 0.0
    env_s: float = 0.0


@register(AGENT_NAME)
class PyVisionAgentLoop(AgentLoopBase):
    """One PyVision episode per trajectory, token-in-token-out (see the module docstring).

    Keyword arguments beyond verl's are :class:`LoopSettings` fields (from the agent-loop YAML).
    """

    def __init__(self, *args: Any, env: Any = None, codec: str = DEFAULT_CODEC, codec_kwargs: Any = None,
                 model_path: str | None = None, max_turn_tokens: int = 10240, **kwargs: Any) -> None:  # fmt: skip
        kwargs.pop("name", None)  # the YAML entry's own name, passed along by hydra
        kwargs.pop("tools", None)  # verl's tool list: this loop's tool is the environment
        super().__init__(*args, **kwargs)
        self.settings = LoopSettings(
            env=dict(_plain(env) or {}), codec=codec, codec_kwargs=dict(_plain(codec_kwargs) or {}),
            model_path=model_path, max_turn_tokens=int(max_turn_tokens),
        )  # fmt: skip
        if self.settings.max_turn_tokens < 1:
            raise VerlLoopError(f"max_turn_tokens must be at least 1, got {self.settings.max_turn_tokens}")
        self.env_config: EnvConfig = _checked(EnvConfig, self.settings.env, "env")
        path = self.settings.model_path or str(self.config.actor_rollout_ref.model.path)
        self.codec = load_codec(path, self.settings.codec, self.settings.codec_kwargs)
        self.prompt_length = int(self.rollout_config.prompt_length)
        self.response_length = int(self.rollout_config.response_length)
        self.eos = set(self.codec.eos_token_ids)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in a worker thread (environment steps block on the sandbox)."""
        return await self.loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> AgentLoopOutput:
        """Play one episode of the task in ``kwargs["extra_info"]`` and return it for verl."""
        spec, split = task_spec(kwargs.get("extra_info"), int(kwargs.get("index", 0) or 0))
        env = await self._call(env_factory(self.env_config, split))
        try:
            start = time.perf_counter()
            obs, info = await self._call(env.reset, **spec.reset_kwargs())
            prompt = await self._call(self.codec.prompt, obs["text"], list(obs["images"]))
            if len(prompt.ids) > self.prompt_length:
                raise VerlLoopError(
                    f"task {spec.task_id}: its prompt has {len(prompt.ids)} tokens, more than rollout.prompt_length="
                    f"{self.prompt_length} (raise it, or lower the image pixel limit)"
                )
            episode = _Episode(TokenState.from_prompt(prompt), info=dict(info), env_s=time.perf_counter() - start)
            request_id = uuid4().hex  # one per trajectory: the server keeps its prefix cached
            while episode.end_reason is None:
                await self._turn(episode, env, request_id, sampling_params)
        finally:
            await self._call(env.close)
        return self._output(episode, want_logprobs=bool(sampling_params.get("logprobs")))

    async def _turn(self, episode: _Episode, env: Any, request_id: str, sampling_params: dict[str, Any]) -> None:
        """Generate one action, step the environment, append the observation (or end)."""
        state = episode.state
        room = self.response_length - (len(state.ids) - state.prompt_len)
        if room < 1:
            episode.end_reason, episode.reward = OVER_LENGTH, 0.0
            return
        params = {
            **sampling_params, "stop": list(self.codec.stop_strings), "include_stop_str_in_output": True,
            "max_tokens": min(self.settings.max_turn_tokens, room),
        }  # fmt: skip
        start = time.perf_counter()
        out = await self.server_manager.generate(
            request_id=request_id, prompt_ids=list(state.ids), sampling_params=params, image_data=_pil(state.images) or None
        )
        episode.generate_s += time.perf_counter() - start
        ids = [int(t) for t in out.token_ids][:room]
        logp = list(out.log_probs or [0.0] * len(ids))[: len(ids)]
        state.ids, state.mask, state.logp = state.ids + ids, state.mask + [1] * len(ids), state.logp + logp
        episode.generations += 1
        text_ids = ids[:-1] if ids and ids[-1] in self.eos else ids
        start = time.perf_counter()
        obs, reward, terminated, truncated, info = await self._call(env.step, self.codec.decode(text_ids))
        episode.env_s += time.perf_counter() - start
        episode.reward, episode.info = float(reward), dict(info)
        if terminated or truncated:
            episode.end_reason = str(info.get("end_reason") or "DONE")
            return
        delta = await self._call(self.codec.observation, obs["text"], list(obs["images"]), len(state.images))
        if ids and ids[-1] in self.eos and delta.ids and delta.ids[0] == ids[-1]:
            delta = replace(delta, ids=delta.ids[1:])  # the model closed its turn itself
        if len(state.ids) - state.prompt_len + len(delta.ids) >= self.response_length:
            episode.end_reason, episode.reward = OVER_LENGTH, 0.0  # never cut an observation
            return
        episode.state = state.extended(delta)
        episode.observations += 1
        episode.observation_images += len(delta.images)

    def _output(self, episode: _Episode, want_logprobs: bool) -> AgentLoopOutput:
        """The episode as verl's ``AgentLoopOutput`` (reward on the trajectory, images in order)."""
        state, info = episode.state, episode.info
        n = state.prompt_len
        over = episode.end_reason == OVER_LENGTH
        reward_info = {
            "acc": 0.0 if over else float(info.get("accuracy") or 0.0),
            "tool_calls": float(info.get("tool_calls") or 0),
            "observation_images": float(episode.observation_images),
            "visual_tokens": float(info.get("visual_tokens") or 0),
            "over_length": float(over),
        }
        return AgentLoopOutput(
            prompt_ids=state.ids[:n],
            response_ids=state.ids[n:],
            response_mask=state.mask[n:],
            response_logprobs=state.logp[n:] if want_logprobs else None,
            multi_modal_data={"images": _pil(state.images)} if state.images else {},
            reward_score=episode.reward,
            num_turns=1 + episode.generations + episode.observations,
            metrics=AgentLoopMetrics(generate_sequences=episode.generate_s, tool_calls=episode.env_s),
            extra_fields={
                "end_reason": episode.end_reason, "task_id": info.get("task_id"), "family": info.get("family"),
                "reward_terms": dict(info.get("reward_terms") or {}), "reward_extra_info": reward_info,
            },
        )  # fmt: skip
