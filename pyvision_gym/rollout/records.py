"""What the rollout engine takes (:class:`TaskSpec`) and returns (:class:`EpisodeRecord`).

``EpisodeRecord.to_row()`` is one line of a run's ``episodes.jsonl``: the keys of
:data:`ROW_FIELDS` in that order, with the values the viewer, the leaderboard and existing run
folders read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .agent import Episode

__all__ = ["ERROR_END_REASONS", "ROW_FIELDS", "EpisodeRecord", "TaskSpec", "TranscriptTurn"]

# End reasons of episodes that did not finish: the agent or the environment raised.
ERROR_END_REASONS = ("AGENT_ERROR", "ENV_ERROR")
ROW_FIELDS = (
    "index", "task_id", "family", "modality", "difficulty", "seed", "question", "answer",
    "ground_truth", "answer_type", "correct", "accuracy", "reward", "reward_terms", "turns",
    "tool_calls", "tool_errors", "images_shown", "end_reason", "error", "visual_tokens",
    "visual_tokens_full_video", "wall_s", "task_hash", "transcript",
)


@dataclass(frozen=True)
class TaskSpec:
    """Which task an episode runs, and how to reset an environment onto it."""

    task_id: str
    """The caller's id of the task; the agent sees it as ``Episode.episode_id``."""
    index: int = 0
    """The caller's position of the task (a suite index); records carry it back."""
    family: str | None = None
    """Task family, passed as ``options["family"]`` (None: the environment picks)."""
    difficulty: int | None = None
    """Difficulty, passed as ``options["difficulty"]`` (None: the environment picks)."""
    seed: int | None = None
    """``reset(seed=...)`` of a generated task."""
    dataset_row: int | None = None
    """Row of the environment's dataset (``options["index"]``); set, it replaces ``seed``."""

    def reset_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``env.reset`` that start this task."""
        if self.dataset_row is not None:
            return {"options": {"index": int(self.dataset_row)}}
        options: dict[str, Any] = {}
        if self.family is not None:
            options["family"] = self.family
        if self.difficulty is not None:
            options["difficulty"] = int(self.difficulty)
        return {"seed": None if self.seed is None else int(self.seed), "options": options}


@dataclass
class TranscriptTurn:
    """One turn: the agent's text (None for the first observation), what came back, image refs."""

    turn: int
    action: str | None
    observation: str
    images: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The turn as it appears in a row's ``transcript``."""
        return {"turn": self.turn, "action": self.action, "observation": self.observation, "images": list(self.images)}


@dataclass
class EpisodeRecord:
    """One finished (or failed) episode: the task, the transcript, the outcome and its accounting.

    Outcome fields (``answer``, ``correct``, ``accuracy``, ``reward``, ``reward_terms``) keep
    their empty values unless the environment ended the episode; counters (turns, tool calls,
    images, visual tokens) are the environment's last report either way.
    """

    index: int
    task_id: str
    family: str | None
    modality: str
    difficulty: int | None = None
    seed: int | None = None
    question: str | None = None
    answer: str | None = None
    ground_truth: Any = None
    answer_type: str | None = None
    correct: bool = False
    accuracy: float = 0.0
    reward: float = 0.0
    reward_terms: dict[str, Any] = field(default_factory=dict)
    turns: int = 0
    tool_calls: int = 0
    tool_errors: int = 0
    images_shown: int = 0
    end_reason: str | None = None
    """The environment's end reason, or one of :data:`ERROR_END_REASONS`."""
    error: str | None = None
    """The traceback of an ``AGENT_ERROR`` / ``ENV_ERROR``."""
    visual_tokens: int = 0
    visual_tokens_full_video: int | None = None
    wall_s: float = 0.0
    task_hash: str | None = None
    """The engine's ``fingerprint`` of the task, when it was given one."""
    transcript: list[TranscriptTurn] = field(default_factory=list)
    episode: Episode | None = field(default=None, repr=False, compare=False)
    """The episode as the agent saw it (observations with their images); not part of the row."""

    @property
    def failed(self) -> bool:
        """Whether the agent or the environment raised."""
        return self.end_reason in ERROR_END_REASONS

    def to_row(self) -> dict[str, Any]:
        """The ``episodes.jsonl`` row: :data:`ROW_FIELDS` in order."""
        row = {k: getattr(self, k) for k in ROW_FIELDS if k != "transcript"}
        row["reward_terms"] = dict(self.reward_terms)
        row["transcript"] = [t.to_dict() for t in self.transcript]
        return row
