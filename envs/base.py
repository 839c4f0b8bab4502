"""What every task family provides: a seeded generator, a difficulty knob and an expert program."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from PIL import Image

AnswerType = Literal["choice", "string", "number", "mra", "math"]


@dataclass
class Task:
    """One generated task. Everything the environment, the scorer and the viewer need."""

    task_id: str
    family: str
    modality: Literal["image", "video"]
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
    seed and difficulty give the same question, answer and pixels. ``expert(task)`` returns
    the code turns of a scripted program that solves the task from the pixels through the
    runtime (it may read the question, never ``task.answer``); its last turn prints the
    answer as its last output line.
    """

    name: str
    modality: Literal["image", "video"]
    description: str = ""
    difficulties: tuple[int, ...] = (0, 1, 2)

    @abc.abstractmethod
    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task: ...

    @abc.abstractmethod
    def expert(self, task: Task) -> list[str]: ...
