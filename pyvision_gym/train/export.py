"""A trained run as a model folder that agents load: ``pyvision-gym export RUN DEST``.

The folder is what ``vlm:hf:DEST`` (and ``vlm:vllm:DEST``) reads: the base model folder's
config, tokenizer and processor files, the checkpoint's weights (LoRA adapters merged in) as
``model.safetensors``, and two small JSON files:

- ``pyvision_agent.json``: the agent settings the run trained with, which
  :func:`pyvision_gym.agents.vlm.make_vlm_agent` applies when it loads the folder:
  ``max_new_tokens`` (the run's ``rollout.max_new_tokens``), ``prompt_style`` when the run used
  the authors' format, and ``env_overrides``: the other environment settings that change what
  the policy sees (``toolbox``, ``show_image``). An evaluation applies those on top of the
  suite's settings and records them with the run.
- ``exported_from.json``: the run folder, the checkpoint, its step and the base model.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from pyvision_gym.env import default_cache_dir

from .checkpoint import latest_checkpoint
from .config import TrainConfig, load_config
from .policy_model import apply_lora, merged_state_dict, model_folder

AGENT_FILE = "pyvision_agent.json"
MARKER = "exported_from.json"  # written last: a folder without it is an unfinished export
# Env settings that change what the policy sees. ``prompt_style`` is one too, but it is an agent
# setting of its own (the VLM agent derives its env override from it).
ENV_OVERRIDE_KEYS = ("toolbox", "question_reader", "show_image")


class ExportError(ValueError):
    """A run folder or checkpoint that cannot be exported (the message says why)."""


def run_config(run_dir: Path) -> TrainConfig:
    """The config a run folder was trained with (its ``config.yaml``)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ExportError(f"{run_dir} is not a training run folder (no config.yaml)")
    return load_config(path)


def agent_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The settings an agent needs to meet the policy on its training terms."""
    env = {k: cfg.env.kwargs[k] for k in ENV_OVERRIDE_KEYS if k in cfg.env.kwargs}
    settings: dict[str, Any] = {"max_new_tokens": int(cfg.rollout.max_new_tokens)}
    if cfg.env.kwargs.get("prompt_style", "default") != "default":
        settings["prompt_style"] = cfg.env.kwargs["prompt_style"]
    if env:
        settings["env_overrides"] = env
    return settings


def export_model_folder(run_dir: str | Path, dest: str | Path, checkpoint: str | Path | None = None,
                        dtype: str = "float32") -> Path:
    """Write the run's checkpoint (default: its latest) as a model folder at ``dest``."""
    from transformers import AutoModelForImageTextToText

    run_dir, dest = Path(run_dir), Path(dest)
    cfg = run_config(run_dir)
    ckpt = Path(checkpoint) if checkpoint else latest_checkpoint(run_dir)
    if ckpt is None or not (ckpt / "model.pt").is_file():
        raise ExportError(f"{run_dir}: no finished checkpoint to export (looked for {ckpt or run_dir / 'latest'})")
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ExportError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
    cache = Path(cfg.env.cache_dir) if cfg.env.cache_dir else default_cache_dir()
    base = model_folder(cfg.policy, cache / "models")
    model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    state = torch.load(ckpt / "model.pt", map_location="cpu", weights_only=True)
    if cfg.policy.lora.enabled:  # the checkpoint holds the adapters only: merge them into the base weights
        peft_model = apply_lora(model, cfg.policy)
        unexpected = peft_model.load_state_dict(state, strict=False).unexpected_keys
        if unexpected or not state:
            raise ExportError(f"{ckpt}: the adapters do not fit {base} with policy.lora (unexpected {unexpected[:3]})")
        state = merged_state_dict(peft_model)
        model = AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ExportError(f"{ckpt}: the weights do not fit {base} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    tmp = dest.with_name(dest.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(base, tmp, ignore=shutil.ignore_patterns("*.safetensors", "*.bin", "*.pt", "tiny_build.json"))
    model.to(getattr(torch, dtype)).save_pretrained(tmp)
    (tmp / AGENT_FILE).write_text(json.dumps(agent_settings(cfg), indent=1) + "\n", encoding="utf-8")
    state_file = ckpt / "state.pt"
    step = int(torch.load(state_file, map_location="cpu", weights_only=False)["step"]) if state_file.is_file() else None
    info = {"run": str(run_dir.resolve()), "checkpoint": ckpt.name, "step": step, "config": cfg.name,
            "base": "tiny" if cfg.policy.model_path == "tiny" else str(base), "dtype": dtype}
    (tmp / MARKER).write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest
