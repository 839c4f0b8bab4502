"""visual_search_relative_position: where is one tiny object relative to another?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import ImageDraw

from ..base import Task, TaskFamily
from ..common import format_choices, letter_of
from ..experts import expert_turns
from . import drawing as dr
from .layout import SEARCH_WIDTHS, cluttered_search_canvas, place_in_cell, search_size, tiny_size

DIRECTIONS = ["left", "right", "above", "below"]


class VisualSearchRelativePosition(TaskFamily):
    """Find two tiny shapes on a huge canvas and say where one is relative to the other.

    ## Description
    The cluttered 2K-8K canvas of ``visual_search_attribute`` with two tiny named shapes
    (12-16 px) in empty grid cells, placed so that one axis clearly dominates their
    displacement (at least 2.5 times the other axis and 12% of the canvas), plus tiny decoys.
    Every tiny shape has its own colour.

    ## Question
    "This large image contains a tiny <colour> <shape> and a tiny <colour> <shape> ... Where
    is the first relative to the second?" with the options left / right / above / below.

    ## Answer type
    ``choice``: the option letter (or the option's text); 1 if right, else 0.

    ## Difficulty
    - 0: 2400-3200 px wide, no decoys, 130 px cells 30% filled with ordinary shapes.
    - 1: 3200-5000 px, one tiny decoy, 120 px cells 40% filled, denser clutter.
    - 2: 5000-8000 px, two tiny decoys, 110 px cells 50% filled, the densest clutter.

    ## Expert
    Turn 1 scans a reduced copy for small saturated blobs; turn 2 looks at each at full
    resolution, finds the two named objects by colour (then shape) and answers with the
    dominant axis of their displacement.

    ## Registered id
    ``PyVisionImage-VisualSearchRelativePosition-v0``
    """

    name = "visual_search_relative_position"
    modality = "image"
    description = "Two tiny shapes on a 2K-8K cluttered canvas: is one left of / right of / above / below the other?"
    salt = 102

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, SEARCH_WIDTHS, difficulty)
        image, free, cell = cluttered_search_canvas(rng, width, height, difficulty)
        draw = ImageDraw.Draw(image)
        direction = DIRECTIONS[int(rng.integers(4))]
        sizes = [tiny_size(rng, width) for _ in range(2)]
        placed, taken = self._place_pair(rng, free, cell, sizes, direction, width, height)
        colours = [dr.SHAPE_COLOURS[i] for i in rng.choice(len(dr.SHAPE_COLOURS), 2 + difficulty, replace=False)]
        shapes = [dr.SHAPES[int(rng.integers(4))] for _ in range(2 + difficulty)]
        for _ in range(difficulty):  # decoy tiny shapes in other colours
            idx = int(rng.integers(len(free)))
            while idx in taken:
                idx = int(rng.integers(len(free)))
            taken.add(idx)
            size = tiny_size(rng, width)
            placed.append((*place_in_cell(rng, free[idx], cell, size), size))
        tiny = []
        for (x, y, size), colour, shape in zip(placed, colours, shapes, strict=True):
            dr.draw_shape(draw, shape, x, y, size, dr.SHAPE_PALETTE[colour])
            tiny.append({"colour": colour, "shape": shape, "bbox": [x, y, x + size, y + size]})
        a, b = tiny[0], tiny[1]
        stem = (
            f"This large image contains a tiny {a['colour']} {a['shape']} and a tiny {b['colour']} {b['shape']}, "
            f"both far smaller than the ordinary shapes. Where is the tiny {a['colour']} {a['shape']} relative "
            f"to the tiny {b['colour']} {b['shape']}?"
        )
        return self.make_task(
            seed, difficulty,
            question=format_choices(stem, DIRECTIONS),
            answer=letter_of(DIRECTIONS, direction),
            answer_type="choice",
            options=list(DIRECTIONS),
            images={"image": image},
            metadata={"direction": direction, "tiny_objects": tiny, "target_bbox": a["bbox"], "reference_bbox": b["bbox"]},
        )

    @staticmethod
    def _place_pair(rng: np.random.Generator, free: list[tuple[int, int]], cell: int, sizes: list[int],
                    direction: str, width: int, height: int) -> tuple[list[tuple[int, int, int]], set[int]]:
        """Two free cells in the asked direction, one axis clearly dominant: the placed boxes
        ``(x, y, size)`` and the indices of the cells they took."""
        horizontal = direction in ("left", "right")
        span = width if horizontal else height
        while True:
            ia = int(rng.integers(len(free)))
            ib = int(rng.integers(len(free)))
            if ia == ib:
                continue
            (xa, ya) = place_in_cell(rng, free[ia], cell, sizes[0])
            (xb, yb) = place_in_cell(rng, free[ib], cell, sizes[1])
            dx = (xa + sizes[0] / 2) - (xb + sizes[1] / 2)
            dy = (ya + sizes[0] / 2) - (yb + sizes[1] / 2)
            primary, secondary = (dx, dy) if horizontal else (dy, dx)
            sign_ok = primary < 0 if direction in ("left", "above") else primary > 0
            if sign_ok and abs(primary) >= 2.5 * abs(secondary) and abs(primary) >= 0.12 * span:
                return [(xa, ya, sizes[0]), (xb, yb, sizes[1])], {ia, ib}

    def expert(self, task: Task) -> list[str]:
        q = task.question
        head = q.split("Where is")[0]
        named = [(c, s) for c in dr.SHAPE_COLOURS for s in dr.SHAPES if f"tiny {c} {s}" in head]
        first = q.split("Where is the tiny ")[1].split(" relative")[0]
        a = next(n for n in named if f"{n[0]} {n[1]}" == first)
        b = next(n for n in named if n != a)
        return expert_turns("image", self.name, helpers=("blob_tools", "tiny_search"),
                            read=("A_COLOUR", "A_SHAPE", "B_COLOUR", "B_SHAPE", "OPTIONS"), A_COLOUR=a[0], A_SHAPE=a[1], B_COLOUR=b[0], B_SHAPE=b[1],
                            OPTIONS=list(task.options or DIRECTIONS))
