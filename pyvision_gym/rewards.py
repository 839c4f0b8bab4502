"""Rewards: ``reward(score, tool_calls) -> (total, terms)``, pluggable by name or callable.

:class:`AccumulativeToolReward` is PyVision-RL's R = acc + 1[correct] * 0.1 * K, where K is the
number of tool turns that ran successfully; :class:`AccuracyReward` is R = acc.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from .scoring import ScoreResult

__all__ = ["AccumulativeToolReward", "AccuracyReward", "RewardFn", "make_reward"]


@runtime_checkable
class RewardFn(Protocol):
    """``reward(score, tool_calls) -> (total, terms)``; the terms sum to the total."""

    def __call__(self, score: ScoreResult, tool_calls: int) -> tuple[float, dict[str, float]]: ...


@dataclass(frozen=True)
class AccuracyReward:
    """R = accuracy."""

    def __call__(self, score: ScoreResult, tool_calls: int) -> tuple[float, dict[str, float]]:
        a = float(score.accuracy)
        return a, {"accuracy": a}


@dataclass(frozen=True)
class AccumulativeToolReward:
    """PyVision-RL's reward: R = acc + 1[correct] * per_turn * K.

    K = ``tool_calls``, the number of tool turns that ran successfully. The bonus is paid
    only when the answer is judged correct (``score.correct``; for "mra" that is MRA >= 0.5).
    There is no cap unless ``max_bonus_turns`` is set (the method relies on the turn limit).
    """

    per_turn: float = 0.1
    max_bonus_turns: int | None = None

    def __call__(self, score: ScoreResult, tool_calls: int) -> tuple[float, dict[str, float]]:
        if tool_calls < 0:
            raise ValueError(f"tool_calls must be >= 0, got {tool_calls}")
        a = float(score.accuracy)
        k = tool_calls if self.max_bonus_turns is None else min(tool_calls, self.max_bonus_turns)
        bonus = self.per_turn * k if score.correct else 0.0
        return a + bonus, {"accuracy": a, "tool_bonus": bonus}


_REWARDS: dict[str, Callable[..., RewardFn]] = {
    "accuracy": AccuracyReward,
    "acc": AccuracyReward,
    "accumulative": AccumulativeToolReward,
    "accumulative_tool": AccumulativeToolReward,
}


def make_reward(name_or_fn: str | RewardFn | type, **kw: Any) -> RewardFn:
    """Resolve a reward: "accuracy", "accumulative" (keyword args go to the class), a
    RewardFn class (instantiated with ``kw``) or any callable (returned as is)."""
    if isinstance(name_or_fn, str):
        key = name_or_fn.strip().lower()
        if key not in _REWARDS:
            raise ValueError(f"unknown reward {name_or_fn!r}; expected one of {sorted(_REWARDS)}")
        return _REWARDS[key](**kw)
    if isinstance(name_or_fn, type):
        return name_or_fn(**kw)
    if callable(name_or_fn):
        if kw:
            raise TypeError("keyword arguments are only accepted with a reward name or class")
        return name_or_fn
    raise TypeError(f"expected a reward name or callable, got {type(name_or_fn).__name__}")
