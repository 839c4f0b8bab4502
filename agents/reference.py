"""``reference``: the shipped reference agent, a tiny Qwen2.5-VL trained by this project's trainer.

The model folder ``agents/checkpoints/reference`` was written by ``pyvision-gym export`` from a
``pyvision-gym train --config reference`` run; its model card (``README.md`` beside the weights)
gives the commands, the data, the wall time and the scores. The agent is the VLM agent on the
transformers backend over that folder, with the settings the folder's ``pyvision_agent.json``
records (greedy, up to 512 new tokens a turn, and the environment's ``toolbox``, which the
evaluation applies and records with the run). ``vlm:hf:agents/checkpoints/reference`` is the
same agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyvision_gym.agents.vlm import VLMAgent, make_vlm_agent

__all__ = ["REFERENCE_MODEL", "make_reference_agent"]

#: The shipped reference checkpoint (a model folder).
REFERENCE_MODEL = Path(__file__).resolve().parent / "checkpoints" / "reference"


def make_reference_agent(**kw: Any) -> VLMAgent:
    """The reference agent; keyword arguments as for :func:`make_vlm_agent` ("hf")."""
    if not (REFERENCE_MODEL / "config.json").is_file():
        raise FileNotFoundError(f"the reference checkpoint is missing: {REFERENCE_MODEL} has no config.json")
    agent = make_vlm_agent("hf", str(REFERENCE_MODEL), **kw)
    agent.spec = "reference"
    return agent
