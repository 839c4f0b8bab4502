"""The policy: a Qwen2.5-VL-style model from transformers plus its chat codec.

``load_policy(cfg, cache_dir)`` returns ``(model, codec)``. ``model_path: tiny`` builds the tiny
random Qwen2.5-VL locally (through a plugin string, so this package never imports the agents);
any other value is a local checkpoint folder loaded with ``AutoModelForImageTextToText``. The
vision encoder is frozen by default, LoRA adapters (``peft``) go on the language model only, and
gradient checkpointing is a switch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from pyvision_gym.plugins import load

from .config import PolicyConfig

TINY_BUILDER = "pyvision_gym.agents.tiny_model:build_tiny_qwen25vl"
VISION_ATTRS = ("model.visual", "visual", "model.vision_tower", "vision_tower")


class PolicyError(ValueError):
    """A policy that cannot be built as configured."""


def resolve_device(name: str) -> torch.device:
    """``auto`` is cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bfloat16 on cuda and float32 elsewhere."""
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise PolicyError(f"policy.dtype must be auto or one of {sorted(dtypes)}, got {name!r}")
    return dtypes[name]


def model_folder(cfg: PolicyConfig, cache_dir: str | Path) -> Path:
    """The model folder: the tiny model built under ``cache_dir`` or ``cfg.model_path``."""
    if cfg.model_path == "tiny":
        build = load(TINY_BUILDER)
        name = f"tiny-qwen25vl-seed{cfg.tiny_model_seed}"
        if cfg.tiny_model_overrides:  # another architecture: another folder
            name += "-" + "-".join(f"{k}{v}" for k, v in sorted(cfg.tiny_model_overrides.items()))
        return Path(build(Path(cache_dir) / name, seed=cfg.tiny_model_seed, **cfg.tiny_model_overrides))
    path = Path(cfg.model_path).expanduser()
    if not (path / "config.json").is_file():
        raise PolicyError(f"policy.model_path {cfg.model_path!r} is not a model folder (no config.json); use 'tiny' or a local checkpoint")
    return path


def vision_module(model: nn.Module) -> nn.Module:
    """The vision encoder of a Qwen-VL-style model (``model.model.visual`` / ``model.visual``)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for dotted in VISION_ATTRS:
        obj: Any = base
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(obj, nn.Module):
            return obj
    raise PolicyError(f"{type(base).__name__} has no vision encoder at any of {', '.join(VISION_ATTRS)}")


def set_vision_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze (or unfreeze) the vision encoder's parameters."""
    for p in vision_module(model).parameters():
        p.requires_grad_(trainable)


def language_lora_targets(model: nn.Module, suffixes: list[str]) -> list[str]:
    """Full names of the modules ending in one of ``suffixes`` outside the vision encoder."""
    vision = {id(m) for m in vision_module(model).modules()}
    names = [
        name
        for name, module in model.named_modules()
        if id(module) not in vision and isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in suffixes
    ]
    if not names:
        raise PolicyError(f"policy.lora.target_modules {suffixes} match no linear layer of the language model")
    return names


def apply_lora(model: nn.Module, cfg: PolicyConfig) -> nn.Module:
    """Wrap ``model`` with LoRA adapters on the language model (base weights frozen)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=language_lora_targets(model, list(cfg.lora.target_modules)),
        bias="none",
    )
    return get_peft_model(model, lora)


def enable_checkpointing(model: nn.Module) -> None:
    """Recompute activations in the backward pass (non-reentrant, so frozen inputs are fine)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def load_policy(cfg: PolicyConfig, cache_dir: str | Path) -> tuple[nn.Module, Any]:
    """The policy model (on its device and dtype, in train mode) and the codec of its folder."""
    from transformers import AutoModelForImageTextToText

    folder = model_folder(cfg, cache_dir)
    device = resolve_device(cfg.device)
    dtype = resolve_dtype(cfg.dtype, device)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=dtype)
    model.config.use_cache = False
    model.to(device)
    if cfg.gradient_checkpointing:
        enable_checkpointing(model)
    if cfg.lora.enabled:
        model = apply_lora(model, cfg)  # base weights (vision included) frozen by peft
        if not cfg.freeze_vision:
            set_vision_trainable(model, True)
    else:
        set_vision_trainable(model, not cfg.freeze_vision)
    model.train()
    codec = load(cfg.codec)(str(folder), **cfg.codec_kwargs)
    return model, codec


def load_reference(cfg: PolicyConfig, cache_dir: str | Path) -> nn.Module:
    """A frozen copy of the initial policy (for the KL term), in eval mode."""
    from transformers import AutoModelForImageTextToText

    folder = model_folder(cfg, cache_dir)
    device = resolve_device(cfg.device)
    model = AutoModelForImageTextToText.from_pretrained(folder, dtype=resolve_dtype(cfg.dtype, device))
    model.config.use_cache = False
    model.to(device).eval()
    model.requires_grad_(False)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP / FSDP wrapper (``.module``), else ``model``."""
    return getattr(model, "module", model)


def merged_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The policy's full weights under the base model's names (LoRA deltas merged in, the
    model itself left unchanged): what a generation engine loads after an update."""
    model = unwrap(model)
    if not hasattr(model, "get_base_model"):
        return {k: v.detach() for k, v in model.state_dict().items()}
    base = model.get_base_model()
    out: dict[str, torch.Tensor] = {}
    lora_layers = {name: m for name, m in base.named_modules() if hasattr(m, "get_delta_weight") and hasattr(m, "base_layer")}
    for key, value in base.state_dict().items():
        if ".lora_" in key:
            continue
        out[key.replace(".base_layer.", ".")] = value.detach()
    for name, layer in lora_layers.items():
        adapters = [a for a in layer.active_adapters if a in layer.lora_A]
        weight = layer.base_layer.weight.detach()
        for adapter in adapters:
            weight = weight + layer.get_delta_weight(adapter).detach().to(weight.dtype)
        out[f"{name}.weight"] = weight
    return out
