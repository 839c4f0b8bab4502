"""visual_search_attribute: name the colour or the shape of one tiny object on a huge canvas."""

from __future__ import annotations

from pathlib import Path

from PIL import ImageDraw

from ..base import Task, TaskFamily
from ..common import format_choices, letter_of, pick_options
from ..experts import expert_turns
from . import drawing as dr
from .layout import SEARCH_WIDTHS, cluttered_search_canvas, place_in_cell, search_size, tiny_size


class VisualSearchAttribute(TaskFamily):
    """Find one tiny shape on a huge cluttered canvas and report its colour or its shape.

    ## Description
    A 2K-8K wide canvas of grey texture, grey clutter and ordinary coloured shapes (40 px and
    larger, one per occupied grid cell) hides one to three tiny coloured shapes of 12-16 px
    (at most ~6 px once the canvas is shown 1000 px wide), each in an empty cell. The first
    one is the target; the others share neither its colour nor its shape.

    ## Question
    "Somewhere in this large image there is a tiny <shape> ... What colour is it?" or "...
    a tiny <colour> shape ... What shape is it?" (even odds), with four lettered options.

    ## Answer type
    ``choice``: the option letter (or the option's text); 1 if right, else 0.

    ## Difficulty
    - 0: 2400-3200 px wide; one tiny shape; 130 px cells, 30% of them holding a shape.
    - 1: 3200-5000 px; two tiny shapes; 120 px cells, 40% filled; denser clutter.
    - 2: 5000-8000 px; three tiny shapes; 110 px cells, 50% filled; the densest clutter.

    ## Expert
    Turn 1 scans a reduced copy for small saturated blobs; turn 2 looks at each at full
    resolution (colour by nearest hue, shape by how it fills its box), takes the tiny object
    with the named shape (or colour) and answers with the closest option.

    ## Registered id
    ``PyVisionImage-VisualSearchAttribute-v0``
    """

    name = "visual_search_attribute"
    modality = "image"
    description = "A tiny coloured shape hidden on a 2K-8K cluttered canvas: name its colour or its shape."
    salt = 101

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, SEARCH_WIDTHS, difficulty)
        image, free, cell = cluttered_search_canvas(rng, width, height, difficulty)
        draw = ImageDraw.Draw(image)
        n_tiny = (1, 2, 3)[difficulty]
        colours = [dr.SHAPE_COLOURS[i] for i in rng.choice(len(dr.SHAPE_COLOURS), n_tiny, replace=False)]
        shapes = [dr.SHAPES[i] for i in rng.choice(len(dr.SHAPES), n_tiny, replace=False)]
        tiny = []
        for k, idx in enumerate(rng.choice(len(free), n_tiny, replace=False)):
            size = tiny_size(rng, width)
            x, y = place_in_cell(rng, free[idx], cell, size)
            dr.draw_shape(draw, shapes[k], x, y, size, dr.SHAPE_PALETTE[colours[k]])
            tiny.append({"colour": colours[k], "shape": shapes[k], "bbox": [x, y, x + size, y + size]})
        target = tiny[0]
        if rng.random() < 0.5:
            ask = "colour"
            stem = (
                f"Somewhere in this large image there is a tiny {target['shape']}, far smaller than the "
                "ordinary shapes around it. What colour is it?"
            )
            options = pick_options(rng, target["colour"], dr.SHAPE_COLOURS)
        else:
            ask = "shape"
            stem = (
                f"Somewhere in this large image there is a tiny {target['colour']} shape, far smaller than "
                "the ordinary shapes around it. What shape is it?"
            )
            options = pick_options(rng, target["shape"], dr.SHAPES)
        return self.make_task(
            seed, difficulty,
            question=format_choices(stem, options),
            answer=letter_of(options, target[ask]),
            answer_type="choice",
            options=options,
            images={"image": image},
            metadata={"ask": ask, "target": target, "tiny_objects": tiny, "target_bbox": target["bbox"]},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "What colour is it?" in q:
            ask, known = "colour", next(s for s in dr.SHAPES if f"tiny {s}," in q)
        else:
            ask, known = "shape", next(c for c in dr.SHAPE_COLOURS if f"tiny {c} shape" in q)
        return expert_turns("image", self.name, helpers=("blob_tools", "tiny_search"),
                            read=("ASK", "KNOWN", "OPTIONS"), ASK=ask, KNOWN=known, OPTIONS=list(task.options or []))
