"""``reference``: the reference agent, a tiny Qwen2.5-VL trained by this project's trainer.

The model folder ``agents/checkpoints/reference`` was written by ``pyvision-gym export`` from a
``pyvision-gym train --config reference`` run; its model card (``README.md`` beside the
weights) gives the commands, the data, the wall time and its scores.

The agent is the VLM agent on the transformers backend over that folder, with the settings the
folder's ``pyvision_agent.json`` records: up to 640 new tokens a turn (greedy), and the
environment settings it was trained with, which the evaluation applies on top of the suite's
and records with the run (the leaderboard notes them): ``toolbox=True`` (the family's helper
functions preloaded and listed in the prompt), ``question_reader=True`` (the question's text and
the family's ``read_question(question)`` in the session) and ``show_image=False`` (no image in
the prompt; it looks through code). ``vlm:hf:agents/checkpoints/reference`` is the same agent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyvision_gym.agents.registry import AgentSpecError
from pyvision_gym.agents.vlm import VLMAgent, make_vlm_agent

__all__ = ["REFERENCE_MODEL", "make_reference_agent"]

#: The shipped reference checkpoint (a model folder).
REFERENCE_MODEL = Path(__file__).resolve().parent / "checkpoints" / "reference"


def make_reference_agent(**kw: Any) -> VLMAgent:
    """The reference agent; keyword arguments as for :func:`make_vlm_agent` ("hf")."""
    if not (REFERENCE_MODEL / "config.json").is_file():
        raise AgentSpecError(
            f"the reference checkpoint is not in this repository yet ({REFERENCE_MODEL} has no config.json): "
            f"train it with `pyvision-gym train --config reference`, then "
            f"`pyvision-gym export runs/train/reference {REFERENCE_MODEL}`"
        )
    agent = make_vlm_agent("hf", str(REFERENCE_MODEL), **kw)
    agent.spec = "reference"
    return agent
