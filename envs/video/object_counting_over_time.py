"""``object_counting_over_time``: how many distinct shapes appear over the video (exact integer)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..base import Task, TaskFamily
from ..common import fmt_number
from ..experts import expert_turns
from .rendering import (
    VIDEO_COLOURS,
    VIDEO_SHAPES,
    Item,
    background,
    cell_origin,
    even,
    item,
    pick_timing,
    render_items,
    video_task,
)

Show = tuple[int, int, int, Item]  # identity index, first frame, end frame, sprite


class ObjectCountingOverTime(TaskFamily):
    """How many distinct shapes appear over the whole video (never all at once)?

    **Description.** Shapes (a colour and a form) appear in cells of a 4×3 grid for a while
    and vanish; at most two or three are on screen at once, always fewer than the answer, so
    no single frame shows them all.

    **Question.** "How many distinct shapes appear in total? Shapes are distinct when they
    differ in colour or in form." The minimum time an appearance lasts is stated.

    **Answer type.** ``number``: an integer, exact match (tolerance 0).

    **Difficulty.** Length 6-14 s / 32-58 s / 122-220 s; 2-4, 4-8 or 6-12 identities (all of
    different colours at 0; colour × form combinations above); each shown once at 0, up to 2
    or 3 times above; appearances last 1.2-3 s, 3-10 s or 8-24 s.

    **Expert.** Sample frames at half the minimum visibility (no appearance can slip between
    two samples), collect the (colour, form) pairs of every blob, count them. Two turns.

    **Registered id.** ``PyVisionVideo-ObjectCountingOverTime-v0``.
    """

    name = "object_counting_over_time"
    modality = "video"
    salt = 106
    tries = 50
    description = "Count the distinct shapes that appear over the video; they are never all on screen at once."

    def build(
        self, rng: np.random.Generator, seed: int, difficulty: int, cache_dir: Path
    ) -> Task | None:
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        lo, hi = ((2, 4), (4, 8), (6, 12))[difficulty]
        d = int(rng.integers(lo, hi + 1))
        if difficulty == 0:
            idents = [
                (str(c), str(rng.choice(VIDEO_SHAPES)))
                for c in rng.choice(VIDEO_COLOURS, size=d, replace=False)
            ]
        else:
            combos = [(c, s) for c in VIDEO_COLOURS for s in VIDEO_SHAPES]
            idents = [combos[int(i)] for i in rng.choice(len(combos), size=d, replace=False)]
        reps = [1 if difficulty == 0 else int(rng.integers(1, difficulty + 2)) for _ in idents]
        min_vis, max_vis = ((1.2, 3.0), (3.0, 10.0), (8.0, 24.0))[difficulty]
        cap = min(d - 1, (2, 3, 3)[difficulty])
        shows, load = _schedule(rng, fps, n, idents, reps, (min_vis, max_vis), cap)
        present = sorted({j for j, _a, _b, _it in shows})
        count = len(present)
        if count < max(2, lo - 1) or load.max() >= count:
            return None
        shows.sort(key=lambda s: s[1])

        def items_at(i: int) -> list[Item]:
            return [it for _j, a, b, it in shows if a <= i < b]

        comes_back = "; the same shape may come back later" if difficulty else ""
        question = (
            f"Coloured shapes appear and disappear during this video (never all of them on screen at "
            f"the same time{comes_back}). Each appearance lasts at least {fmt_number(min_vis)} seconds. How "
            f"many distinct shapes appear in total? Shapes are distinct when they differ in colour or "
            f"in form (square, circle, triangle). Answer with an integer."
        )
        meta = {
            "identities": [list(idents[j]) for j in present],
            "appearances": len(shows),
            "max_on_screen": int(load.max()),
            "min_visible_s": min_vis,
        }
        return video_task(
            self, seed, difficulty, cache_dir, question=question, answer=str(count),
            answer_type="number", fps=fps, num_frames=n,
            frames=lambda: render_items(n, base, items_at), metadata=meta,
        )

    def expert(self, task: Task) -> list[str]:
        min_vis = float(task.question.split("lasts at least ")[1].split(" seconds")[0])
        return expert_turns("video", "distinct_shapes", helpers=("blobs",), MIN_VISIBLE=min_vis)


def _schedule(
    rng: np.random.Generator, fps: int, n: int, idents: list[tuple[str, str]], reps: list[int],
    visible_s: tuple[float, float], cap: int,
) -> tuple[list[Show], np.ndarray]:
    """Place each identity's appearances: fewer than ``cap`` on screen, free cells, no overlap
    with itself (2 frames apart). Returns the appearances and the on-screen count per frame."""
    d = len(idents)
    load = np.zeros(n, dtype=np.int64)
    cell_busy = np.zeros((12, n), dtype=bool)
    ident_busy = np.zeros((d, n), dtype=bool)
    shows: list[Show] = []
    jobs = [j for j in range(d) for _r in range(reps[j])]
    rng.shuffle(jobs)
    for j in jobs:
        dur = math.ceil(rng.uniform(*visible_s) * fps)
        if dur >= n:
            continue
        for _try in range(60):
            a = int(rng.integers(0, n - dur + 1))
            b = a + dur
            pad = slice(max(0, a - 2), min(n, b + 2))
            if load[a:b].max() >= cap or ident_busy[j, pad].any():
                continue
            free = [c for c in range(12) if not cell_busy[c, pad].any()]
            if not free:
                continue
            cell = int(rng.choice(free))
            size = even(rng.uniform(18, 28))
            colour, shape = idents[j]
            load[a:b] += 1
            cell_busy[cell, a:b] = True
            ident_busy[j, a:b] = True
            shows.append((j, a, b, item(shape, size, colour, *cell_origin(rng, cell, size))))
            break
    return shows, load
