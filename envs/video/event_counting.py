"""``event_counting``: how many times does an event happen (exact integer)."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Task, TaskFamily
from ..experts import expert_turns
from .rendering import (
    FRAME_H,
    FRAME_W,
    VIDEO_COLOURS,
    WHITE,
    Item,
    background,
    even,
    item,
    paste,
    pick_timing,
    render_items,
    shape_mask,
    video_task,
)

LAMP_OFF = (105, 105, 105)
LAMP_RING = (175, 175, 175)
LAMP = 28  # lamp diameter (px)
BALL = 14  # ball diameter (px)
LINE_X = FRAME_W // 2 - 1  # the white line covers columns LINE_X, LINE_X + 1
LANES = [16 + 24 * k for k in range(8)]  # the rows balls roll along
# (what the question says, the count, per-frame items, metadata)
Count = tuple[str, int, Callable[[int], list[Item]], dict[str, Any]]
Ball = tuple[str, int, np.ndarray]  # colour, lane y, per-frame x (nan = hidden)


class EventCounting(TaskFamily):
    """How many times does an event happen over the video? Answer an exact integer.

    **Description.** Subtype ``flash``: one or more lamps (grey discs in a row) light up in
    their own colour from time to time, dark at both ends of the video. Subtype ``cross``:
    balls roll horizontally along lanes over a vertical white line.

    **Question.** "How many times does the lamp that lights up red flash?" / "How many (blue)
    balls cross the white line during the video?"

    **Answer type.** ``number``: an integer, exact match (tolerance 0).

    **Difficulty.** Length 6-14 s / 32-58 s / 122-220 s. ``flash``: 1, 2-3 or 3-4 lamps with
    2-6, 4-12 or 8-25 flashes each. ``cross``: 2-6, 3-9 or 5-15 crossings of one colour; at 1
    and 2 also 2-5 or 3-7 balls of other colours; at 2 balls come from both sides and 1-4 of
    the asked colour turn back before the line.

    **Expert.** Two turns: locate the lamps (or the line) in frame 0, then read every frame in
    chunks through a small patch per lamp (or a strip around the line) and count on-runs (or
    blobs in the time × row image).

    **Registered id.** ``PyVisionVideo-EventCounting-v0``.
    """

    name = "event_counting"
    modality = "video"
    salt = 102
    description = (
        "Count events over time: flashes of one lamp, or balls crossing a line (exact integer)."
    )

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        kind = str(rng.choice(["flash", "cross"]))
        if kind == "flash":
            question, count, items_at, meta = _flash(rng, difficulty, fps, n, base)
        else:
            question, count, items_at, meta = _cross(rng, difficulty, n, base)
        return video_task(
            self, seed, difficulty, cache_dir, question=question, answer=str(count),
            answer_type="number", fps=fps, num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"subtype": kind, "count": count, **meta},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "lamp" in q:
            colour = q.split("the lamp that lights up ")[1].split(" ")[0]
            return expert_turns("video", "count_flashes", helpers=("blobs",), COLOUR=colour)
        colour = q.split("How many ")[1].split(" ")[0]
        return expert_turns(
            "video", "count_crossings", helpers=("blobs",),
            COLOUR=None if colour == "balls" else colour,
        )


# -- subtype "flash" --------------------------------------------------------------------------
def _schedule(rng: np.random.Generator, n: int, fps: int, m: int, on_max_s: float) -> np.ndarray:
    """Per-frame on/off mask with exactly ``m`` flashes, dark at both ends."""
    on_min = max(2, math.ceil(0.4 * fps))
    gap_min = max(2, math.ceil(0.4 * fps))
    on_max = max(on_min, int(on_max_s * fps))
    ons = rng.integers(on_min, on_max + 1, size=m)
    spare = n - int(ons.sum()) - (m + 1) * gap_min
    if spare < 0:
        raise ValueError("too many flashes for this video")
    extra = rng.multinomial(spare, rng.dirichlet(np.ones(m + 1)))
    gaps = gap_min + extra
    mask = np.zeros(n, dtype=bool)
    t = 0
    for j in range(m):
        t += int(gaps[j])
        mask[t : t + int(ons[j])] = True
        t += int(ons[j])
    return mask


def _flash(rng: np.random.Generator, difficulty: int, fps: int, n: int, base: np.ndarray) -> Count:
    num_lamps = (1, int(rng.integers(2, 4)), int(rng.integers(3, 5)))[difficulty]
    colours = [str(c) for c in rng.choice(VIDEO_COLOURS, size=num_lamps, replace=False)]
    slot = (FRAME_W - 40) // num_lamps
    cy = even(rng.uniform(50, FRAME_H - 50))
    xs = [even(20 + slot * j + slot / 2 - LAMP / 2 + rng.uniform(-6, 6)) for j in range(num_lamps)]
    lo, hi = {0: (2, 6), 1: (4, 12), 2: (8, 25)}[difficulty]
    on_max_s = (1.0, 2.5, 3.0)[difficulty]
    step = max(2, math.ceil(0.4 * fps))
    cap = (n - step) // (max(step, int(on_max_s * fps)) + step)
    lo, hi = min(lo, cap), min(hi, cap)
    schedules = []
    counts = []
    for _j in range(num_lamps):
        m = int(rng.integers(lo, hi + 1))
        counts.append(m)
        schedules.append(_schedule(rng, n, fps, m, on_max_s))
    for x in xs:
        paste(base, shape_mask("circle", LAMP, LAMP), LAMP_OFF, x, cy)
        paste(base, shape_mask("ring", LAMP + 6, LAMP + 6), LAMP_RING, x - 3, cy - 3)
    target = int(rng.integers(num_lamps))

    def items_at(i: int) -> list[Item]:
        return [item("circle", LAMP, colours[j], xs[j], cy) for j in range(num_lamps) if schedules[j][i]]

    colour = colours[target]
    if num_lamps == 1:
        intro = "A lamp (a grey disc) lights up from time to time."
    else:
        intro = f"There are {num_lamps} lamps (grey discs); each lights up in its own colour from time to time."
    question = (
        f"{intro} How many times does the lamp that lights up {colour} flash (turn {colour} and then "
        f"dark again) during the video? Answer with an integer."
    )
    meta = {"color": colour, "lamp_colors": colours, "lamp_counts": counts}
    return question, counts[target], items_at, meta


# -- subtype "cross" --------------------------------------------------------------------------
def _roll(
    rng: np.random.Generator, kind: str, colour: str, both_ways: bool, n: int,
    busy: dict[int, list[tuple[int, int]]],
) -> Ball | None:
    """One try at scheduling a ball of ``kind`` (cross / turn / distract) in a free lane slot."""
    speed = float(rng.uniform(5.0, 11.0))
    direction = 1 if (not both_ways or rng.random() < 0.5) else -1
    x_start = -BALL if direction == 1 else FRAME_W
    if kind == "turn":
        # turns back at least 22 px before the strip around the line
        reach = rng.uniform(30, LINE_X - 8 - 22 - BALL)
        travel = np.concatenate(
            [np.arange(0, reach, speed), reach - np.arange(0, reach + BALL + speed, speed)]
        )
    else:
        travel = np.arange(0, FRAME_W + BALL + speed, speed)
    dur = len(travel)
    if dur + 2 > n:
        return None
    t0 = int(rng.integers(0, n - dur))
    y = int(rng.choice(LANES))
    if any(not (t0 + dur + 2 <= a or b + 2 <= t0) for a, b in busy[y]):
        return None
    busy[y].append((t0, t0 + dur))
    xs = np.full(n, np.nan)
    xs[t0 : t0 + dur] = x_start + direction * travel
    if kind in ("cross", "turn"):
        return colour, y, xs
    return str(rng.choice([c for c in VIDEO_COLOURS if c != colour])), y, xs


def _cross(rng: np.random.Generator, difficulty: int, n: int, base: np.ndarray) -> Count:
    base[:, LINE_X : LINE_X + 2] = WHITE
    colour = str(rng.choice(VIDEO_COLOURS))
    lo, hi = {0: (2, 6), 1: (3, 9), 2: (5, 15)}[difficulty]
    want = int(rng.integers(lo, hi + 1))
    n_distract = (0, int(rng.integers(2, 6)), int(rng.integers(3, 8)))[difficulty]
    n_turn = (0, 0, int(rng.integers(1, 5)))[difficulty]
    both_ways = difficulty == 2
    kinds = ["cross"] * want + ["distract"] * n_distract + ["turn"] * n_turn
    rng.shuffle(kinds)
    busy: dict[int, list[tuple[int, int]]] = {y: [] for y in LANES}
    balls: list[Ball] = []
    crossed = 0
    for kind in kinds:
        for _attempt in range(60):
            ball = _roll(rng, kind, colour, both_ways, n, busy)
            if ball is not None:
                balls.append(ball)
                crossed += kind == "cross"
                break
    if crossed == 0:
        raise RuntimeError("event_counting: could not place any crossing ball")

    def items_at(i: int) -> list[Item]:
        return [
            item("circle", BALL, bc, even(xs[i]), y - BALL // 2)
            for bc, y, xs in balls
            if not math.isnan(xs[i])
        ]

    if difficulty == 0:
        question = (
            "Balls roll horizontally across the frame, over a vertical white line. How many balls "
            "cross the white line during the video? Answer with an integer."
        )
    else:
        ways = " in either direction (some balls turn back before reaching the line)" if both_ways else ""
        question = (
            f"Balls of several colours roll horizontally across the frame, over a vertical white "
            f"line. How many {colour} balls cross the white line{ways} during the video? Answer "
            f"with an integer."
        )
    return question, crossed, items_at, {"color": colour}
