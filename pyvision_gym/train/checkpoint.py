"""Checkpoints that resume identically: weights, optimiser, step, RNG states, data cursor, carry.

A checkpoint is a folder::

    model.pt       the policy's state dict (LoRA runs: the adapter tensors only)
    optimizer.pt   the optimiser's state dict (AdamW moments and step counts)
    state.pt       step, data cursor, the trainer's carried state (any picklable dict)
    rng-rank{r}.pt each rank's python / numpy / torch (and CUDA) RNG states

Rank 0 writes the shared files, every rank its own RNG file; every rank loads. The files are
this project's own (written by :func:`save_checkpoint`), so they are read with full pickle.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

from .learner import Learner

LATEST = "latest"  # a text file in the run folder naming the newest checkpoint folder


def rng_state() -> dict[str, Any]:
    """This process's RNG states (python, numpy's global, torch CPU and CUDA)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore states saved by :func:`rng_state`."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _is_lora(learner: Learner) -> bool:
    return hasattr(learner.policy, "get_base_model")


def _sharded(learner: Learner) -> bool:
    return learner.cfg.optim.parallel == "fsdp2" and learner.world > 1


def _model_state(learner: Learner) -> dict[str, torch.Tensor]:
    if _sharded(learner):
        state = get_model_state_dict(learner.model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    else:
        state = {k: v.detach().cpu().clone() for k, v in learner.policy.state_dict().items()}
    return {k: v for k, v in state.items() if "lora_" in k} if _is_lora(learner) else state


def _optim_state(learner: Learner) -> dict[str, Any]:
    if _sharded(learner):
        return get_optimizer_state_dict(learner.model, learner.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return learner.optimizer.state_dict()


def _barrier(learner: Learner) -> None:
    if learner.world > 1:
        dist.barrier()


def save_checkpoint(path: str | Path, learner: Learner, *, cursor: Any = None, carry: dict[str, Any] | None = None) -> Path:
    """Write the learner's full state, the data ``cursor`` and ``carry`` to folder ``path``."""
    path = Path(path)
    model, optim = _model_state(learner), _optim_state(learner)  # collective under FSDP2
    tmp = path.with_name(f"{path.name}.saving")
    if learner.rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        torch.save(model, tmp / "model.pt")
        torch.save(optim, tmp / "optimizer.pt")
        torch.save({"step": learner.step, "cursor": cursor, "carry": carry or {}, "world": learner.world}, tmp / "state.pt")
    _barrier(learner)
    torch.save(rng_state(), tmp / f"rng-rank{learner.rank}.pt")
    _barrier(learner)
    if learner.rank == 0:
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
        (path.parent / LATEST).write_text(path.name)
    _barrier(learner)
    return path


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=False)


def load_checkpoint(path: str | Path, learner: Learner) -> dict[str, Any]:
    """Restore a checkpoint written by :func:`save_checkpoint` into ``learner`` (built with the
    same config) and this process's RNGs; return ``{"step", "cursor", "carry"}``."""
    path = Path(path)
    if not (path / "state.pt").is_file():
        raise FileNotFoundError(f"{path} is not a checkpoint (no state.pt)")
    model, optim, state = _load(path / "model.pt"), _load(path / "optimizer.pt"), _load(path / "state.pt")
    if _sharded(learner):
        options = StateDictOptions(full_state_dict=True, strict=not _is_lora(learner))
        set_model_state_dict(learner.model, model, options=options)
        set_optimizer_state_dict(learner.model, learner.optimizer, optim, options=options)
    else:
        missing, unexpected = learner.policy.load_state_dict(model, strict=False)
        if unexpected or (missing and not _is_lora(learner)):
            raise ValueError(f"{path}: checkpoint does not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")
        learner.optimizer.load_state_dict(optim)
    learner.step = int(state["step"])
    rng_file = path / f"rng-rank{learner.rank}.pt"
    if rng_file.is_file():
        set_rng_state(_load(rng_file))
    return {"step": learner.step, "cursor": state["cursor"], "carry": state["carry"]}


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest checkpoint folder of a run (named in its ``latest`` file), or None."""
    marker = Path(run_dir) / LATEST
    if not marker.is_file():
        return None
    folder = Path(run_dir) / marker.read_text().strip()
    return folder if (folder / "state.pt").is_file() else None
