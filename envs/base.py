"""What every task family shares: the ``Task`` record, seeding, task assembly and the retry loop.

A family is one file under ``envs/image/`` or ``envs/video/`` with one subclass of
:class:`TaskFamily`; it overrides ``generate`` (draw a task from its generator) and ``expert``
(the scripted program that solves it). Families are registered by ``"module:Class"`` strings in
``envs/registry.py``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
from PIL import Image

AnswerType = Literal["choice", "string", "number", "mra", "math"]
Modality = Literal["image", "video"]
T = TypeVar("T")


@dataclass
class Task:
    """One generated task. Everything the environment, the scorer and the viewer need."""

    task_id: str
    family: str
    modality: Modality
    question: str
    answer: str
    answer_type: AnswerType
    options: list[str] | None = None
    tolerance: float = 0.0
    images: dict[str, Image.Image] = field(default_factory=dict)
    video_path: str | None = None
    difficulty: int = 0
    seed: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)


class TaskFamily(abc.ABC):
    """A procedurally generated family of tasks.

    ``generate(seed, difficulty, cache_dir)`` is a pure function of its arguments: the same
    seed and difficulty give the same question, answer and pixels (``rng`` draws from
    ``numpy.random.default_rng([seed, difficulty, salt])``). ``expert(task)`` returns the code
    turns of a scripted program that solves the task from the pixels through the runtime (it
    may read the question, never ``task.answer``); its last turn prints the answer as its last
    output line.
    """

    name: str
    modality: Modality
    salt: int  # third seed word: keeps families' generators apart (fixed: it pins the suites)
    description: str = ""
    difficulties: tuple[int, ...] = (0, 1, 2)

    tries: int = 1  # attempts ``generate`` gives ``build`` (the retry loop), each freshly seeded

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        """The task for ``seed`` and ``difficulty``: :meth:`build` with the task's generator, then
        with fresh seeded ones while it returns None (at most ``tries`` attempts). Families
        override ``build`` (MiniGrid's one generation hook) or, when no retry is needed, this."""
        return self.retry(seed, difficulty, lambda rng: self.build(rng, seed, difficulty, cache_dir), self.tries)

    def build(self, rng: np.random.Generator, seed: int, difficulty: int, cache_dir: Path) -> Task | None:
        """One attempt at a task drawn from ``rng``; None when the draw is unusable."""
        raise NotImplementedError(f"{type(self).__name__} overrides neither generate() nor build()")

    @abc.abstractmethod
    def expert(self, task: Task) -> list[str]: ...

    # -- seeding ---------------------------------------------------------------------------
    def check_difficulty(self, difficulty: int) -> None:
        if difficulty not in self.difficulties:
            raise ValueError(f"difficulty must be one of {self.difficulties}, got {difficulty}")

    def rng(self, seed: int, difficulty: int, attempt: int = 0) -> np.random.Generator:
        """The task's generator; ``attempt`` > 0 gives the retry loop a fresh, still seeded one."""
        self.check_difficulty(difficulty)
        words = [seed, difficulty, self.salt] + ([attempt] if attempt else [])
        return np.random.default_rng(words)

    def retry(self, seed: int, difficulty: int, build: Callable[[np.random.Generator], T | None],
              tries: int) -> T:
        """``build(rng)`` with the attempt-0 generator, then fresh ones, until it returns a value."""
        for rng in self._attempts(seed, difficulty, tries):
            made = build(rng)
            if made is not None:
                return made
        raise RuntimeError(f"{self.name}: no valid task for seed {seed}, difficulty {difficulty} "
                           f"after {tries} attempts")

    def _attempts(self, seed: int, difficulty: int, tries: int) -> Iterator[np.random.Generator]:
        for attempt in range(tries):
            yield self.rng(seed, difficulty, attempt)

    # -- task assembly ---------------------------------------------------------------------
    def task_id(self, seed: int, difficulty: int) -> str:
        return f"{self.name}-d{difficulty}-s{seed}"

    def make_task(self, seed: int, difficulty: int, *, question: str, answer: str,
                  answer_type: AnswerType, options: list[str] | None = None,
                  tolerance: float = 0.0, images: dict[str, Image.Image] | None = None,
                  video_path: str | None = None, metadata: dict[str, Any] | None = None) -> Task:
        """The ``Task`` record with this family's id, name and modality filled in."""
        return Task(
            task_id=self.task_id(seed, difficulty), family=self.name, modality=self.modality,
            question=question, answer=answer, answer_type=answer_type, options=options,
            tolerance=tolerance, images=images or {}, video_path=video_path,
            difficulty=difficulty, seed=seed, metadata=metadata or {},
        )
