"""measurement: lengths, angles and areas of drawn shapes, in pixels and degrees."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ..base import AnswerType, Task, TaskFamily
from ..experts import expert_turns
from . import drawing as dr

SIZES = ((800, 600), (1000, 750), (1200, 900))  # canvas (width, height) per difficulty
KINDS = ("length", "angle", "area")
GRID = (228, 228, 228)
Point = tuple[float, float]
Measured = tuple[str, float, dict[str, Any]]  # question, true value, extra metadata


def random_point(rng: np.random.Generator, width: int, height: int, margin: int = 40) -> Point:
    """A point at least ``margin`` px inside the canvas."""
    return float(rng.uniform(margin, width - margin)), float(rng.uniform(margin, height - margin))


class Measurement(TaskFamily):
    """Measure lengths, angles and areas of drawn shapes in pixels / degrees.

    ## Description
    A white canvas (with a light grey grid from difficulty 1) holding one measured object in
    a named colour: a line segment, two crossing lines, or a filled rectangle, circle or
    triangle; harder levels add segments or shapes in other colours.

    ## Question
    "What is the length, in pixels, of the <colour> line segment ...?", "The <colour> line and
    the <colour> line cross. What is the smaller angle between them, in degrees?" or "What is
    the area of the <colour> <shape>, in pixels ...?" (each kind a third of the time).

    ## Answer type
    Length and angle: ``number`` within 3% of the truth (``tolerance`` 0.03) scores 1.
    Area: ``mra`` (Mean Relative Accuracy over thresholds 0.50-0.95).

    ## Difficulty
    - 0: 800x600, no grid, 2-3 px lines, no distractors; areas are upright rectangles.
    - 1: 1000x750 with a 25/40/50 px grid, 3 distractors; rectangle, circle or triangle.
    - 2: 1200x900, 2 px lines, 7 distractors; rectangles may be rotated.

    ## Expert
    Turn 1 loads the pixels. Turn 2 selects the pixels within 10 degrees of the named hue:
    a segment's length is the extent of its pixels along their principal axis, an angle
    comes from the two lines' principal axes, an area is the pixel count of the largest
    connected region.

    ## Registered id
    ``PyVisionImage-Measurement-v0``
    """

    name = "measurement"
    modality = "image"
    description = "Measure a drawn segment's length, the angle between two lines, or a shape's area in pixels."
    salt = 106

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = SIZES[difficulty]
        image = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        if difficulty:
            spacing = int(rng.choice([25, 40, 50]))
            for x in range(0, width, spacing):
                draw.line([(x, 0), (x, height)], fill=GRID)
            for y in range(0, height, spacing):
                draw.line([(0, y), (width, y)], fill=GRID)
        kind = KINDS[int(rng.integers(3))]
        colours = [dr.SHAPE_COLOURS[i] for i in rng.permutation(8)]
        n_distract = (0, 3, 7)[difficulty]
        line_width = int(rng.integers(2, 4)) if difficulty < 2 else 2
        if kind == "area":
            question, value, extra = self._area(rng, image, colours, n_distract, difficulty)
        else:
            for _ in range(n_distract):  # distractor segments in other colours, underneath
                p, q = random_point(rng, width, height), random_point(rng, width, height)
                colour = colours[2:][int(rng.integers(len(colours) - 2))]
                draw.line([p, q], fill=dr.SHAPE_PALETTE[colour], width=line_width)
            measure = self._length if kind == "length" else self._angle
            question, value, extra = measure(rng, draw, (width, height), colours, line_width)
        answer_type: AnswerType = "mra" if kind == "area" else "number"
        return self.make_task(
            seed, difficulty,
            question=question,
            answer=f"{value:.1f}" if kind != "area" else str(int(value)),
            answer_type=answer_type,
            tolerance=0.03,
            images={"image": image},
            metadata={"kind": kind, **extra, "colours": colours[:2], "value": value},
        )

    # -- the three kinds of measurement ------------------------------------------------------
    @staticmethod
    def _length(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: tuple[int, int], colours: list[str],
                line_width: int) -> Measured:
        """A segment of 150 px or more."""
        width, height = size
        while True:
            p, q = random_point(rng, width, height), random_point(rng, width, height)
            length = math.dist(p, q)
            if 150 <= length <= 0.9 * min(width, height) + 100:
                break
        draw.line([p, q], fill=dr.SHAPE_PALETTE[colours[0]], width=line_width)
        question = (
            f"What is the length, in pixels, of the {colours[0]} line segment (the distance between its two "
            "ends)? Answer with a number."
        )
        return question, length, {"endpoints": [p, q]}

    @staticmethod
    def _angle(rng: np.random.Generator, draw: ImageDraw.ImageDraw, size: tuple[int, int], colours: list[str],
               line_width: int) -> Measured:
        """Two lines crossing near the centre at 20-88 degrees."""
        width, height = size
        angle = float(rng.uniform(20, 88))
        theta = float(rng.uniform(0, 180))
        cx, cy = width / 2 + rng.uniform(-0.15, 0.15) * width, height / 2 + rng.uniform(-0.15, 0.15) * height
        for k, direction in enumerate((theta, theta + angle)):
            rad = math.radians(direction)
            half_a, half_b = rng.uniform(150, 0.42 * height), rng.uniform(150, 0.42 * height)
            p = (cx - half_a * math.cos(rad), cy - half_a * math.sin(rad))
            q = (cx + half_b * math.cos(rad), cy + half_b * math.sin(rad))
            draw.line([p, q], fill=dr.SHAPE_PALETTE[colours[k]], width=line_width)
        question = (
            f"The {colours[0]} line and the {colours[1]} line cross. What is the smaller angle between them, "
            "in degrees? Answer with a number."
        )
        return question, angle, {"theta": theta}

    def _area(self, rng: np.random.Generator, image: Image.Image, colours: list[str], n_distract: int,
              difficulty: int) -> Measured:
        """A filled shape drawn over distractor shapes that keep clear of it."""
        width, height = image.size
        shape = "rectangle" if difficulty == 0 else ("rectangle", "circle", "triangle")[int(rng.integers(3))]
        mask = self._area_mask(rng, shape, width, height, difficulty)
        target = np.asarray(mask) > 0
        ys, xs = np.nonzero(target)
        tbox = (int(xs.min()) - 12, int(ys.min()) - 12, int(xs.max()) + 12, int(ys.max()) + 12)
        draw, placed = ImageDraw.Draw(image), 0
        for _ in range(200):  # distractor shapes in other colours, clear of the target
            if placed >= n_distract:
                break
            s = int(rng.integers(30, 90))
            x, y = int(rng.integers(10, width - s - 10)), int(rng.integers(10, height - s - 10))
            if x + s < tbox[0] or x > tbox[2] or y + s < tbox[1] or y > tbox[3]:
                shape_drawn = dr.SHAPES[int(rng.integers(4))]
                colour = colours[2:][int(rng.integers(len(colours) - 2))]
                dr.draw_shape(draw, shape_drawn, x, y, s, dr.SHAPE_PALETTE[colour])
                placed += 1
        image.paste(dr.SHAPE_PALETTE[colours[0]], mask=mask)
        question = (
            f"What is the area of the {colours[0]} {shape}, in pixels (the number of pixels it covers)? "
            "Answer with a number."
        )
        return question, float(target.sum()), {"shape": shape}

    @staticmethod
    def _area_mask(rng: np.random.Generator, shape: str, width: int, height: int, difficulty: int) -> Image.Image:
        """The measured shape as a 0/255 mask of the canvas' size."""
        mask = Image.new("L", (width, height), 0)
        mdraw = ImageDraw.Draw(mask)
        cx, cy = width / 2 + rng.uniform(-0.2, 0.2) * width, height / 2 + rng.uniform(-0.2, 0.2) * height
        if shape == "rectangle":
            w, h = int(rng.integers(110, 0.5 * width)), int(rng.integers(90, 0.55 * height))
            if difficulty == 2:
                rot = math.radians(float(rng.uniform(0, 90)))
                corners = [(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2)]
                pts = [(cx + x * math.cos(rot) - y * math.sin(rot), cy + x * math.sin(rot) + y * math.cos(rot)) for x, y in corners]
                mdraw.polygon(pts, fill=255)
            else:
                x0, y0 = int(cx - w / 2), int(cy - h / 2)
                mdraw.rectangle([x0, y0, x0 + w - 1, y0 + h - 1], fill=255)
        elif shape == "circle":
            r = float(rng.uniform(70, 0.3 * height))
            mdraw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        else:
            while True:  # a triangle of 15000 px or more with no side under 120 px
                pts = [(cx + rng.uniform(-0.3, 0.3) * width, cy + rng.uniform(-0.3, 0.3) * height) for _ in range(3)]
                (x1, y1), (x2, y2), (x3, y3) = pts
                area2 = abs((x2 - x1) * (y3 - y1) - (x3 - x1) * (y2 - y1))
                sides = [math.dist(pts[i], pts[(i + 1) % 3]) for i in range(3)]
                if area2 / 2 >= 15000 and min(sides) >= 120:
                    break
            mdraw.polygon(pts, fill=255)
        return mask

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "length" in q:
            kind, colours = "length", re.findall(r"of the (\w+) line segment", q)[:1]
        elif "smaller angle" in q:
            kind, colours = "angle", list(re.findall(r"The (\w+) line and the (\w+) line", q)[0])
        else:
            kind, colours = "area", re.findall(r"area of the (\w+) ", q)[:1]
        return expert_turns("image", self.name, helpers=("hue_mask",), read=("KIND", "COLOURS"), KIND=kind, COLOURS=colours)
