"""``appearance_order``: in which order do the colours first appear (multiple choice)."""

from __future__ import annotations

import math
from itertools import permutations
from pathlib import Path

import numpy as np

from ..base import Task, TaskFamily
from ..common import choice_options, fmt_number, options_text
from ..experts import expert_turns
from .rendering import (
    VIDEO_COLOURS,
    VIDEO_SHAPES,
    Item,
    background,
    cell_origin,
    even,
    intervals_mask,
    item,
    pick_timing,
    render_items,
    video_task,
)

ARROW = " → "


class AppearanceOrder(TaskFamily):
    """In which order do the coloured shapes first appear?

    **Description.** Three to five shapes of different colours, each in its own cell of a 4×3
    grid, appear one after another (first appearances at least 1, 3 or 6 s apart); every
    appearance lasts at least a stated number of seconds.

    **Question.** "In which order do the colours first appear?" with four orders as options
    (at difficulty 1-2 neighbour swaps of the true order are preferred as distractors).

    **Answer type.** ``choice``: the option's letter.

    **Difficulty.** Length 6-14 s / 32-58 s / 122-220 s; 3, 4 or 5 colours; shapes stay once
    shown at 0, and disappear and come back at 1 and 2 (on 4-15 s / off 3-10 s, then on
    8-30 s / off 5-40 s); minimum visibility 2, 4 or 8 s.

    **Expert.** Sample frames at half the minimum visibility (no appearance slips between
    samples), note each colour's first sample, then resolve colours first seen in the same
    sample frame by frame. Two turns.

    **Registered id.** ``PyVisionVideo-AppearanceOrder-v0``.
    """

    name = "appearance_order"
    modality = "video"
    salt = 104
    description = "Order in which coloured shapes first appear (multiple choice over permutations)."

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        k = (3, 4, 5)[difficulty]
        colours = [str(c) for c in rng.choice(VIDEO_COLOURS, size=k, replace=False)]
        cells = [int(c) for c in rng.permutation(12)[:k]]
        sprites = []
        for j in range(k):
            size = even(rng.uniform(18, 28))
            shape = str(rng.choice(VIDEO_SHAPES))
            sprites.append(item(shape, size, colours[j], *cell_origin(rng, cells[j], size)))
        min_vis = (2.0, 4.0, 8.0)[difficulty]
        firsts = _first_frames(rng, difficulty, fps, n, k, min_vis)
        vis = [_visibility(rng, difficulty, fps, n, first) for first in firsts]

        def items_at(i: int) -> list[Item]:
            return [sprites[j] for j in range(k) if vis[j][i]]

        truth = ARROW.join(colours)  # colours were drawn in order of first appearance
        pool = [ARROW.join(p) for p in permutations(colours)]
        swaps = []
        for j in range(k - 1):
            sw = list(colours)
            sw[j], sw[j + 1] = sw[j + 1], sw[j]
            swaps.append(ARROW.join(sw))
        options, letter = choice_options(rng, truth, pool, 4, prefer=swaps[:2] if k > 3 else ())
        later = " Some shapes later disappear and come back." if difficulty else ""
        question = (
            f"Coloured shapes appear one after another in this video.{later} Whenever a shape appears "
            f"it stays visible for at least {fmt_number(min_vis)} seconds. In which order do the colours "
            f"first appear? {options_text(options)}"
        )
        return video_task(
            self, seed, difficulty, cache_dir, question=question, answer=letter,
            answer_type="choice", options=options, fps=fps, num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"order": colours, "first_frames": firsts, "min_visible_s": min_vis},
        )

    def expert(self, task: Task) -> list[str]:
        min_vis = float(task.question.split("for at least ")[1].split(" seconds")[0])
        return expert_turns(
            "video", "appearance_order", helpers=("blobs",),
            OPTIONS=list(task.options or []), MIN_VISIBLE=min_vis,
        )


def _first_frames(
    rng: np.random.Generator, difficulty: int, fps: int, n: int, k: int, min_vis: float
) -> list[int]:
    """Increasing first-appearance frames, at least the difficulty's spacing apart."""
    spacing = int(math.ceil((1.0, 3.0, 6.0)[difficulty] * fps))
    lo_f, hi_f = int(0.5 * fps), n - int((min_vis + 0.5) * fps)
    slack = hi_f - lo_f - (k - 1) * spacing
    if slack < 0:
        raise RuntimeError("appearance_order: video too short")
    return [lo_f + int(u) + j * spacing for j, u in enumerate(np.sort(rng.uniform(0, slack, k)))]


def _visibility(
    rng: np.random.Generator, difficulty: int, fps: int, n: int, first: int
) -> np.ndarray:
    """Per-frame visibility from ``first`` on: stays at difficulty 0, comes and goes above."""
    if difficulty == 0:
        return intervals_mask(n, [(first, n)])
    on_s, off_s = ((4.0, 15.0), (3.0, 10.0)) if difficulty == 1 else ((8.0, 30.0), (5.0, 40.0))
    spans, t = [], first
    while t < n:
        b = t + math.ceil(rng.uniform(*on_s) * fps)
        spans.append((t, b))
        t = b + int(rng.uniform(*off_s) * fps)
    return intervals_mask(n, spans)
