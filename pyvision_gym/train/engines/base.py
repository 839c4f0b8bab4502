"""The interface every generation engine implements (transformers, vLLM)."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Sampling:
    """How to sample one turn. ``temperature`` 0 is greedy (validation)."""

    max_new_tokens: int = 512
    temperature: float = 1.0
    top_p: float = 1.0
    stop_strings: tuple[str, ...] = ("</code>", "</answer>")
    seed: int | None = None


@dataclass
class GenRequest:
    """Continue ``ids`` (whose image placeholders stand for ``images``, in order)."""

    ids: list[int]
    images: list[np.ndarray] = field(default_factory=list)
    max_new_tokens: int | None = None  # overrides Sampling.max_new_tokens (the room left)


@dataclass
class GenResult:
    """The generated ids as generated (stop string included), one log-prob per id under the
    sampling distribution (logits / temperature), and why generation ended: "stop" (a stop
    string or an end-of-turn id) or "length"."""

    ids: list[int]
    logprobs: list[float]
    finish_reason: str


class GenerationEngine(abc.ABC):
    """Generates turns for many episodes at once; the learner pushes new weights after updates."""

    @abc.abstractmethod
    def generate(self, requests: Sequence[GenRequest], sampling: Sampling) -> list[GenResult]: ...

    @abc.abstractmethod
    def load_weights(self, state_dict: dict[str, Any]) -> None:
        """Take the policy's current weights (called after every learner update)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Free the engine."""
