"""Tests of the procedurally generated image task families (``envs/image/``), driven from the registry.

The expert programs are executed here with plain ``exec`` in one shared namespace per task
(the real sandbox is tested elsewhere); their source is also compiled with RestrictedPython
and scanned for imports and attributes the runtime refuses.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from expert_checks import is_correct, policy_problems, restricted_compile, run_expert
from PIL import Image

from pyvision_gym.envs.base import Task, TaskFamily
from pyvision_gym.envs.common import LETTERS
from pyvision_gym.envs.registry import FAMILIES as REGISTRY
from pyvision_gym.envs.registry import families_for, family_env_id

IMAGE_FAMILIES = families_for("image")
FAMILIES = list(IMAGE_FAMILIES)
# Each family's third seed word: pinned, since it fixes every task of the frozen suites.
SALTS = {
    "visual_search_attribute": 101, "visual_search_relative_position": 102, "counting": 103,
    "chart_reading": 104, "text_reading": 105, "measurement": 106, "spatial_relation": 107,
    "real_photo_search": 108,
}  # fmt: skip
EXPERT_TURNS = 2  # every image expert: look, then decide
SPEC_SECTIONS = ("## Description", "## Question", "## Answer type", "## Difficulty", "## Expert", "## Registered id")
DIFFICULTIES = (0, 1, 2)
SEARCH_FAMILIES = ("visual_search_attribute", "visual_search_relative_position")
LARGE_CANVAS_FAMILIES = (*SEARCH_FAMILIES, "text_reading", "real_photo_search")
ANSWER_TYPES = {"choice", "string", "number", "mra"}
EXPERT_SEEDS = range(100)

# What expert code may import (the brief's allowlist) and attribute names the runtime blocks.
CACHE_DIR = Path("/nonexistent-pyvision-gym-cache")  # image families never touch it


def run_task_expert(task: Task, turns: list[str]) -> str:
    return run_expert({"image": task.images["image"]}, turns)


def solve(job: tuple[str, int, int]) -> tuple[str, int, int, bool, str, str]:
    """Generate one task and run its expert (module level so a process pool can call it)."""
    name, difficulty, seed = job
    family = IMAGE_FAMILIES[name]
    task = family.generate(seed, difficulty, CACHE_DIR)
    turns = family.expert(task)
    try:
        for turn in turns:
            restricted_compile(turn)
        prediction = run_task_expert(task, turns)
    except Exception as exc:  # noqa: BLE001 - reported as a failure with its message
        prediction = f"{type(exc).__name__}: {exc}"
    return name, difficulty, seed, is_correct(task, prediction), prediction, task.answer


# --------------------------------------------------------------------------------------------
# fast checks
# --------------------------------------------------------------------------------------------
def test_registry() -> None:
    assert len(IMAGE_FAMILIES) >= 7
    assert {name: family.salt for name, family in IMAGE_FAMILIES.items()} == SALTS
    for name, family in IMAGE_FAMILIES.items():
        assert isinstance(family, TaskFamily)
        assert family.name == name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert family.modality == "image"
        assert family.description and "\n" not in family.description
        assert tuple(family.difficulties) == DIFFICULTIES
        # one family per file: envs/image/<name>.py, as the registry says
        assert REGISTRY["image"][name] == f"{type(family).__module__}:{type(family).__name__}"
        assert type(family).__module__ == f"pyvision_gym.envs.image.{name}"


@pytest.mark.parametrize("name", FAMILIES)
def test_docstring_is_a_spec_sheet(name: str) -> None:
    """Every section in order, and the family's registered gym id."""
    doc = type(IMAGE_FAMILIES[name]).__doc__ or ""
    positions = [doc.find(section) for section in SPEC_SECTIONS]
    assert -1 not in positions and positions == sorted(positions), (name, positions)
    assert f"``{family_env_id('image', name)}``" in doc
    for difficulty in DIFFICULTIES:
        assert f"- {difficulty}:" in doc.split("## Difficulty")[1].split("## Expert")[0]


def pixels(task: Task) -> bytes:
    return task.images["image"].tobytes()


@pytest.mark.parametrize("name", FAMILIES)
def test_deterministic(name: str) -> None:
    family = IMAGE_FAMILIES[name]
    for difficulty in (0, 2):
        a = family.generate(11, difficulty, CACHE_DIR)
        b = family.generate(11, difficulty, CACHE_DIR)
        assert (a.question, a.answer, a.options, a.task_id) == (b.question, b.answer, b.options, b.task_id)
        assert a.images["image"].size == b.images["image"].size
        assert pixels(a) == pixels(b)
        assert family.expert(a) == family.expert(b)
        c = family.generate(12, difficulty, CACHE_DIR)
        assert a.task_id != c.task_id
        assert a.images["image"].size != c.images["image"].size or pixels(a) != pixels(c)


def check_fields(task: Task, name: str, difficulty: int, seed: int) -> None:
    assert task.task_id == f"{name}-d{difficulty}-s{seed}"
    assert (task.family, task.modality, task.difficulty, task.seed) == (name, "image", difficulty, seed)
    assert task.answer_type in ANSWER_TYPES and task.question.strip()
    image = task.images["image"]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    if task.answer_type == "choice":  # the options are in the question and contain the answer
        assert task.options and len(set(task.options)) == len(task.options) >= 2
        assert task.answer in LETTERS[: len(task.options)]
        for letter, option in zip(LETTERS, task.options, strict=False):
            assert f"({letter}) {option}" in task.question
    else:
        assert task.options is None
    if task.answer_type in ("number", "mra"):
        assert math.isfinite(float(task.answer)) and task.tolerance >= 0
    if task.answer_type == "string":
        assert re.sub(r"[^A-Z0-9]", "", task.answer.upper())


def check_large_canvas(task: Task, name: str) -> None:
    """2K-8K wide canvas whose target shrinks to at most ~6 px when shown 1000 px wide."""
    width = task.images["image"].width
    assert 2000 <= width <= 8000
    scale = 1000 / width
    meta = task.metadata
    if name == "text_reading" or meta.get("ask") == "code":
        assert meta["cap_height"] * scale <= 6, (task.task_id, meta["cap_height"], width)
    else:
        x0, y0, x1, y1 = meta["target_bbox"]
        assert max(x1 - x0, y1 - y0) * scale <= 6, (task.task_id, meta["target_bbox"], width)
    if name in SEARCH_FAMILIES:  # every tiny object is far smaller than the 40+ px clutter shapes
        for obj in meta["tiny_objects"]:
            x0, y0, x1, y1 = obj["bbox"]
            assert max(x1 - x0, y1 - y0) <= 16


def check_expert_source(task: Task, turns: list[str]) -> None:
    assert len(turns) == EXPERT_TURNS  # pinned: the demo leaderboard's expert turn counts
    for turn in turns:
        restricted_compile(turn)  # raises SyntaxError on underscore names and the like
        assert policy_problems(turn) == [], (task.task_id, policy_problems(turn))
        assert "task.answer" not in turn and "metadata" not in turn
    assert "print(" in turns[-1]


@pytest.mark.parametrize("name", FAMILIES)
def test_generated_tasks_are_well_formed(name: str) -> None:
    """Fields, options, canvas sizes and the expert's source, on a few seeds per difficulty."""
    family = IMAGE_FAMILIES[name]
    widths: dict[int, list[int]] = {d: [] for d in DIFFICULTIES}
    for difficulty in DIFFICULTIES:
        for seed in range(5):
            task = family.generate(seed, difficulty, CACHE_DIR)
            check_fields(task, name, difficulty, seed)
            check_expert_source(task, family.expert(task))
            widths[difficulty].append(task.images["image"].width)
            if name in LARGE_CANVAS_FAMILIES:
                check_large_canvas(task, name)
    if name in LARGE_CANVAS_FAMILIES:  # difficulty makes the canvas bigger
        assert np.mean(widths[0]) < np.mean(widths[1]) < np.mean(widths[2])


def test_search_target_is_tiny_when_downscaled() -> None:
    """Shown 1000 px wide, the tiny target covers only a handful of pixels."""
    for name in SEARCH_FAMILIES:
        task = IMAGE_FAMILIES[name].generate(3, 2, CACHE_DIR)
        image = task.images["image"]
        assert image.width > 5000
        x0, y0, x1, y1 = task.metadata["target_bbox"]
        scale = 1000 / image.width
        assert (x1 - x0) * scale * (y1 - y0) * scale < 10  # fewer than ten downscaled pixels


def test_expert_never_reads_the_answer() -> None:
    """Experts see only the question and options: blanking the answer and metadata changes nothing."""
    for name, family in IMAGE_FAMILIES.items():
        task = family.generate(5, 1, CACHE_DIR)
        turns = family.expert(task)
        blind = Task(**{**task.__dict__, "answer": "", "metadata": {}})
        assert family.expert(blind) == turns, name


# --------------------------------------------------------------------------------------------
# the experts solve (almost) every task
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def expert_results() -> dict[tuple[str, int], list[tuple[int, bool, str, str]]]:
    jobs = [(name, d, seed) for seed in EXPERT_SEEDS for d in DIFFICULTIES for name in FAMILIES]
    workers = max(1, min(4, os.cpu_count() or 1))
    if workers == 1:
        outcomes = [solve(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            outcomes = list(pool.map(solve, jobs, chunksize=8))
    results: dict[tuple[str, int], list[tuple[int, bool, str, str]]] = {}
    for name, d, seed, ok, prediction, answer in outcomes:
        results.setdefault((name, d), []).append((seed, ok, prediction, answer))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("name", FAMILIES)
def test_expert_solves_at_least_99_percent(name: str, difficulty: int, expert_results: dict) -> None:
    runs = expert_results[(name, difficulty)]
    assert len(runs) == len(EXPERT_SEEDS)
    failures = [(seed, prediction, answer) for seed, ok, prediction, answer in runs if not ok]
    assert len(failures) <= 0.01 * len(runs), failures[:5]
