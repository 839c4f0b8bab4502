"""The agent interface: turn the episode so far into the next turn's text, for many episodes at once."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Observation:
    """What the environment returned: text plus the images shown with it."""

    text: str
    images: tuple[np.ndarray, ...] = ()


@dataclass
class Episode:
    """One running episode as an agent sees it.

    ``first`` is the reset observation (the task prompt); ``turns`` the (action, observation)
    pairs since. ``task`` is the environment's task object: privileged, for scripted agents
    only (the expert reads its question and options, never its answer); ``None`` when the
    agent must not see it.
    """

    episode_id: str
    modality: str
    first: Observation
    turns: list[tuple[str, Observation]] = field(default_factory=list)
    task: Any = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def turn(self) -> int:
        return len(self.turns)


@dataclass(frozen=True)
class EndEpisode:
    """What ``Agent.act`` returns instead of a turn's text to end that episode now.

    The rollout engine does not step the environment: the episode ends with end reason
    ``reason`` (upper case, e.g. the trainer's ``OVER_LENGTH`` when the next observation no
    longer fits the model's context), reward 0 and not correct; ``detail`` goes to the
    record's ``error`` field.
    """

    reason: str
    detail: str | None = None

    def __post_init__(self) -> None:
        if not self.reason or not self.reason.isupper():
            raise ValueError(f"an end reason is an upper-case word such as OVER_LENGTH, got {self.reason!r}")


class Agent(abc.ABC):
    """Produces the next turn's text for a batch of episodes.

    ``act`` receives every episode that still needs a turn and returns one string per
    episode, in order, or an :class:`EndEpisode` for an episode the agent ends itself.
    Agents are built from a spec string (see ``pyvision_gym.agents.registry``).
    """

    spec: str = ""
    privileged: bool = False  # needs ``Episode.task`` (scripted agents)

    @abc.abstractmethod
    def act(self, episodes: Sequence[Episode]) -> list[str | EndEpisode]: ...

    def describe(self) -> dict[str, Any]:
        """Identity for result files: spec, and whatever pins the agent (model hash, ...)."""
        return {"spec": self.spec}

    def close(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """Free models, servers, clients."""
