"""Tests of the procedurally generated video task families (``envs/video/<family>.py``).

Families come from the registry (``pyvision_gym.envs.registry``). Videos are generated into
one session-scoped cache directory (each once per session) and read back through
:class:`pyvision_gym.sandbox.video.VideoHandle` (decord). The expert programs
(``envs/video/experts/*.py``) run with plain ``exec`` in one shared namespace per task holding
``video``; their source is also compiled with RestrictedPython and scanned for imports and
attributes the runtime refuses.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from expert_checks import is_correct, policy_problems, restricted_compile, run_expert

from pyvision_gym.envs.base import Task, TaskFamily
from pyvision_gym.envs.common import LETTERS
from pyvision_gym.envs.experts import ROOT, split_turns
from pyvision_gym.envs.registry import families_for, family_env_id
from pyvision_gym.envs.video.rendering import GENERATOR_VERSION
from pyvision_gym.sandbox.video import VideoHandle

VIDEO_FAMILIES = families_for("video")
FAMILIES = sorted(VIDEO_FAMILIES)
DIFFICULTIES = (0, 1, 2)
EXPERT_SEEDS = range(100)
ANSWER_TYPES = {"choice", "number", "mra", "string"}
# duration (seconds) allowed per difficulty: ≈5-15 s, 30-60 s, 2-4 min
DURATIONS = {0: (5.0, 15.0), 1: (30.0, 60.0), 2: (120.0, 240.0)}
# The third seed word of each family: fixed, it pins the frozen suites.
SALTS = {
    "event_onset": 101,
    "event_counting": 102,
    "state_at_time": 103,
    "appearance_order": 104,
    "motion_direction": 105,
    "object_counting_over_time": 106,
    "spatial_scene": 107,
}
SPEC_SECTIONS = ("Description.", "Question.", "Answer type.", "Difficulty.", "Expert.", "Registered id.")
EXPERT_FILES = sorted((ROOT / "video" / "experts").glob("*.py"))


def run_task_expert(task: Task, turns: list[str]) -> str:
    return run_expert({"video": VideoHandle(task.video_path)}, turns)


def solve(job: tuple[str, int, int, str]) -> tuple:
    """Generate one task, check its video's length and run its expert (module level so a
    process pool can call it). Returns (name, difficulty, seed, solved, prediction, answer,
    duration_ok, generate_s, expert_s)."""
    name, difficulty, seed, cache = job
    family = VIDEO_FAMILIES[name]
    start = time.perf_counter()
    task = family.generate(seed, difficulty, Path(cache))
    generated = time.perf_counter()
    try:
        prediction = run_task_expert(task, family.expert(task))
    except Exception as exc:  # noqa: BLE001 - reported as a failure with its message
        prediction = f"{type(exc).__name__}: {exc}"
    solved = time.perf_counter()
    video = VideoHandle(task.video_path)
    lo, hi = DURATIONS[difficulty]
    length_ok = (
        len(video) == task.metadata["num_frames"]
        and video.fps == task.metadata["fps"]
        and lo <= video.duration <= hi
    )
    ok = is_correct(task, prediction)
    return (
        name,
        difficulty,
        seed,
        ok,
        prediction,
        task.answer,
        length_ok,
        generated - start,
        solved - generated,
    )


@pytest.fixture(scope="session")
def video_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache for the whole session: every video is generated once."""
    return tmp_path_factory.mktemp("video_cache")


# --------------------------------------------------------------------------------------------
# fast checks
# --------------------------------------------------------------------------------------------
def test_registry() -> None:
    assert len(VIDEO_FAMILIES) >= 7
    for name, family in VIDEO_FAMILIES.items():
        assert isinstance(family, TaskFamily)
        assert family.name == name and re.fullmatch(r"[a-z][a-z0-9_]*", name)
        assert family.modality == "video"
        assert family.description and "\n" not in family.description
        assert tuple(family.difficulties) == DIFFICULTIES
        assert family.salt == SALTS[name]
        assert type(family).__module__ == f"pyvision_gym.envs.video.{name}"


@pytest.mark.parametrize("name", FAMILIES)
def test_docstring_is_a_spec_sheet(name: str) -> None:
    """Each family's docstring names its description, question, answer, difficulty, expert, id."""
    doc = type(VIDEO_FAMILIES[name]).__doc__ or ""
    for section in SPEC_SECTIONS:
        assert f"**{section}**" in doc, (name, section)
    assert f"``{family_env_id('video', name)}``" in doc


@pytest.mark.parametrize("path", EXPERT_FILES, ids=lambda p: p.name)
def test_expert_files_pass_the_runtime_policy(path: Path) -> None:
    """Every expert program file, turn by turn, compiles under the runtime's own policy."""
    turns = split_turns(path.read_text(encoding="utf-8"))
    assert 1 <= len(turns) <= 3
    for turn in turns:
        restricted_compile(turn)
        assert policy_problems(turn) == [], (path.name, policy_problems(turn))


@pytest.mark.parametrize("name", FAMILIES)
def test_deterministic(name: str, tmp_path: Path, video_cache: Path) -> None:
    """Same seed: same task and byte-identical mp4 (even in another cache); other seeds differ."""
    family = VIDEO_FAMILIES[name]
    for difficulty in (0, 1):
        a = family.generate(11, difficulty, video_cache)
        b = family.generate(11, difficulty, tmp_path / "elsewhere")
        assert (a.question, a.answer, a.options, a.task_id, a.metadata) == (
            b.question,
            b.answer,
            b.options,
            b.task_id,
            b.metadata,
        )
        assert a.video_path != b.video_path
        assert Path(a.video_path).read_bytes() == Path(b.video_path).read_bytes()
        assert family.expert(a) == family.expert(b)
        c = family.generate(12, difficulty, video_cache)
        assert c.task_id != a.task_id and c.video_path != a.video_path
        assert (
            c.question != a.question
            or Path(c.video_path).read_bytes() != Path(a.video_path).read_bytes()
        )


def test_cache_reuse(tmp_path: Path) -> None:
    """A cached file is reused (not rewritten) and no temporary files are left behind."""
    family = VIDEO_FAMILIES["state_at_time"]
    a = family.generate(3, 0, tmp_path)
    path = Path(a.video_path)
    assert path.is_relative_to(tmp_path) and f"-g{GENERATOR_VERSION}-d0-s3-" in path.name
    stamp = path.stat().st_mtime_ns
    b = family.generate(3, 0, tmp_path)
    assert b.video_path == a.video_path and path.stat().st_mtime_ns == stamp
    leftovers = [p for p in path.parent.iterdir() if p.suffix != ".mp4"]
    assert leftovers == []


def check_fields(task: Task, name: str, difficulty: int, seed: int) -> None:
    assert task.task_id == f"{name}-d{difficulty}-s{seed}"
    assert (task.family, task.modality, task.difficulty, task.seed) == (
        name,
        "video",
        difficulty,
        seed,
    )
    assert task.images == {} and task.video_path and task.question.strip()
    assert task.answer_type in ANSWER_TYPES
    if task.answer_type == "choice":  # the options are in the question and contain the answer
        assert task.options and len(set(task.options)) == len(task.options) >= 2
        assert task.answer in LETTERS[: len(task.options)]
        for letter, option in zip(LETTERS, task.options, strict=False):
            assert f"({letter}) {option}" in task.question
    else:
        assert task.options is None
    if task.answer_type == "number":
        assert float(task.answer) == int(task.answer) and task.tolerance == 0
    if task.answer_type == "mra":
        assert math.isfinite(float(task.answer)) and float(task.answer) > 0


def check_video(task: Task, difficulty: int) -> None:
    """A real mp4 that decord reads, with the frame count, fps and size in the metadata."""
    path = Path(task.video_path)
    head = path.read_bytes()[:12]
    assert head[4:8] == b"ftyp", "not an mp4 container"
    video = VideoHandle(str(path))
    meta = task.metadata
    assert len(video) == meta["num_frames"]
    assert video.fps == pytest.approx(meta["fps"])
    assert video.frame_size == (meta["width"], meta["height"])
    assert video.duration == pytest.approx(meta["duration"])
    lo, hi = DURATIONS[difficulty]
    assert lo <= meta["duration"] <= hi, (task.task_id, meta["duration"])
    frame = video[len(video) // 2]
    assert frame.shape == (meta["height"], meta["width"], 3) and frame.dtype.name == "uint8"
    assert video.get_batch([0, len(video) - 1]).shape[0] == 2


def check_expert_source(task: Task, turns: list[str]) -> None:
    assert 1 <= len(turns) <= 4
    for turn in turns:
        restricted_compile(turn)  # raises SyntaxError on underscore names and the like
        assert policy_problems(turn) == [], (task.task_id, policy_problems(turn))
        assert "task." not in turn and "metadata" not in turn
    assert "print(" in turns[-1]


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("name", FAMILIES)
def test_generated_tasks_are_well_formed(name: str, difficulty: int, video_cache: Path) -> None:
    """Fields, options, the video itself and the expert's source, on a few seeds."""
    family = VIDEO_FAMILIES[name]
    for seed in range(3):
        task = family.generate(seed, difficulty, video_cache)
        check_fields(task, name, difficulty, seed)
        check_video(task, difficulty)
        check_expert_source(task, family.expert(task))


def test_expert_never_reads_the_answer(video_cache: Path) -> None:
    """Experts see only the question and options: blanking the answer and metadata changes nothing."""
    for name, family in VIDEO_FAMILIES.items():
        for difficulty in DIFFICULTIES:
            task = family.generate(5, difficulty, video_cache)
            turns = family.expert(task)
            blind = Task(**{**task.__dict__, "answer": "", "metadata": {}})
            assert family.expert(blind) == turns, name


def test_invalid_difficulty(tmp_path: Path) -> None:
    for family in VIDEO_FAMILIES.values():
        with pytest.raises(ValueError):
            family.generate(0, 3, tmp_path)


# --------------------------------------------------------------------------------------------
# the experts solve (almost) every task
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def expert_results(video_cache: Path) -> dict[tuple[str, int], list[tuple]]:
    jobs = [
        (name, d, seed, str(video_cache))
        for seed in EXPERT_SEEDS
        for d in DIFFICULTIES
        for name in FAMILIES
    ]
    workers = max(1, min(4, os.cpu_count() or 1))
    if workers == 1:
        outcomes = [solve(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            outcomes = list(pool.map(solve, jobs, chunksize=4))
    results: dict[tuple[str, int], list[tuple]] = {}
    for name, d, seed, ok, prediction, answer, length_ok, gen_s, expert_s in outcomes:
        results.setdefault((name, d), []).append(
            (seed, ok, prediction, answer, length_ok, gen_s, expert_s)
        )
    return results


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("name", FAMILIES)
def test_expert_solves_at_least_99_percent(
    name: str, difficulty: int, expert_results: dict
) -> None:
    runs = expert_results[(name, difficulty)]
    assert len(runs) == len(EXPERT_SEEDS)
    failures = [
        (seed, prediction, answer) for seed, ok, prediction, answer, *_rest in runs if not ok
    ]
    assert len(failures) <= 0.01 * len(runs), failures[:5]


@pytest.mark.slow
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("name", FAMILIES)
def test_every_video_has_the_stated_length(
    name: str, difficulty: int, expert_results: dict
) -> None:
    """Over all expert seeds: decord's frame count and fps match, duration in the range."""
    runs = expert_results[(name, difficulty)]
    bad = [seed for seed, _ok, _p, _a, length_ok, *_times in runs if not length_ok]
    assert bad == []
