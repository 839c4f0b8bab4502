"""The rollout engine: agents drive many environments in lock-step and get per-episode records.

- :mod:`.agent` the agent interface (``Agent``, ``Episode``, ``Observation``);
- :mod:`.records` ``TaskSpec`` (what to run) and ``EpisodeRecord`` (what happened);
- :mod:`.engine` ``RolloutEngine``, the lock-step multi-episode turn loop.
"""

from __future__ import annotations

from .agent import Agent, EndEpisode, Episode, Observation
from .engine import RolloutEngine
from .records import ERROR_END_REASONS, ROW_FIELDS, EpisodeRecord, TaskSpec, TranscriptTurn

__all__ = [
    "ERROR_END_REASONS",
    "ROW_FIELDS",
    "Agent",
    "EndEpisode",
    "Episode",
    "EpisodeRecord",
    "Observation",
    "RolloutEngine",
    "TaskSpec",
    "TranscriptTurn",
]
