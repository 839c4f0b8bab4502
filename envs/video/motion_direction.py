"""``motion_direction``: which way does a shape move, or which moves fastest (multiple choice)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Task, TaskFamily
from ..common import choice_options, options_text
from ..experts import expert_turns
from .rendering import (
    FRAME_H,
    FRAME_W,
    VIDEO_COLOURS,
    VIDEO_SHAPES,
    Item,
    background,
    bounce_path,
    even,
    item,
    pick_timing,
    render_items,
    video_task,
)

# Compass directions in frame terms (up = towards the top of the frame), angle in degrees
# counter-clockwise from "right".
DIRECTIONS: tuple[str, ...] = (
    "right",
    "up-right",
    "up",
    "up-left",
    "left",
    "down-left",
    "down",
    "down-right",
)
# (start frame, end frame, heading index or -1 for a pause, start point, end point)
Segment = tuple[int, int, int, np.ndarray, np.ndarray]
# (question, options, answer letter, per-frame items, metadata)
Query = tuple[str, list[str], str, Callable[[int], list[Item]], dict[str, Any]]


class MotionDirection(TaskFamily):
    """Which way does a shape move, or which shape moves fastest?

    **Description.** Subtype ``direction``: shapes glide along straight lines whose heading is
    one of 8 compass directions (±7°); at difficulty 2 each path is a chain of straight
    segments with different headings. Subtype ``faster``: two or three shapes bounce around at
    constant speeds; one is 1.5-2.5× faster than a base speed, the others 0.7-1.0×.

    **Question.** "In which direction does the red circle move (between t = 12 s and
    t = 20 s)?" over four compass names (neighbouring headings preferred as distractors), or
    "Which of the two shapes moves faster?" over the shapes.

    **Answer type.** ``choice``: the option's letter.

    **Difficulty.** Length 6-14 s / 32-58 s / 122-220 s. ``direction``: 1, 2-3 or 2-3 shapes,
    at 2 asked about a time window inside one segment. ``faster``: 2, 2 or 3 shapes.

    **Expert.** ``direction``: the shape's centre in five frames over the asked window, the
    angle of the displacement, nearest option. ``faster``: positions one second apart at two
    dozen random moments, the 75th percentile of each shape's steps. Two turns.

    **Registered id.** ``PyVisionVideo-MotionDirection-v0``.
    """

    name = "motion_direction"
    modality = "video"
    salt = 105
    tries = 50
    description = (
        "Direction of motion of a shape (8 compass directions) or which shape moves fastest."
    )

    def build(
        self, rng: np.random.Generator, seed: int, difficulty: int, cache_dir: Path
    ) -> Task | None:
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        kind = str(rng.choice(["direction", "faster"]))
        made = (_direction if kind == "direction" else _faster)(rng, difficulty, fps, n)
        if made is None:
            return None
        question, options, letter, items_at, meta = made
        return video_task(
            self, seed, difficulty, cache_dir, question=question, answer=letter,
            answer_type="choice", options=options, fps=fps, num_frames=n,
            frames=lambda: render_items(n, base, items_at), metadata={"subtype": kind, **meta},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        options = list(task.options or [])
        if not q.startswith("In which direction"):
            return expert_turns("video", "motion_faster", helpers=("blobs",), OPTIONS=options)
        colour, shape = q.split("does the ")[1].split(" move")[0].split(" ")
        t1 = t2 = None
        if " between t = " in q:
            t1 = float(q.split("between t = ")[1].split(" s")[0])
            t2 = float(q.split("and t = ")[1].split(" s")[0])
        return expert_turns(
            "video", "motion_direction", helpers=("blobs",),
            COLOUR=colour, SHAPE=shape, T1=t1, T2=t2, OPTIONS=options,
        )


def _box(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Where a ``size`` sprite's corner may go (4 px from the edges)."""
    return np.array([4.0, 4.0]), np.array([FRAME_W - size - 4.0, FRAME_H - size - 4.0])


def _leg(
    rng: np.random.Generator, p: np.ndarray, lo: np.ndarray, hi: np.ndarray,
    lengths: tuple[float, float],
) -> tuple[int, float, np.ndarray] | None:
    """A compass heading (±7° jitter) and length from ``p`` that stays in the box, or None."""
    j = int(rng.integers(8))
    ang = math.radians(45 * j + rng.uniform(-7, 7))
    u = np.array([math.cos(ang), -math.sin(ang)])
    length = rng.uniform(*lengths)
    end = p + length * u
    if (end >= lo).all() and (end <= hi).all():
        return j, length, end
    return None


def _segment_path(
    rng: np.random.Generator, n: int, size: int, speed: float
) -> tuple[np.ndarray, list[Segment]]:
    """Piecewise-straight path (compass headings, ±7° jitter) at ``speed`` px/frame."""
    lo, hi = _box(size)
    p = rng.uniform(lo, hi)
    pts = np.empty((n, 2))
    segs = []
    t = 0
    while t < n:
        for _try in range(100):
            leg = _leg(rng, p, lo, hi, (50, 170))
            if leg is not None:
                j, length, end = leg
                break
        else:
            j, end = -1, p + 0.0
            length = 0.0
        frames = max(2, int(round(length / speed))) if j >= 0 else 2
        for f in range(frames):
            if t + f < n:
                pts[t + f] = p + (end - p) * (f + 1) / frames
        segs.append((t, min(n, t + frames), j, p.copy(), end.copy()))
        t += frames
        p = end
    return pts, segs


def _straight_path(rng: np.random.Generator, n: int, size: int) -> tuple[np.ndarray, int] | None:
    """A 70-150 px straight glide over the whole video and its heading, or None."""
    lo, hi = _box(size)
    for _try in range(200):
        h = int(rng.integers(8))
        ang = math.radians(45 * h + rng.uniform(-7, 7))
        u = np.array([math.cos(ang), -math.sin(ang)])
        length = rng.uniform(70, 150)
        start = rng.uniform(lo, hi)
        end = start + length * u
        if (end >= lo).all() and (end <= hi).all():
            frac = np.linspace(0.0, 1.0, n)[:, None]
            return start + frac * (end - start), h
    return None


def _window(
    rng: np.random.Generator, fps: int, path: np.ndarray, segs: list[Segment]
) -> tuple[int, int, int] | None:
    """Whole seconds (t1, t2) inside one segment, ≥ 3 s and ≥ 30 px apart, and its heading."""
    cands = []
    for a, b, h, _p, _e in segs:
        if h < 0:
            continue
        s1, s2 = math.ceil(a / fps + 0.5), math.floor((b - 1) / fps - 0.5)
        if s2 - s1 >= 3:
            f1, f2 = int(round(s1 * fps)), int(round(s2 * fps))
            if np.linalg.norm(path[f2] - path[f1]) >= 30:
                cands.append((s1, s2, h))
    if not cands:
        return None
    return cands[int(rng.integers(len(cands)))]


def _direction(rng: np.random.Generator, difficulty: int, fps: int, n: int) -> Query | None:
    k = (1, int(rng.integers(2, 4)), int(rng.integers(2, 4)))[difficulty]
    colours = [str(c) for c in rng.choice(VIDEO_COLOURS, size=k, replace=False)]
    shapes = [str(rng.choice(VIDEO_SHAPES)) for _ in range(k)]
    sizes = [even(rng.uniform(16, 24)) for _ in range(k)]
    paths, headings = [], []
    for j in range(k):
        if difficulty < 2:
            straight = _straight_path(rng, n, sizes[j])
            if straight is None:
                return None
            paths.append(straight[0])
            headings.append(straight[1])
        else:
            pts, segs = _segment_path(rng, n, sizes[j], rng.uniform(10, 22) / fps)
            paths.append(pts)
            headings.append(segs)
    target = int(rng.integers(k))
    t1 = t2 = None
    if difficulty < 2:
        truth = DIRECTIONS[headings[target]]
        when = " during the video"
    else:
        window = _window(rng, fps, paths[target], headings[target])
        if window is None:
            return None
        t1, t2, h = window
        truth = DIRECTIONS[h]
        when = f" between t = {t1} s and t = {t2} s"
    hidx = DIRECTIONS.index(truth)
    prefer = [DIRECTIONS[(hidx + d) % 8] for d in (1, -1, 4, 2, -2)]
    options, letter = choice_options(rng, truth, DIRECTIONS, 4, prefer=prefer[: int(rng.integers(1, 4))])
    order = [j for j in range(k) if j != target] + [target]  # the asked-about shape on top

    def items_at(i: int) -> list[Item]:
        return [
            item(shapes[j], sizes[j], colours[j], even(paths[j][i][0]), even(paths[j][i][1]))
            for j in order
        ]

    others = " (other shapes move too)" if k > 1 else ""
    question = (
        f"In which direction does the {colours[target]} {shapes[target]} move{when}{others}? "
        f"Directions are as seen in the frame: up is towards the top edge. {options_text(options)}"
    )
    meta = {"color": colours[target], "shape": shapes[target], "t1": t1, "t2": t2, "direction": truth}
    return question, options, letter, items_at, meta


def _faster(rng: np.random.Generator, difficulty: int, fps: int, n: int) -> Query:
    k = (2, 2, 3)[difficulty]
    colours = [str(c) for c in rng.choice(VIDEO_COLOURS, size=k, replace=False)]
    shapes = [str(rng.choice(VIDEO_SHAPES)) for _ in range(k)]
    sizes = [even(rng.uniform(16, 24)) for _ in range(k)]
    slow = rng.uniform(15, 35)
    speeds = [slow * rng.uniform(1.5, 2.5)] + [slow * rng.uniform(0.7, 1.0) for _ in range(k - 1)]
    paths = [
        bounce_path(rng, n, speeds[j] / fps, (4, 4), (FRAME_W - sizes[j] - 4, FRAME_H - sizes[j] - 4))
        for j in range(k)
    ]
    names = [f"{colours[j]} {shapes[j]}" for j in range(k)]
    options, letter = choice_options(rng, names[0], names, k)

    def items_at(i: int) -> list[Item]:
        return [
            item(shapes[j], sizes[j], colours[j], even(paths[j][i][0]), even(paths[j][i][1]))
            for j in range(k)
        ]

    what = "Which of the two shapes moves faster" if k == 2 else "Which of the three shapes moves fastest"
    question = (
        f"Shapes move around the frame at constant speeds, bouncing off the edges. {what}? "
        f"{options_text(options)}"
    )
    return question, options, letter, items_at, {"speeds_px_s": [round(v, 2) for v in speeds]}
