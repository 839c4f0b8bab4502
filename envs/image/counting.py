"""counting: how many shapes of one colour and kind are in the picture?"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..base import Task, TaskFamily
from ..common import PLURALS
from ..experts import expert_turns
from . import drawing as dr
from .layout import scatter_boxes

SIZES = ((640, 480), (900, 650), (1200, 850))  # canvas (width, height) per difficulty
SHAPE_SIDES = ((28, 48), (20, 40), (14, 32))  # smallest and largest shape side per difficulty
TARGETS = ((1, 7), (2, 11), (3, 16))  # range of the answer (high end excluded)
DISTRACTORS = ((3, 8), (8, 17), (15, 31))  # range of the number of other shapes


class Counting(TaskFamily):
    """Count the shapes of one colour and kind among distractors.

    ## Description
    Filled shapes (circles, squares, triangles, diamonds in eight saturated colours) scattered
    without touching. Some are of the asked colour and kind; the distractors share its kind
    (another colour), its colour (another kind) or neither.

    ## Question
    "How many <colour> <shape>s are there in this image? Answer with a single integer."

    ## Answer type
    ``number`` with zero tolerance: the exact count scores 1, anything else 0.

    ## Difficulty
    - 0: 640x480 white canvas; 1-6 targets among 3-7 distractors, 28-48 px; distractors of
      the same kind in another colour, or of a random other colour and kind.
    - 1: 900x650 textured canvas; 2-10 targets, 8-16 distractors of 20-40 px; a third of
      them now in the target's colour but another kind.
    - 2: 1200x850 textured canvas with grey clutter; 3-15 targets, 15-30 distractors of
      14-32 px, same-kind distractors often in a neighbouring hue.

    ## Expert
    Turn 1 labels the saturated blobs and names each one's colour (nearest hue) and shape
    (how it fills its box); turn 2 counts those of the asked colour and shape.

    ## Registered id
    ``PyVisionImage-Counting-v0``
    """

    name = "counting"
    modality = "image"
    description = "Count the shapes of a named colour and kind (e.g. red triangles) among distractors."
    salt = 103

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = SIZES[difficulty]
        lo, hi = SHAPE_SIDES[difficulty]
        colour = dr.SHAPE_COLOURS[int(rng.integers(len(dr.SHAPE_COLOURS)))]
        shape = dr.SHAPES[int(rng.integers(4))]
        n_target = int(rng.integers(*TARGETS[difficulty]))
        n_other = int(rng.integers(*DISTRACTORS[difficulty]))
        items = [(colour, shape)] * n_target + self._distractors(rng, colour, shape, n_other, difficulty)
        order = rng.permutation(len(items))
        items = [items[i] for i in order]
        while True:
            sizes = [int(rng.integers(lo, hi + 1)) for _ in items]
            corners = scatter_boxes(rng, width, height, sizes, gap=6)
            if corners is not None:
                break
        if difficulty == 0:
            image = Image.new("RGB", (width, height), (255, 255, 255))
        else:
            image = dr.textured_background(rng, width, height, lum=(185, 235), tint=10, tile=256)
        draw = ImageDraw.Draw(image)
        if difficulty == 2:
            dr.grey_clutter(draw, rng, width, height, count=40, max_size=120, lum=(150, 220))
        for (c, s), (x, y), size in zip(items, corners, sizes, strict=True):
            dr.draw_shape(draw, s, x, y, size, dr.SHAPE_PALETTE[c])
        return self.make_task(
            seed, difficulty,
            question=f"How many {colour} {PLURALS[shape]} are there in this image? Answer with a single integer.",
            answer=str(n_target),
            answer_type="number",
            tolerance=0.0,
            images={"image": image},
            metadata={"colour": colour, "shape": shape, "count": n_target, "n_objects": len(items)},
        )

    @staticmethod
    def _distractors(rng: np.random.Generator, colour: str, shape: str, count: int,
                     difficulty: int) -> list[tuple[str, str]]:
        """``count`` (colour, shape) pairs other than the target's."""
        names = dr.SHAPE_COLOURS
        hue_index = names.index(colour)
        neighbours = [names[(hue_index + k) % 8] for k in (-1, 1)]
        items: list[tuple[str, str]] = []
        for _ in range(count):
            kind = rng.random()
            if kind < 0.35:  # same kind, other (at d2 often a neighbouring) colour
                pool = neighbours if difficulty == 2 and rng.random() < 0.6 else [c for c in names if c != colour]
                items.append((pool[int(rng.integers(len(pool)))], shape))
            elif kind < 0.7 and difficulty > 0:  # same colour, other kind
                items.append((colour, [s for s in dr.SHAPES if s != shape][int(rng.integers(3))]))
            else:
                other = (names[int(rng.integers(8))], dr.SHAPES[int(rng.integers(4))])
                while other == (colour, shape):
                    other = (names[int(rng.integers(8))], dr.SHAPES[int(rng.integers(4))])
                items.append(other)
        return items

    def expert(self, task: Task) -> list[str]:
        q = task.question
        colour = next(c for c in dr.SHAPE_COLOURS if f"many {c} " in q)
        shape = next(s for s, p in PLURALS.items() if f" {p} " in q)
        return expert_turns("image", self.name, helpers=("blob_tools",), read=("COLOUR", "SHAPE"), COLOUR=colour, SHAPE=shape)
