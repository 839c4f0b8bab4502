"""Every training setting, in one place: nested dataclasses with a docstring per field.

A config is a YAML file (the shipped ones are in ``configs/``: ``tiny-cpu``, ``qwen2.5-vl-7b``)
read into :class:`TrainConfig`; ``--set section.key=value`` overrides a field (the value is
parsed as YAML: ``--set optim.lr=3e-5``, ``--set env.kwargs.families=[counting]``). An unknown
key anywhere is an error naming it and the nearest valid key; a value of the wrong type is an
error naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

CONFIGS = ("tiny-cpu", "reference", "qwen2.5-vl-7b")


class ConfigError(ValueError):
    """A config file or override that does not fit :class:`TrainConfig`."""


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train LoRA adapters (through ``peft``) instead of the full language model."""
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA path."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names that get adapters (language model only; the vision tower stays as configured)."""


@dataclass
class PolicyConfig:
    model_path: str = "tiny"
    """A local model folder, or ``tiny``: the locally built tiny Qwen2.5-VL (``pyvision-gym tiny-model``)."""
    codec: str = "pyvision_gym.agents.codec:QwenChatCodec"
    """The model family's chat codec, as ``module:Class`` (see ``train/codec.py``)."""
    codec_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the codec (e.g. ``max_pixels`` for observation images)."""
    tiny_model_seed: int = 0
    """Seed of the tiny model when ``model_path`` is ``tiny``."""
    tiny_model_overrides: dict[str, Any] = field(default_factory=dict)
    """Sizes of the tiny model when ``model_path`` is ``tiny`` (e.g. ``{num_hidden_layers: 4}``;
    the names of ``pyvision_gym.agents.tiny_model.DEFAULTS``)."""
    device: str = "auto"
    """``cpu``, ``cuda`` or ``auto`` (cuda when available)."""
    dtype: str = "auto"
    """Parameter dtype: ``float32``, ``bfloat16`` or ``auto`` (bfloat16 on cuda, float32 on cpu)."""
    freeze_vision: bool = True
    """Keep the vision encoder's weights fixed (the paper's setting)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass (memory for time; for the 7B config)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """Optional LoRA."""


@dataclass
class EnvConfig:
    id: str = "PyVisionImage-v0"
    """The gym id episodes run on."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments of ``gym.make`` (``families``, ``difficulty``, ``dataset``, ...)."""
    max_turns: int = 5
    """Turns per training episode (the paper: 5)."""
    tool_reward_per_turn: float = 0.1
    """The accumulative tool reward's bonus per successful tool turn, paid when the answer is correct."""
    reward: str = "accumulative"
    """``accumulative`` (accuracy + tool bonus) or ``accuracy``."""
    terminate_on_error: bool = False
    """End an episode at the first failed code turn (the released trainer's behaviour)."""
    cache_dir: str | None = None
    """Generated media (default: the environment's cache)."""
    workers: int = 8
    """Environments stepped concurrently (threads; each has its own sandbox)."""
    backend: str = "local"
    """Where environments live: ``local`` (this process, one sandbox process each) or ``ray``
    (one Ray actor each, on the cluster ``RAY_ADDRESS`` names or a local one)."""
    ray_options: dict[str, Any] = field(default_factory=dict)
    """Ray resources per environment actor for ``backend: ray`` (default ``{num_cpus: 0}``)."""


@dataclass
class RolloutConfig:
    n: int = 8
    """Rollouts per prompt (the GRPO group size)."""
    gen_batch_size: int = 32
    """Prompts per generation batch (oversampling draws several per step)."""
    engine: str = "hf"
    """Generation engine: ``hf`` (transformers ``generate``) or ``vllm``."""
    temperature: float = 1.0
    """Sampling temperature for training rollouts."""
    top_p: float = 1.0
    """Nucleus sampling for training rollouts (keep 1.0: the learner's log-probs assume it)."""
    max_new_tokens: int = 10240
    """Tokens one turn may generate."""
    max_length: int = 32768
    """Tokens a whole trajectory may hold; an episode that would exceed it ends as ``OVER_LENGTH``."""
    val_temperature: float = 0.0
    """Temperature of validation episodes (0: greedy)."""
    vllm_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra ``vllm.LLM`` keyword arguments for ``engine: vllm`` (e.g. ``gpu_memory_utilization``,
    ``limit_mm_per_prompt``; defaults in ``train/engines/vllm_worker.py``)."""


@dataclass
class BatchConfig:
    train_batch_size: int = 64
    """Prompts per training step (times ``rollout.n`` trajectories)."""
    filters: list[str] = field(default_factory=lambda: ["zero_variance", "has_image", "image_tokens", "over_length", "end_reason"])
    """Filters, each switchable: zero_variance (groups whose rewards are all equal), has_image (no
    image observation), image_tokens (placeholders != images), over_length, end_reason."""
    end_reason_allowlist: list[str] = field(default_factory=lambda: ["DONE", "EXCEED_MAX_TURNS", "ERROR_IN_ACTION"])
    """End reasons the end_reason filter keeps."""
    max_gen_batches: int = 8
    """Generation batches one step may draw before it gives up with a clear error."""
    rank_by_std: bool = True
    """Keep the groups with the largest reward std when more than a batch survived."""


@dataclass
class AlgorithmConfig:
    advantage: str = "grpo"
    """Advantage estimator: a registered name (grpo, rloo, reinforce_pp) or ``module:function``."""
    norm_by_std: bool = False
    """GRPO: divide by the group's (unbiased) std (the paper: no)."""
    policy_loss: str = "ppo"
    """Policy loss: a registered name (ppo) or ``module:function``."""
    clip_low: float = 0.2
    """PPO: lower clip range (ratio >= 1 - clip_low)."""
    clip_high: float = 0.2
    """PPO: upper clip range; above clip_low is clip-higher (DAPO)."""
    clip_c: float | None = 3.0
    """Dual-clip constant for negative advantages (None: off)."""
    loss_agg: str = "token_mean"
    """``token_mean`` (over the global token count), ``seq_mean_token_mean`` or ``token_mean_legacy``
    (the authors' per-micro-batch token mean)."""
    kl_coef: float = 0.0
    """KL to the reference (initial) policy; 0 loads no reference model."""
    entropy_coef: float = 0.0
    """Entropy bonus coefficient."""


@dataclass
class OptimConfig:
    lr: float = 1e-6
    """Learning rate (constant)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient norm clip."""
    mini_batch_size: int = 16
    """Prompts per optimiser step (an RL step makes train_batch_size / mini_batch_size of them)."""
    micro_batch_size: int = 4
    """Trajectories per forward/backward (gradient accumulation cannot change the gradient)."""
    epochs: int = 1
    """Passes over each training batch."""
    parallel: str = "ddp"
    """Data-parallel wrapper under ``torchrun``: ``ddp`` (replicated weights) or ``fsdp2``
    (``fully_shard`` per transformer block, for models that do not fit one device)."""


@dataclass
class SFTConfig:
    enabled: bool = True
    """Warm-start with supervised fine-tuning on expert trajectories before RL."""
    episodes: int = 64
    """Expert episodes (train split) rendered in the agent's turn format."""
    epochs: int = 2
    """Passes over them."""
    lr: float = 1e-5
    """SFT learning rate."""
    lr_schedule: str = "constant"
    """``constant``, or ``cosine``: from ``lr`` down to ``lr / 10`` over the SFT's optimiser steps."""
    batch_size: int = 8
    """Trajectories per optimiser step."""
    final_turn_weight: float = 1.0
    """Loss weight of each episode's last turn (the final answer) relative to the other tokens.
    The answer is a few tokens among hundreds of code: a small model learns to write the code
    and still answers with a wrong copy of what it printed unless the answer weighs more."""
    answer_window: int = 0
    """Besides the full episodes, train on each episode's last two turns (the code that printed
    the result and the answer) with this many tokens before them as context, the loss on the
    answer alone (0: off): many cheaper examples of copying the printed result."""
    answer_repeats: int = 1
    """How many times each answer window is seen per epoch."""
    answer_batch_size: int = 64
    """Answer windows per optimiser step (they are short, so they batch apart from full episodes)."""


@dataclass
class TrainConfig:
    name: str = "custom"
    """The config's name (runs go to ``out_dir``)."""
    seed: int = 0
    """Seeds everything: task draws, sampling, refill."""
    out_dir: str = "runs/train/custom"
    """Checkpoints, metrics.jsonl, TensorBoard logs and the plot."""
    steps: int = 100
    """RL steps."""
    val_every: int = 10
    """Validate every N steps (and before the first and after the last)."""
    val_episodes: int = 32
    """Validation episodes (paired: the same val-split seeds every time)."""
    save_every: int = 10
    """Checkpoint every N steps (and at the end)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    batching: BatchConfig = field(default_factory=BatchConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- building
def _nearest(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.5)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """``value`` if it fits ``annotation`` (ints are accepted for floats), else ConfigError."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            try:
                return _check_type(value, arm, where)
            except ConfigError:
                continue
        raise ConfigError(f"{where}: {value!r} is not a {annotation}")
    if annotation is Any:
        return value
    if annotation is type(None):
        if value is None:
            return None
        raise ConfigError(f"{where}: expected null, got {value!r}")
    base = origin or annotation
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if base in (int, float) and isinstance(value, str):  # YAML 1.1 reads "3e-5" as a string
        try:
            return base(value)
        except ValueError:
            raise ConfigError(f"{where}: expected a {base.__name__}, got {value!r}") from None
    if base in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected a {base.__name__}, got {value!r}")
    if not isinstance(value, base):
        raise ConfigError(f"{where}: expected {getattr(base, '__name__', base)}, got {type(value).__name__} {value!r}")
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if key not in hints:
            raise ConfigError(f"unknown config key {path!r}{_nearest(key, names)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        else:
            kwargs[key] = _check_type(value, hint, path)
    return cls(**kwargs)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_override(text: str) -> dict[str, Any]:
    """``a.b.c=value`` as a nested mapping (the value parsed as YAML)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected section.key=value")
    value = yaml.safe_load(raw) if raw.strip() else ""
    out: dict[str, Any] = value
    for part in reversed(key.strip().split(".")):
        out = {part: out}
    return out


def config_path(name_or_file: str | Path) -> Path:
    """A shipped config's file by name, or the given file."""
    p = Path(name_or_file)
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        return p
    shipped = Path(str(resources.files("pyvision_gym.train") / "configs" / f"{name_or_file}.yaml"))
    if not shipped.is_file():
        raise ConfigError(f"no config {str(name_or_file)!r}: not a file, and not one of {', '.join(CONFIGS)}{_nearest(str(name_or_file), list(CONFIGS))}")
    return shipped


def load_config(name_or_file: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """The config named (shipped) or stored in a file, with ``--set`` overrides applied."""
    path = config_path(name_or_file)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    for text in overrides or []:
        data = _merge(data, parse_override(text))
    return _build(TrainConfig, data, "")
