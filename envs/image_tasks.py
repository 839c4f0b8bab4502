"""Procedurally generated image task families and their scripted experts.

Every family draws its image in memory from ``numpy.random.default_rng([seed, difficulty,
salt])``; the same seed and difficulty always give the same question, answer and pixels.
Each expert returns Python source, one string per agent turn, that solves the task from the
pixels of the preloaded PIL image ``image`` under the runtime's restricted interpreter (no
underscore names, whitelisted imports, no file I/O) and prints the answer as the last line.

``IMAGE_FAMILIES`` maps each family name to an instance.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from string import Template
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from . import image_drawing as dr
from .base import AnswerType, Task, TaskFamily

LETTERS = "ABCDEFGH"

PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds"}


def format_choices(stem: str, options: list[str]) -> str:
    """A multiple-choice question: the stem, lettered options and the answer instruction."""
    listed = " ".join(f"({LETTERS[i]}) {opt}" for i, opt in enumerate(options))
    return f"{stem}\nOptions: {listed}\nAnswer with the letter of the correct option."


def pick_options(rng: np.random.Generator, answer: str, pool: list[str] | tuple[str, ...], k: int = 4) -> list[str]:
    """``answer`` plus ``k - 1`` other entries of ``pool``, shuffled."""
    others = [p for p in pool if p != answer]
    chosen = [others[i] for i in rng.choice(len(others), size=min(k - 1, len(others)), replace=False)]
    options = [answer, *chosen]
    return [options[i] for i in rng.permutation(len(options))]


def code(template: str, **values: Any) -> str:
    """Fill ``$name`` placeholders of an expert code template with ``repr`` of the values."""
    return Template(template).substitute({k: repr(v) for k, v in values.items()}).strip() + "\n"


def search_size(rng: np.random.Generator, ranges: dict[int, tuple[int, int]], difficulty: int) -> tuple[int, int]:
    """Canvas width in the difficulty's range and a height of 50-62% of it."""
    lo, hi = ranges[difficulty]
    width = int(rng.integers(lo, hi + 1))
    return width, int(width * rng.uniform(0.5, 0.62))


# ============================================================================================
# Expert code shared between families (sources run inside the restricted runtime)
# ============================================================================================

BLOB_TOOLS = """
import colorsys

import numpy as np
from scipy import ndimage

# Reference hue (degrees) of each colour name used by the questions.
HUES = {"red": 0, "orange": 31, "yellow": 54, "green": 130, "cyan": 183, "blue": 228, "purple": 273, "magenta": 318}
EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for ndimage.label


def colour_name(rgb, choices=None):
    \"\"\"Name an RGB colour by the nearest reference hue (optionally only among `choices`).\"\"\"
    hue = colorsys.rgb_to_hsv(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)[0] * 360
    names = list(HUES) if choices is None else list(choices)

    def hue_gap(name):
        gap = abs(hue - HUES[name]) % 360
        return min(gap, 360 - gap)

    return min(names, key=hue_gap)


def shape_name(mask):
    \"\"\"Circle, square, triangle or diamond, from how much of its bounding box a blob fills.\"\"\"
    rows = np.nonzero(mask.any(axis=1))[0]
    cols = np.nonzero(mask.any(axis=0))[0]
    blob = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    fill = blob.mean()
    if fill > 0.9:
        return "square"
    if fill > 0.68:
        return "circle"
    # Triangles (apex up) are wide at the bottom and narrow at the top; diamonds are symmetric.
    third = max(1, blob.shape[0] // 3)
    widths = blob.sum(axis=1)
    if widths[-third:].mean() > 1.8 * widths[:third].mean():
        return "triangle"
    return "diamond"


def spread(arr):
    \"\"\"Per-pixel max minus min of the RGB channels: a cheap saturation measure (uint8 safe).\"\"\"
    r, g, b = arr[:, :, 0], arr[:, :, 1], arr[:, :, 2]
    return np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)


def describe_blobs(arr, min_saturation=90, min_pixels=20):
    \"\"\"Connected saturated blobs of an RGB array: colour, shape, size, centre, box.\"\"\"
    labels, count = ndimage.label(spread(arr) > min_saturation, structure=EIGHT)
    blobs = []
    for index, box in enumerate(ndimage.find_objects(labels)):
        mask = labels[box] == index + 1
        if mask.sum() < min_pixels:
            continue
        height, width = mask.shape
        rgb = np.median(arr[box][mask], axis=0)
        blobs.append({
            "colour": colour_name(rgb),
            "rgb": rgb,
            "shape": shape_name(mask),
            "fill": float(mask.mean()),
            "pixels": int(mask.sum()),
            "size": max(height, width),
            "x": box[1].start + (width - 1) / 2,  # centre of the bounding box
            "y": box[0].start + (height - 1) / 2,
            "box": (box[1].start, box[0].start, box[1].stop, box[0].stop),
            "touches_edge": box[0].start == 0 or box[1].start == 0
            or box[0].stop == arr.shape[0] or box[1].stop == arr.shape[1],
        })
    return blobs
"""

SEARCH_SCAN = """
# The picture is huge: scan a reduced copy for saturated blobs and keep the tiny ones.
factor = max(1, min(4, image.width // 1200))
small = np.asarray(image.reduce(factor))
labels, count = ndimage.label(spread(small) > 50, structure=EIGHT)
tiny = []
for box in ndimage.find_objects(labels):
    height, width = box[0].stop - box[0].start, box[1].stop - box[1].start
    if max(height, width) * factor <= 28:  # the ordinary shapes are 40 px and larger
        tiny.append({"box": (box[1].start, box[0].start, box[1].stop, box[0].stop)})
print(f"image {image.width}x{image.height}, reduced {factor}x to {small.shape[1]}x{small.shape[0]}")
print(f"{count} coloured blobs, {len(tiny)} of them tiny")
"""

SEARCH_ZOOM = """
def zoom(blob, pad=16):
    \"\"\"Look at a coarse blob at full resolution; None if it is part of a bigger object.\"\"\"
    x0, y0, x1, y1 = blob["box"]
    left, top = x0 * factor - pad, y0 * factor - pad
    crop = np.asarray(image.crop((left, top, x1 * factor + pad, y1 * factor + pad)))
    found = [b for b in describe_blobs(crop, min_pixels=30) if not b["touches_edge"] and b["size"] <= 24]
    if not found:
        return None
    best = max(found, key=lambda b: b["pixels"])
    best["x"] = best["x"] + left
    best["y"] = best["y"] + top
    return best


objects = []
for blob in tiny:
    obj = zoom(blob)
    # Skip a second coarse fragment of an object that is already on the list.
    if obj is not None and all(abs(obj["x"] - o["x"]) + abs(obj["y"] - o["y"]) > 10 for o in objects):
        objects.append(obj)
for obj in objects:
    print(f"tiny {obj['colour']} {obj['shape']} ({obj['size']} px) at x={obj['x']:.0f}, y={obj['y']:.0f}")
"""

OCR_TOOLS = """
from PIL import Image, ImageDraw


def darkness(pil_crop):
    \"\"\"Ink darkness 0..255 of an image crop (255 minus its grey level).\"\"\"
    return 255 - np.asarray(pil_crop.convert("L")).astype(int)


def tight(ink, level=60):
    \"\"\"Crop an ink array to the box of its clearly inked pixels.\"\"\"
    rows = np.nonzero((ink > level).any(axis=1))[0]
    cols = np.nonzero((ink > level).any(axis=0))[0]
    if len(rows) == 0:
        return ink[:0, :0]
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


rendered = {}


def render(text, size):
    \"\"\"Ink of `text` drawn with Pillow's default font at `size` px, cropped tight (cached).\"\"\"
    key = (text, size)
    if key not in rendered:
        canvas = Image.new("L", (size * (len(text) + 4), size * 3), 255)
        ImageDraw.Draw(canvas).text((size, size), text, fill=0, font_size=size)
        rendered[key] = tight(255 - np.asarray(canvas).astype(int))
    return rendered[key]


def difference(a, b):
    \"\"\"Mean absolute ink difference of two tight crops, plus a penalty per pixel of size mismatch.\"\"\"
    if a.size == 0 or b.size == 0 or abs(a.shape[0] - b.shape[0]) > 1 or abs(a.shape[1] - b.shape[1]) > 1:
        return 1e9
    height, width = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
    mismatch = abs(a.shape[0] - b.shape[0]) + abs(a.shape[1] - b.shape[1])
    return float(np.abs(a[:height, :width] - b[:height, :width]).mean()) + 40 * mismatch


def split_glyphs(ink, level=60):
    \"\"\"Column spans of the separate characters of one line of text.\"\"\"
    filled = (ink > level).any(axis=0)
    spans, start = [], None
    for col, on in enumerate(filled):
        if on and start is None:
            start = col
        if not on and start is not None:
            spans.append((start, col))
            start = None
    if start is not None:
        spans.append((start, len(filled)))
    return spans


def read_line(ink, alphabet):
    \"\"\"OCR a line of spaced characters by matching each glyph with default-font renderings.\"\"\"
    glyphs = [tight(ink[:, a:b]) for a, b in split_glyphs(ink)]
    heights = sorted(g.shape[0] for g in glyphs)
    cap = heights[len(heights) // 2]
    # Capitals and digits are about 2/3 of the font size tall: try the font sizes whose "H"
    # has that height, best fitting first, and stop once every glyph matches (almost) exactly.
    sizes = [s for s in range(max(6, int(cap * 1.2)), int(cap * 1.8) + 2) if abs(render("H", s).shape[0] - cap) <= 1]
    sizes.sort(key=lambda s: abs(render("H", s).shape[0] - cap))
    best_text, best_score = "", float("inf")
    for size in sizes:
        templates = {ch: render(ch, size) for ch in alphabet}
        text, score = "", 0.0
        for glyph in glyphs:
            ch = min(templates, key=lambda c: difference(glyph, templates[c]))
            text = text + ch
            score = score + difference(glyph, templates[ch])
        if score < best_score:
            best_text, best_score = text, score
        if best_score < 2 * len(glyphs):
            break
    return best_text
"""

WHITE_SCAN = """
# Nothing else in the picture is pure white: find the white patch on a reduced copy.
factor = max(1, min(3, image.width // 1500))
small = np.asarray(image.reduce(factor))
darkest = np.minimum(np.minimum(small[:, :, 0], small[:, :, 1]), small[:, :, 2])
labels, count = ndimage.label(darkest >= 250, structure=np.ones((3, 3), dtype=bool))
sizes = np.bincount(labels.ravel())
best = int(np.argmax(sizes[1:])) + 1
ys, xs = np.nonzero(labels == best)
pad = 2 * factor + 4
left, top = int(xs.min()) * factor - pad, int(ys.min()) * factor - pad
right, bottom = (int(xs.max()) + 1) * factor + pad, (int(ys.max()) + 1) * factor + pad
print(f"image {image.width}x{image.height}: {count} white patches, the largest spans x {left}-{right}, y {top}-{bottom}")
patch = image.crop((left, top, right, bottom))
white = np.asarray(patch).min(axis=2) >= 250
rows = np.nonzero(white.any(axis=1))[0]
cols = np.nonzero(white.any(axis=0))[0]
inside = patch.crop((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
print(f"white area inside the border: {inside.width}x{inside.height} px")
"""

CODE_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-"


# ============================================================================================
# Base class
# ============================================================================================


class ImageTaskFamily(TaskFamily):
    """Common plumbing: seeded generators and ``Task`` construction."""

    modality = "image"
    salt: int = 0

    def rng(self, seed: int, difficulty: int) -> np.random.Generator:
        if difficulty not in self.difficulties:
            raise ValueError(f"difficulty must be one of {self.difficulties}, got {difficulty}")
        return np.random.default_rng([seed, difficulty, self.salt])

    def make_task(
        self,
        seed: int,
        difficulty: int,
        question: str,
        answer: str,
        answer_type: AnswerType,
        image: Image.Image,
        options: list[str] | None = None,
        tolerance: float = 0.0,
        metadata: dict[str, Any] | None = None,
    ) -> Task:
        return Task(
            task_id=f"{self.name}-d{difficulty}-s{seed}",
            family=self.name,
            modality="image",
            question=question,
            answer=answer,
            answer_type=answer_type,
            options=options,
            tolerance=tolerance,
            images={"image": image},
            difficulty=difficulty,
            seed=seed,
            metadata=metadata or {},
        )


def cluttered_search_canvas(
    rng: np.random.Generator, width: int, height: int, difficulty: int
) -> tuple[Image.Image, list[tuple[int, int]], int]:
    """A big cluttered canvas: grey texture and clutter, then coloured shapes in grid cells.

    Returns the image, the grid cells left empty (free for tiny targets) and the cell size.
    """
    cell = (130, 120, 110)[difficulty]
    density = (0.3, 0.4, 0.5)[difficulty]
    image = dr.textured_background(rng, width, height)
    draw = ImageDraw.Draw(image)
    dr.grey_clutter(draw, rng, width, height, count=width * height // (30000, 22000, 16000)[difficulty])
    cells = dr.grid_cells(width, height, cell)
    used = rng.random(len(cells)) < density
    dr.scatter_shapes(draw, rng, [c for c, u in zip(cells, used, strict=True) if u], cell, min_size=40)
    return image, [c for c, u in zip(cells, used, strict=True) if not u], cell


def place_in_cell(rng: np.random.Generator, corner: tuple[int, int], cell: int, size: int) -> tuple[int, int]:
    """Top-left of a ``size`` box inside a grid cell, at least 12 px from the cell's edges."""
    x0, y0 = corner
    return x0 + int(rng.integers(12, cell - 12 - size + 1)), y0 + int(rng.integers(12, cell - 12 - size + 1))


SEARCH_WIDTHS = {0: (2400, 3200), 1: (3200, 5000), 2: (5000, 8000)}


def tiny_size(rng: np.random.Generator, width: int) -> int:
    """Side of a tiny target: 12-16 px, and at most ~5.5 px once the canvas is shown 1000 px wide."""
    return int(rng.integers(12, min(16, int(5.5 * width / 1000)) + 1))


# ============================================================================================
# 1. visual_search_attribute
# ============================================================================================


class VisualSearchAttribute(ImageTaskFamily):
    """Find one tiny shape on a huge cluttered canvas and report its colour or shape."""

    name = "visual_search_attribute"
    description = "A tiny coloured shape hidden on a 2K-8K cluttered canvas: name its colour or its shape."
    salt = 101

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, SEARCH_WIDTHS, difficulty)
        image, free, cell = cluttered_search_canvas(rng, width, height, difficulty)
        draw = ImageDraw.Draw(image)
        n_tiny = (1, 2, 3)[difficulty]
        colours = [dr.COLOUR_NAMES[i] for i in rng.choice(len(dr.COLOUR_NAMES), n_tiny, replace=False)]
        shapes = [dr.SHAPES[i] for i in rng.choice(len(dr.SHAPES), n_tiny, replace=False)]
        tiny = []
        for k, idx in enumerate(rng.choice(len(free), n_tiny, replace=False)):
            size = tiny_size(rng, width)
            x, y = place_in_cell(rng, free[idx], cell, size)
            dr.draw_shape(draw, shapes[k], x, y, size, dr.PALETTE[colours[k]])
            tiny.append({"colour": colours[k], "shape": shapes[k], "bbox": [x, y, x + size, y + size]})
        target = tiny[0]
        if rng.random() < 0.5:
            ask = "colour"
            stem = (
                f"Somewhere in this large image there is a tiny {target['shape']}, far smaller than the "
                "ordinary shapes around it. What colour is it?"
            )
            options = pick_options(rng, target["colour"], dr.COLOUR_NAMES)
            answer_value = target["colour"]
        else:
            ask = "shape"
            stem = (
                f"Somewhere in this large image there is a tiny {target['colour']} shape, far smaller than "
                "the ordinary shapes around it. What shape is it?"
            )
            options = pick_options(rng, target["shape"], dr.SHAPES)
            answer_value = target["shape"]
        return self.make_task(
            seed,
            difficulty,
            format_choices(stem, options),
            LETTERS[options.index(answer_value)],
            "choice",
            image,
            options=options,
            metadata={"ask": ask, "target": target, "tiny_objects": tiny, "target_bbox": target["bbox"]},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        options = list(task.options or [])
        if "What colour is it?" in q:
            known = next(s for s in dr.SHAPES if f"tiny {s}," in q)
            decide = code(
                """
options = $options  # from the question
matches = [o for o in objects if o["shape"] == $known]
target = matches[0] if matches else objects[0]
value = colour_name(target["rgb"], options)
print(f"the tiny {target['shape']} at ({target['x']:.0f}, {target['y']:.0f}) is {target['colour']}; closest option: {value}")
print("ABCDEFGH"[options.index(value)])
""",
                options=options,
                known=known,
            )
        else:
            known = next(c for c in dr.COLOUR_NAMES if f"tiny {c} shape" in q)
            decide = code(
                """
options = $options  # from the question
matches = [o for o in objects if o["colour"] == $known]
target = matches[0] if matches else objects[0]
value = target["shape"] if target["shape"] in options else options[0]
print(f"the tiny {target['colour']} object at ({target['x']:.0f}, {target['y']:.0f}) is a {target['shape']}")
print("ABCDEFGH"[options.index(value)])
""",
                options=options,
                known=known,
            )
        return [BLOB_TOOLS.strip() + "\n\n" + SEARCH_SCAN.strip() + "\n", SEARCH_ZOOM.strip() + "\n\n" + decide]


# ============================================================================================
# 2. visual_search_relative_position
# ============================================================================================

DIRECTIONS = ["left", "right", "above", "below"]


class VisualSearchRelativePosition(ImageTaskFamily):
    """Find two tiny shapes on a huge canvas and say where one is relative to the other."""

    name = "visual_search_relative_position"
    description = "Two tiny shapes on a 2K-8K cluttered canvas: is one left of / right of / above / below the other?"
    salt = 102

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, SEARCH_WIDTHS, difficulty)
        image, free, cell = cluttered_search_canvas(rng, width, height, difficulty)
        draw = ImageDraw.Draw(image)
        direction = DIRECTIONS[int(rng.integers(4))]
        sizes = [tiny_size(rng, width) for _ in range(2)]
        while True:  # two free cells in the asked direction, one axis clearly dominant
            ia = int(rng.integers(len(free)))
            ib = int(rng.integers(len(free)))
            if ia == ib:
                continue
            (xa, ya) = place_in_cell(rng, free[ia], cell, sizes[0])
            (xb, yb) = place_in_cell(rng, free[ib], cell, sizes[1])
            dx = (xa + sizes[0] / 2) - (xb + sizes[1] / 2)
            dy = (ya + sizes[0] / 2) - (yb + sizes[1] / 2)
            horizontal = direction in ("left", "right")
            primary, secondary = (dx, dy) if horizontal else (dy, dx)
            span = width if horizontal else height
            sign_ok = primary < 0 if direction in ("left", "above") else primary > 0
            if sign_ok and abs(primary) >= 2.5 * abs(secondary) and abs(primary) >= 0.12 * span:
                break
        colours = [dr.COLOUR_NAMES[i] for i in rng.choice(len(dr.COLOUR_NAMES), 2 + difficulty, replace=False)]
        shapes = [dr.SHAPES[int(rng.integers(4))] for _ in range(2 + difficulty)]
        placed = [(xa, ya, sizes[0]), (xb, yb, sizes[1])]
        taken = {ia, ib}
        for _ in range(difficulty):  # decoy tiny shapes in other colours
            idx = int(rng.integers(len(free)))
            while idx in taken:
                idx = int(rng.integers(len(free)))
            taken.add(idx)
            size = tiny_size(rng, width)
            placed.append((*place_in_cell(rng, free[idx], cell, size), size))
        tiny = []
        for (x, y, size), colour, shape in zip(placed, colours, shapes, strict=True):
            dr.draw_shape(draw, shape, x, y, size, dr.PALETTE[colour])
            tiny.append({"colour": colour, "shape": shape, "bbox": [x, y, x + size, y + size]})
        a, b = tiny[0], tiny[1]
        stem = (
            f"This large image contains a tiny {a['colour']} {a['shape']} and a tiny {b['colour']} {b['shape']}, "
            f"both far smaller than the ordinary shapes. Where is the tiny {a['colour']} {a['shape']} relative "
            f"to the tiny {b['colour']} {b['shape']}?"
        )
        return self.make_task(
            seed,
            difficulty,
            format_choices(stem, DIRECTIONS),
            LETTERS[DIRECTIONS.index(direction)],
            "choice",
            image,
            options=list(DIRECTIONS),
            metadata={"direction": direction, "tiny_objects": tiny, "target_bbox": a["bbox"], "reference_bbox": b["bbox"]},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        head = q.split("Where is")[0]
        named = [(c, s) for c in dr.COLOUR_NAMES for s in dr.SHAPES if f"tiny {c} {s}" in head]
        first = q.split("Where is the tiny ")[1].split(" relative")[0]
        a = next(n for n in named if f"{n[0]} {n[1]}" == first)
        b = next(n for n in named if n != a)
        decide = code(
            """
options = $options  # from the question


def find(colour, shape):
    \"\"\"The tiny object of the named colour (the colour is unique among the tiny ones).\"\"\"
    same = [o for o in objects if o["colour"] == colour]
    exact = [o for o in same if o["shape"] == shape]
    return (exact or same or objects)[0]


a = find($a_colour, $a_shape)
b = find($b_colour, $b_shape)
dx, dy = a["x"] - b["x"], a["y"] - b["y"]
print(f"displacement of the first from the second: dx={dx:.0f}, dy={dy:.0f} (y grows downwards)")
if abs(dx) >= abs(dy):
    relation = "left" if dx < 0 else "right"
else:
    relation = "above" if dy < 0 else "below"
print("ABCDEFGH"[options.index(relation)])
""",
            options=list(task.options or DIRECTIONS),
            a_colour=a[0],
            a_shape=a[1],
            b_colour=b[0],
            b_shape=b[1],
        )
        return [BLOB_TOOLS.strip() + "\n\n" + SEARCH_SCAN.strip() + "\n", SEARCH_ZOOM.strip() + "\n\n" + decide]


# ============================================================================================
# 3. counting
# ============================================================================================


def scatter_boxes(
    rng: np.random.Generator,
    width: int,
    height: int,
    sizes: list[int],
    gap: int,
    margin: int = 10,
    avoid: list[tuple[int, int, int, int]] | None = None,
) -> list[tuple[int, int]] | None:
    """Top-left corners for square boxes of the given sizes that keep ``gap`` px apart.

    Returns None if the rejection sampling gives up (the caller then tries another layout).
    """
    boxes: list[tuple[int, int, int, int]] = list(avoid or [])
    corners: list[tuple[int, int]] = []
    for size in sizes:
        for _ in range(400):
            x = int(rng.integers(margin, width - margin - size))
            y = int(rng.integers(margin, height - margin - size))
            if all(
                x + size + gap <= bx0 or bx1 + gap <= x or y + size + gap <= by0 or by1 + gap <= y
                for bx0, by0, bx1, by1 in boxes
            ):
                boxes.append((x, y, x + size, y + size))
                corners.append((x, y))
                break
        else:
            return None
    return corners


class Counting(ImageTaskFamily):
    """Count the shapes of one colour and kind among distractors."""

    name = "counting"
    description = "Count the shapes of a named colour and kind (e.g. red triangles) among distractors."
    salt = 103

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = ((640, 480), (900, 650), (1200, 850))[difficulty]
        lo, hi = ((28, 48), (20, 40), (14, 32))[difficulty]
        colour = dr.COLOUR_NAMES[int(rng.integers(len(dr.COLOUR_NAMES)))]
        shape = dr.SHAPES[int(rng.integers(4))]
        n_target = int(rng.integers(*((1, 7), (2, 11), (3, 16))[difficulty]))
        n_other = int(rng.integers(*((3, 8), (8, 17), (15, 31))[difficulty]))
        items: list[tuple[str, str]] = [(colour, shape)] * n_target
        hue_index = dr.COLOUR_NAMES.index(colour)
        neighbours = [dr.COLOUR_NAMES[(hue_index + k) % 8] for k in (-1, 1)]
        for _ in range(n_other):
            kind = rng.random()
            if kind < 0.35:  # same kind, other (at d2 often a neighbouring) colour
                pool = neighbours if difficulty == 2 and rng.random() < 0.6 else [c for c in dr.COLOUR_NAMES if c != colour]
                items.append((pool[int(rng.integers(len(pool)))], shape))
            elif kind < 0.7 and difficulty > 0:  # same colour, other kind
                items.append((colour, [s for s in dr.SHAPES if s != shape][int(rng.integers(3))]))
            else:
                other = (dr.COLOUR_NAMES[int(rng.integers(8))], dr.SHAPES[int(rng.integers(4))])
                while other == (colour, shape):
                    other = (dr.COLOUR_NAMES[int(rng.integers(8))], dr.SHAPES[int(rng.integers(4))])
                items.append(other)
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
            dr.draw_shape(draw, s, x, y, size, dr.PALETTE[c])
        stem = f"How many {colour} {PLURALS[shape]} are there in this image? Answer with a single integer."
        return self.make_task(
            seed,
            difficulty,
            stem,
            str(n_target),
            "number",
            image,
            tolerance=0.0,
            metadata={"colour": colour, "shape": shape, "count": n_target, "n_objects": len(items)},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        colour = next(c for c in dr.COLOUR_NAMES if f"many {c} " in q)
        shape = next(s for s, p in PLURALS.items() if f" {p} " in q)
        turn2 = code(
            """
wanted = [b for b in blobs if b["colour"] == $colour and b["shape"] == $shape]
for b in wanted:
    print(f"{b['colour']} {b['shape']} at ({b['x']:.0f}, {b['y']:.0f}), {b['size']} px")
print(len(wanted))
""",
            colour=colour,
            shape=shape,
        )
        turn1 = (
            "import collections\n"
            + BLOB_TOOLS.strip()
            + "\n\n"
            + """
arr = np.asarray(image)
blobs = describe_blobs(arr, min_pixels=40)
kinds = collections.Counter(f"{b['colour']} {b['shape']}" for b in blobs)
print(f"{len(blobs)} coloured shapes:", dict(kinds))
""".strip()
            + "\n"
        )
        return [turn1, turn2]


# ============================================================================================
# 4. chart_reading
# ============================================================================================

CATEGORIES = [
    "Apple", "Pear", "Plum", "Kiwi", "Lime", "Fig", "Date", "Mango", "Peach", "Grape",
    "Melon", "Lemon", "Cherry", "Guava", "Olive", "Berry", "Quince", "Papaya",
]  # fmt: skip
STEPS = (1, 2, 5, 10, 20, 25, 50)


class ChartReading(ImageTaskFamily):
    """Read values off a rendered bar or line chart (axis ticks, gridlines, category labels)."""

    name = "chart_reading"
    description = "Read a bar or line chart: the value of a named category, the highest/lowest one, or a difference."
    salt = 104

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = int(rng.integers(720, 961)), int(rng.integers(520, 641))
        left, right, top, bottom = 80, 30, 50, 70
        axis_x, base_y = left, height - bottom
        plot_h = base_y - top
        n_ticks = int(rng.integers(4, 9))
        allowed = [s for s in STEPS if s * n_ticks <= plot_h / 2.2 and (difficulty or s <= 5)]
        step = allowed[int(rng.integers(len(allowed)))]
        y_max = step * n_ticks
        ppu = plot_h / y_max  # pixels per unit, at least 2.2
        n_cat = (4, 6, 8)[difficulty]
        names = [CATEGORIES[i] for i in rng.choice(len(CATEGORIES), n_cat, replace=False)]
        kind = "bar" if difficulty == 0 or rng.random() < 0.6 else "line"
        v_min = max(1, math.ceil(10 / ppu))
        while True:
            values = [int(v) for v in rng.integers(v_min, y_max + 1, size=n_cat)]
            if sorted(values)[-1] != sorted(values)[-2] and sorted(values)[0] != sorted(values)[1]:
                break

        image = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        label_size = int(rng.integers(12, 16))
        tick_size = int(rng.integers(12, 16))
        title = f"{['Sales', 'Harvest', 'Orders', 'Stock'][int(rng.integers(4))]} by fruit"
        tw = dr.font(16).getlength(title)
        draw.text((int(width / 2 - tw / 2), 14), title, fill=(0, 0, 0), font=dr.font(16))
        grid_rows = []
        for k in range(n_ticks + 1):
            y = base_y - round(k * step * ppu)
            grid_rows.append(y)
            if k:
                draw.line([(axis_x + 2, y), (width - right, y)], fill=(225, 225, 225), width=1)
            label = str(k * step)
            lw = dr.spaced_text_width(label, tick_size)
            _, t, _, b = dr.font(tick_size).getbbox("0")
            dr.draw_spaced_text(draw, (axis_x - 8 - lw, int(y - (t + b) / 2)), label, tick_size)
        plot_w = width - right - axis_x - 2
        slot = plot_w / n_cat
        centres = [int(axis_x + 2 + slot * (i + 0.5)) for i in range(n_cat)]
        tops = [base_y - round(v * ppu) for v in values]
        if kind == "bar":
            bw = int(slot * rng.uniform(0.45, 0.7))
            colours = (
                [dr.PALETTE[dr.COLOUR_NAMES[int(rng.integers(8))]]] * n_cat
                if difficulty == 0
                else [dr.PALETTE[dr.COLOUR_NAMES[int(i)]] for i in rng.integers(0, 8, size=n_cat)]
            )
            for cx, ty, colour in zip(centres, tops, colours, strict=True):
                draw.rectangle([cx - bw // 2, ty, cx - bw // 2 + bw - 1, base_y - 1], fill=colour)
        else:
            line_colour = dr.PALETTE[dr.COLOUR_NAMES[int(rng.integers(8))]]
            draw.line(list(zip(centres, tops, strict=True)), fill=line_colour, width=2)
            r = 4
            for cx, ty in zip(centres, tops, strict=True):
                draw.ellipse([cx - r, ty - r, cx + r, ty + r], fill=(30, 30, 30))
        # axes on top of everything
        draw.rectangle([axis_x, top - 8, axis_x + 1, base_y + 1], fill=(0, 0, 0))
        draw.rectangle([axis_x, base_y, width - right, base_y + 1], fill=(0, 0, 0))
        for cx, name in zip(centres, names, strict=True):
            nw = dr.font(label_size).getlength(name)
            draw.text((int(cx - nw / 2), base_y + 10), name, fill=(0, 0, 0), font=dr.font(label_size))

        chart = "bar chart" if kind == "bar" else "line chart (one marker per fruit)"
        questions = ["value", "highest"] + (["difference", "lowest"] if difficulty else [])
        ask = questions[int(rng.integers(len(questions)))]
        options = None
        tolerance = 0.0
        if ask == "value":
            i = int(rng.integers(n_cat))
            question = f"In this {chart}, what is the value for {names[i]}? Answer with a single integer."
            answer, answer_type = str(values[i]), "number"
        elif ask == "difference":
            i, j = (int(v) for v in rng.choice(n_cat, 2, replace=False))
            while values[i] == values[j]:
                i, j = (int(v) for v in rng.choice(n_cat, 2, replace=False))
            if values[i] < values[j]:
                i, j = j, i
            question = (
                f"In this {chart}, how much larger is the value for {names[i]} than the value for "
                f"{names[j]}? Answer with a single integer."
            )
            answer, answer_type = str(values[i] - values[j]), "number"
        else:
            pick = int(np.argmax(values)) if ask == "highest" else int(np.argmin(values))
            options = pick_options(rng, names[pick], names)
            question = format_choices(f"In this {chart}, which fruit has the {ask} value?", options)
            answer, answer_type = LETTERS[options.index(names[pick])], "choice"
        return self.make_task(
            seed,
            difficulty,
            question,
            answer,
            answer_type,
            image,
            options=options,
            tolerance=tolerance,
            metadata={"kind": kind, "ask": ask, "names": names, "values": values, "step": step, "y_max": y_max},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        bar = "bar chart" in q
        find_marks = (
            """
# Bars: saturated blobs standing on the x-axis.
top_row = min(grid_rows) - 12  # the title above the plot is not data
saturation = (high - low)[top_row:baseline, axis_x + 3:]
labels, count = ndimage.label(saturation > 80)
marks = []
for box in ndimage.find_objects(labels):
    marks.append({"x": axis_x + 3 + (box[1].start + box[1].stop - 1) / 2, "y": top_row + box[0].start})
"""
            if bar
            else """
# Markers: dark dots inside the plot area (the line itself is coloured, gridlines light grey).
top_row = min(grid_rows) - 12  # the title above the plot is not data
labels, count = ndimage.label(dark[top_row:baseline - 1, axis_x + 3:])
marks = []
for index, box in enumerate(ndimage.find_objects(labels)):
    ys, xs = np.nonzero(labels[box] == index + 1)
    if len(ys) >= 20:
        marks.append({"x": axis_x + 3 + box[1].start + xs.mean(), "y": top_row + box[0].start + ys.mean()})
"""
        )
        turn1 = (
            """
import numpy as np
from scipy import ndimage

arr = np.asarray(image)
high = np.maximum(np.maximum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
low = np.minimum(np.minimum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
dark = high < 90
# The x-axis is the darkest long row, the y-axis the darkest long column.
row_counts, col_counts = dark.sum(axis=1), dark.sum(axis=0)
baseline = int(np.nonzero(row_counts >= 0.9 * row_counts.max())[0].min())
axis_x = int(np.nonzero(col_counts >= 0.9 * col_counts.max())[0].min())
# Gridlines: rows of light grey pixels across the plot.
light = (low >= 205) & (high <= 240) & (high - low < 6)
light_counts = light[:, axis_x + 3:].sum(axis=1)
grid_rows = [int(r) for r in np.nonzero(light_counts > 0.2 * (arr.shape[1] - axis_x))[0] if r < baseline]
print(f"x-axis at row {baseline}, y-axis at column {axis_x}, gridlines at rows {grid_rows}")
"""
            + find_marks
            + """
marks.sort(key=lambda m: m["x"])
print(f"{len(marks)} data marks, tops/centres at rows", [round(m["y"], 1) for m in marks])
"""
        ).strip() + "\n"
        names: list[str] = []
        if task.options:
            names = list(task.options)
        else:
            names = [n for n in CATEGORIES if f"value for {n}?" in q]
            if "how much larger" in q:
                first = q.split("value for ")[1].split(" than")[0]
                names = [first, q.split("value for ")[2].split("?")[0]]
        turn2 = (
            OCR_TOOLS.strip()
            + "\n\n"
            + """
# Read the numbers left of the y-axis: each line of text there is one tick label.
tick_area = darkness(image.crop((0, 0, axis_x - 2, baseline + 12)))
inked_rows = (tick_area > 60).any(axis=1)
ticks = []
row = 0
while row < len(inked_rows):
    if inked_rows[row]:
        end = row
        while end < len(inked_rows) and inked_rows[end]:
            end = end + 1
        band = tick_area[row:end]
        value = int(read_line(band, "0123456789"))
        centre = (row + end - 1) / 2
        line_row = min(grid_rows + [baseline], key=lambda r: abs(r - centre))
        ticks.append((line_row, value))
        row = end
    else:
        row = row + 1
print("tick labels (row, value):", ticks)
slope, intercept = np.polyfit([t[0] for t in ticks], [t[1] for t in ticks], 1)
for m in marks:
    m["value"] = slope * m["y"] + intercept
print("values:", [round(m["value"], 2) for m in marks])

# Category labels sit under each mark; compare them with renderings of the candidate names.
gap = (marks[1]["x"] - marks[0]["x"]) if len(marks) > 1 else 80
labels_ink = [
    tight(darkness(image.crop((int(m["x"] - gap / 2), baseline + 3, int(m["x"] + gap / 2), baseline + 45))))
    for m in marks
]


def name_score(label_ink, name):
    return min(difference(label_ink, render(name, size)) for size in range(8, 30))


def mark_of(name):
    scores = [name_score(ink, name) for ink in labels_ink]
    return marks[int(np.argmin(scores))]
"""
        ).strip() + "\n"
        if task.options:
            which = "max" if "highest" in q else "min"
            decide = code(
                f"""
options = $options  # from the question
extreme = {which}(marks, key=lambda m: m["value"])
label_ink = labels_ink[marks.index(extreme)]
choice = min(options, key=lambda name: name_score(label_ink, name))
print(f"{'highest' if which == 'max' else 'lowest'} mark: {{extreme['value']:.2f}}, labelled {{choice}}")
print("ABCDEFGH"[options.index(choice)])
""",
                options=names,
            )
        elif "how much larger" in q:
            decide = code(
                """
first, second = mark_of($first), mark_of($second)
print(f"{$first}: {first['value']:.2f}, {$second}: {second['value']:.2f}")
print(round(first["value"]) - round(second["value"]))
""",
                first=names[0],
                second=names[1],
            )
        else:
            decide = code(
                """
mark = mark_of($name)
print(f"{$name}: {mark['value']:.2f}")
print(round(mark["value"]))
""",
                name=names[0],
            )
        return [turn1, turn2 + "\n" + decide]


# ============================================================================================
# 5. text_reading
# ============================================================================================

TEXT_WIDTHS = {0: (2000, 3000), 1: (3000, 4500), 2: (4500, 6000)}
CODE_PATTERNS = {0: ("LLL-DDD", "LLDD", "DLL-DD"), 1: ("LLD-DDD", "DLL-LDD", "LLLL-DD"), 2: ("LLDL-DDLD", "DLLD-LDDL", "LLD-LDD-DL")}
TAG_PAPERS = [(250, 235, 140), (170, 210, 250), (190, 240, 180), (250, 200, 210), (220, 220, 220)]


def paste_somewhere(
    rng: np.random.Generator, image: Image.Image, patch: Image.Image, taken: list[tuple[int, int, int, int]], margin: int = 30
) -> tuple[int, int, int, int]:
    """Paste ``patch`` at a random spot not overlapping ``taken`` (with a 20 px gap); return its box."""
    for _ in range(1000):
        x = int(rng.integers(margin, image.width - margin - patch.width))
        y = int(rng.integers(margin, image.height - margin - patch.height))
        box = (x, y, x + patch.width, y + patch.height)
        if all(box[2] + 20 <= t[0] or t[2] + 20 <= box[0] or box[3] + 20 <= t[1] or t[3] + 20 <= box[1] for t in taken):
            break
    image.paste(patch, (x, y))
    taken.append(box)
    return box


def tag_reading_turns() -> list[str]:
    """The expert's two turns for a white tag with a printed code: find it, then read it."""
    find = "import numpy as np\nfrom scipy import ndimage\n\n" + WHITE_SCAN.strip() + "\n"
    read = (
        OCR_TOOLS.strip()
        + "\n\n"
        + code(
            """
ink = darkness(inside)
text = read_line(ink, $alphabet)
print(f"{len(split_glyphs(ink))} characters on the tag")
print(text)
""",
            alphabet=CODE_ALPHABET,
        )
    )
    return [find, read]


class TextReading(ImageTaskFamily):
    """Read a small printed code off a white tag hidden in a large cluttered image."""

    name = "text_reading"
    description = "Read a small code (e.g. K7Q-482) printed on a white tag somewhere in a 2K-6K cluttered image."
    salt = 105

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, TEXT_WIDTHS, difficulty)
        image, _, _ = cluttered_search_canvas(rng, width, height, difficulty)
        draw = ImageDraw.Draw(image)
        for _ in range((0, 12, 30)[difficulty]):  # loose grey lettering, not on any tag
            x, y = int(rng.integers(0, width - 200)), int(rng.integers(0, height - 40))
            pattern = CODE_PATTERNS[difficulty][int(rng.integers(3))]
            draw.text((x, y), dr.random_code(rng, pattern), fill=dr.muted_colour(rng, (30, 90)), font=dr.font(int(rng.integers(10, 20))))
        lo, hi = ((13, 16), (11, 14), (10, 12))[difficulty]
        taken: list[tuple[int, int, int, int]] = []
        patterns = CODE_PATTERNS[difficulty]
        answer = dr.random_code(rng, patterns[int(rng.integers(len(patterns)))])
        size = int(rng.integers(lo, hi + 1))
        tag = dr.text_tag(answer, size, (255, 255, 255), pad=int(rng.integers(6, 9)))
        box = paste_somewhere(rng, image, tag, taken)
        for _ in range((0, 2, 4)[difficulty]):  # decoy tags on coloured paper
            decoy = dr.random_code(rng, patterns[int(rng.integers(len(patterns)))])
            paper = TAG_PAPERS[int(rng.integers(len(TAG_PAPERS)))]
            paste_somewhere(rng, image, dr.text_tag(decoy, size, paper, pad=int(rng.integers(6, 9))), taken)
        cap = dr.font(size).getbbox("H")
        stem = (
            "A small white tag with a thin dark border is hidden somewhere in this large image. "
            "What code is printed on it? Answer with the code exactly as printed."
        )
        if difficulty:
            stem = stem.replace("hidden somewhere", "hidden (among tags of other colours)")
        return self.make_task(
            seed,
            difficulty,
            stem,
            answer,
            "string",
            image,
            metadata={"tag_bbox": list(box), "font_size": size, "cap_height": cap[3] - cap[1], "target_bbox": list(box)},
        )

    def expert(self, task: Task) -> list[str]:
        return tag_reading_turns()


# ============================================================================================
# 6. measurement
# ============================================================================================

HUE_MASK = """
import numpy as np
from scipy import ndimage

HUES = {"red": 0, "orange": 31, "yellow": 54, "green": 130, "cyan": 183, "blue": 228, "purple": 273, "magenta": 318}


def colour_mask(arr, name, tolerance=10):
    \"\"\"Saturated pixels whose hue is within `tolerance` degrees of the named colour.\"\"\"
    high = np.maximum(np.maximum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
    low = np.minimum(np.minimum(arr[:, :, 0], arr[:, :, 1]), arr[:, :, 2])
    saturated = (high - low) > 80
    px = arr[saturated].astype(float)  # only the saturated pixels need a hue
    r, g, b = px[:, 0], px[:, 1], px[:, 2]
    top, spread = px.max(axis=1), px.max(axis=1) - px.min(axis=1)
    hue = 60 * np.where(top == r, ((g - b) / spread) % 6, np.where(top == g, (b - r) / spread + 2, (r - g) / spread + 4))
    gap = np.abs(hue - HUES[name]) % 360
    mask = np.zeros(saturated.shape, dtype=bool)
    mask[saturated] = np.minimum(gap, 360 - gap) < tolerance
    return mask


def principal_axis(mask):
    \"\"\"Centre and unit direction (x, y) of the long axis of the mask's pixels.\"\"\"
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(float)
    centre = pts.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov((pts - centre).T))
    return centre, vectors[:, int(np.argmax(values))], pts


arr = np.asarray(image)
print(f"image {image.width}x{image.height}")
"""


class Measurement(ImageTaskFamily):
    """Measure lengths, angles and areas of drawn shapes in pixels / degrees."""

    name = "measurement"
    description = "Measure a drawn segment's length, the angle between two lines, or a shape's area in pixels."
    salt = 106

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = ((800, 600), (1000, 750), (1200, 900))[difficulty]
        image = Image.new("RGB", (width, height), (255, 255, 255))
        draw = ImageDraw.Draw(image)
        if difficulty:
            spacing = int(rng.choice([25, 40, 50]))
            for x in range(0, width, spacing):
                draw.line([(x, 0), (x, height)], fill=(228, 228, 228))
            for y in range(0, height, spacing):
                draw.line([(0, y), (width, y)], fill=(228, 228, 228))
        kind = ("length", "angle", "area")[int(rng.integers(3))]
        colours = [dr.COLOUR_NAMES[i] for i in rng.permutation(8)]
        n_distract = (0, 3, 7)[difficulty]
        distract_colours = colours[2:]
        line_width = int(rng.integers(2, 4)) if difficulty < 2 else 2

        def random_point(margin: int = 40) -> tuple[float, float]:
            return float(rng.uniform(margin, width - margin)), float(rng.uniform(margin, height - margin))

        metadata: dict[str, Any] = {"kind": kind}
        if kind in ("length", "angle"):
            for _ in range(n_distract):  # distractor segments in other colours, underneath
                p, q = random_point(), random_point()
                draw.line([p, q], fill=dr.PALETTE[distract_colours[int(rng.integers(len(distract_colours)))]], width=line_width)
        if kind == "length":
            while True:
                p, q = random_point(), random_point()
                length = math.dist(p, q)
                if 150 <= length <= 0.9 * min(width, height) + 100:
                    break
            draw.line([p, q], fill=dr.PALETTE[colours[0]], width=line_width)
            question = (
                f"What is the length, in pixels, of the {colours[0]} line segment (the distance between its two "
                "ends)? Answer with a number."
            )
            value = length
            metadata.update(endpoints=[p, q])
        elif kind == "angle":
            angle = float(rng.uniform(20, 88))
            theta = float(rng.uniform(0, 180))
            cx, cy = width / 2 + rng.uniform(-0.15, 0.15) * width, height / 2 + rng.uniform(-0.15, 0.15) * height
            for k, direction in enumerate((theta, theta + angle)):
                rad = math.radians(direction)
                half_a, half_b = rng.uniform(150, 0.42 * height), rng.uniform(150, 0.42 * height)
                p = (cx - half_a * math.cos(rad), cy - half_a * math.sin(rad))
                q = (cx + half_b * math.cos(rad), cy + half_b * math.sin(rad))
                draw.line([p, q], fill=dr.PALETTE[colours[k]], width=line_width)
            question = (
                f"The {colours[0]} line and the {colours[1]} line cross. What is the smaller angle between them, "
                "in degrees? Answer with a number."
            )
            value = angle
            metadata.update(theta=theta)
        else:
            shape = "rectangle" if difficulty == 0 else ("rectangle", "circle", "triangle")[int(rng.integers(3))]
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
                while True:
                    pts = [(cx + rng.uniform(-0.3, 0.3) * width, cy + rng.uniform(-0.3, 0.3) * height) for _ in range(3)]
                    (x1, y1), (x2, y2), (x3, y3) = pts
                    area2 = abs((x2 - x1) * (y3 - y1) - (x3 - x1) * (y2 - y1))
                    sides = [math.dist(pts[i], pts[(i + 1) % 3]) for i in range(3)]
                    if area2 / 2 >= 15000 and min(sides) >= 120:
                        break
                mdraw.polygon(pts, fill=255)
            target = np.asarray(mask) > 0
            ys, xs = np.nonzero(target)
            tbox = (int(xs.min()) - 12, int(ys.min()) - 12, int(xs.max()) + 12, int(ys.max()) + 12)
            placed = 0
            for _ in range(200):  # distractor shapes in other colours, clear of the target
                if placed >= n_distract:
                    break
                s = int(rng.integers(30, 90))
                x, y = int(rng.integers(10, width - s - 10)), int(rng.integers(10, height - s - 10))
                if x + s < tbox[0] or x > tbox[2] or y + s < tbox[1] or y > tbox[3]:
                    dr.draw_shape(draw, dr.SHAPES[int(rng.integers(4))], x, y, s, dr.PALETTE[distract_colours[int(rng.integers(len(distract_colours)))]])
                    placed += 1
            image.paste(dr.PALETTE[colours[0]], mask=mask)
            value = float(target.sum())
            question = (
                f"What is the area of the {colours[0]} {shape}, in pixels (the number of pixels it covers)? "
                "Answer with a number."
            )
            metadata.update(shape=shape)
        metadata.update(colours=colours[:2], value=value)
        answer_type: AnswerType = "mra" if kind == "area" else "number"
        return self.make_task(
            seed,
            difficulty,
            question,
            f"{value:.1f}" if kind != "area" else str(int(value)),
            answer_type,
            image,
            tolerance=0.03,
            metadata=metadata,
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        turn1 = HUE_MASK.strip() + "\n"
        if "length" in q:
            colours = re.findall(r"of the (\w+) line segment", q)
            turn2 = code(
                """
mask = colour_mask(arr, $colour)
centre, direction, pts = principal_axis(mask)
along = (pts - centre) @ direction
print(f"{int(mask.sum())} {$colour} pixels; segment runs along direction {direction.round(3)}")
print(round(float(along.max() - along.min()), 1))
""",
                colour=colours[0],
            )
        elif "smaller angle" in q:
            colours = list(re.findall(r"The (\w+) line and the (\w+) line", q)[0])
            turn2 = code(
                """
directions = []
for name in ($first, $second):
    centre, direction, pts = principal_axis(colour_mask(arr, name))
    directions.append(direction)
    print(f"{name} line direction: {direction.round(4)}")
cosine = abs(float(directions[0] @ directions[1]))
print(round(float(np.degrees(np.arccos(min(1.0, cosine)))), 1))
""",
                first=colours[0],
                second=colours[1],
            )
        else:
            colour = re.findall(r"area of the (\w+) ", q)[0]
            turn2 = code(
                """
mask = colour_mask(arr, $colour)
labels, count = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
sizes = np.bincount(labels.ravel())
print(f"{count} {$colour} regions, pixel counts {sorted(sizes[1:].tolist(), reverse=True)[:5]}")
print(int(sizes[1:].max()))
""",
                colour=colour,
            )
        return [turn1, turn2]


# ============================================================================================
# 7. spatial_relation
# ============================================================================================


class SpatialRelation(ImageTaskFamily):
    """Closest / farthest object from a reference, or which object sits inside a frame."""

    name = "spatial_relation"
    description = "Which object is closest to / farthest from a reference object, or inside a coloured frame."
    salt = 107

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = ((800, 600), (1000, 750), (1200, 900))[difficulty]
        n_obj = (5, 6, 9)[difficulty]
        lo, hi = ((30, 56), (28, 52), (24, 48))[difficulty]
        ask = "inside" if difficulty and rng.random() < 0.35 else ("closest", "farthest")[int(rng.integers(2))]
        n_frames = 0 if ask != "inside" else int(rng.integers(1, 3)) + (difficulty == 2)
        order = rng.permutation(8)
        frame_colours = [dr.COLOUR_NAMES[i] for i in order[:n_frames]]
        object_colours = [dr.COLOUR_NAMES[i] for i in order[n_frames:]]
        if difficulty < 2:
            combos = [(object_colours[i], dr.SHAPES[int(rng.integers(4))]) for i in range(n_obj)]
        else:
            pool = [(c, s) for c in object_colours for s in dr.SHAPES]
            combos = [pool[i] for i in rng.choice(len(pool), n_obj, replace=False)]
        names = [f"{c} {s}" for c, s in combos]
        margin_ratio = (1.3, 1.2, 1.15)[difficulty]

        while True:
            sizes = [int(rng.integers(lo, hi + 1)) for _ in range(n_obj)]
            frames: list[tuple[int, int, int, int]] = []
            corners: list[tuple[int, int]] | None = []
            if n_frames:
                # Frames side by side in their own columns, each holding exactly one object.
                columns = np.linspace(20, width - 20, n_frames + 1)
                for k in range(n_frames):
                    fw = int(rng.integers(150, min(280, int(columns[k + 1] - columns[k]) - 20)))
                    fh = int(rng.integers(150, min(280, height // 2)))
                    fx = int(rng.integers(int(columns[k]), int(columns[k + 1]) - fw))
                    fy = int(rng.integers(20, height - 20 - fh))
                    frames.append((fx, fy, fx + fw, fy + fh))
                for k, (fx0, fy0, fx1, fy1) in enumerate(frames):
                    s = sizes[k]
                    corners.append((int(rng.integers(fx0 + 14, fx1 - 14 - s)), int(rng.integers(fy0 + 14, fy1 - 14 - s))))
                rest = scatter_boxes(rng, width, height, sizes[n_frames:], gap=14, margin=12, avoid=[(f[0] - 8, f[1] - 8, f[2] + 8, f[3] + 8) for f in frames])
                if rest is None:
                    continue
                corners = corners + rest
                break
            corners = scatter_boxes(rng, width, height, sizes, gap=14, margin=12)
            if corners is None:
                continue
            centres = np.array([(x + (s - 1) / 2, y + (s - 1) / 2) for (x, y), s in zip(corners, sizes, strict=True)])
            ref = int(rng.integers(n_obj))
            dist = np.hypot(*(centres - centres[ref]).T)
            others = sorted((float(d), i) for i, d in enumerate(dist) if i != ref)
            if ask == "closest" and others[1][0] >= margin_ratio * others[0][0]:
                answer_idx = others[0][1]
                break
            if ask == "farthest" and others[-1][0] >= margin_ratio * others[-2][0]:
                answer_idx = others[-1][1]
                break

        image = (
            Image.new("RGB", (width, height), (255, 255, 255))
            if difficulty == 0
            else dr.textured_background(rng, width, height, lum=(200, 240), tint=8, tile=256)
        )
        draw = ImageDraw.Draw(image)
        for (fx0, fy0, fx1, fy1), colour in zip(frames, frame_colours, strict=True):
            draw.rectangle([fx0, fy0, fx1, fy1], outline=dr.PALETTE[colour], width=4)
        for (c, s), (x, y), size in zip(combos, corners, sizes, strict=True):
            dr.draw_shape(draw, s, x, y, size, dr.PALETTE[c])

        if ask == "inside":
            k = int(rng.integers(n_frames))
            answer_idx = k
            options = pick_options(rng, names[k], names)
            stem = f"Which object is inside the {frame_colours[k]} frame?"
        else:
            candidates = [n for i, n in enumerate(names) if i != ref]
            options = pick_options(rng, names[answer_idx], candidates)
            word = "closest to" if ask == "closest" else "farthest from"
            stem = f"Which object is {word} the {names[ref]} (measuring between object centres)?"
        return self.make_task(
            seed,
            difficulty,
            format_choices(stem, options),
            LETTERS[options.index(names[answer_idx])],
            "choice",
            image,
            options=options,
            metadata={"ask": ask, "objects": names, "frames": frame_colours, "answer_object": names[answer_idx]},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        options = list(task.options or [])
        turn1 = (
            BLOB_TOOLS.strip()
            + "\n\n"
            + """
arr = np.asarray(image)
blobs = describe_blobs(arr, min_pixels=40)
# Frames are hollow outlines (they fill little of their box); everything else is an object.
frames = [b for b in blobs if b["fill"] < 0.35 and b["size"] > 100]
objects = [b for b in blobs if b not in frames]
for b in objects:
    b["name"] = f"{b['colour']} {b['shape']}"
    print(f"{b['name']} at ({b['x']:.0f}, {b['y']:.0f})")
for f in frames:
    print(f"{f['colour']} frame spanning {f['box']}")
""".strip()
            + "\n"
        )
        if "inside the" in q:
            frame_colour = next(c for c in dr.COLOUR_NAMES if f"inside the {c} frame" in q)
            turn2 = code(
                """
options = $options  # from the question
frame = [f for f in frames if f["colour"] == $frame_colour][0]
x0, y0, x1, y1 = frame["box"]
inside = [b for b in objects if x0 < b["x"] < x1 and y0 < b["y"] < y1]
print("inside the frame:", [b["name"] for b in inside])
answer = inside[0]["name"] if inside else options[0]
print("ABCDEFGH"[options.index(answer)] if answer in options else "A")
""",
                options=options,
                frame_colour=frame_colour,
            )
        else:
            ref = q.split(" the ")[1].split(" (measuring")[0]
            pick = "min" if "closest" in q else "max"
            turn2 = code(
                f"""
options = $options  # from the question
ref = [b for b in objects if b["name"] == $ref][0]
candidates = [b for b in objects if b["name"] in options]
for b in candidates:
    b["distance"] = float(np.hypot(b["x"] - ref["x"], b["y"] - ref["y"]))
    print(f"{{b['name']}}: {{b['distance']:.1f}} px from the {{ref['name']}}")
best = {pick}(candidates, key=lambda b: b["distance"])
print("ABCDEFGH"[options.index(best["name"])])
""",
                options=options,
                ref=ref,
            )
        return [turn1, turn2]


# ============================================================================================
# 8. real_photo_search
# ============================================================================================

PHOTO_WIDTHS = {0: (2400, 3200), 1: (3200, 4400), 2: (4400, 5600)}


class RealPhotoSearch(ImageTaskFamily):
    """A collage of real photographs with a tiny inserted badge or tag to find and read."""

    name = "real_photo_search"
    description = "A tiny badge or code tag pasted into a large collage of real photos: name its colour, shape or code."
    salt = 108

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, PHOTO_WIDTHS, difficulty)
        rows, cols = ((2, 2), (2, 3), (3, 4))[difficulty]
        rows += int(rng.integers(0, 2))
        cols += int(rng.integers(0, 2))
        image = dr.photo_collage(rng, width, height, rows, cols)
        ask = ("colour", "shape", "code")[int(rng.integers(3))]
        margin = 40
        if ask == "code":
            pattern = ("LLD", "LDLD", "LLDDL")[difficulty]
            value = dr.random_code(rng, pattern)
            size = int(rng.integers(*((14, 17), (12, 15), (11, 13))[difficulty]))
            patch = dr.text_tag(value, size, (255, 255, 255), pad=int(rng.integers(6, 8)))
            inner = None
            cap = dr.font(size).getbbox("H")
            cap_height: int | None = cap[3] - cap[1]
        else:
            size = tiny_size(rng, width)
            colour = dr.COLOUR_NAMES[int(rng.integers(8))]
            shape = dr.SHAPES[int(rng.integers(4))]
            pad = int(rng.integers(5, 7))
            patch = dr.shape_badge(shape, dr.PALETTE[colour], size, pad)
            value = colour if ask == "colour" else shape
            inner = pad + 1
            cap_height = None
        x = int(rng.integers(margin, width - margin - patch.width))
        y = int(rng.integers(margin, height - margin - patch.height))
        image.paste(patch, (x, y))
        badge_box = [x, y, x + patch.width, y + patch.height]
        if ask == "code":
            question = (
                "A tiny white tag with a printed code has been pasted somewhere into this collage of photos. "
                "What is the code? Answer with the code exactly as printed."
            )
            answer, answer_type, options = value, "string", None
            target_bbox = badge_box
        else:
            pool = dr.COLOUR_NAMES if ask == "colour" else dr.SHAPES
            options = pick_options(rng, value, pool)
            what = "What colour is the shape on the badge?" if ask == "colour" else "What shape is drawn on the badge?"
            question = format_choices(
                "A tiny white badge with a coloured shape on it has been pasted somewhere into this collage of "
                f"photos. {what}",
                options,
            )
            answer, answer_type = LETTERS[options.index(value)], "choice"
            assert inner is not None
            target_bbox = [x + inner, y + inner, x + inner + size, y + inner + size]
        return self.make_task(
            seed,
            difficulty,
            question,
            answer,
            answer_type,
            image,
            options=options,
            metadata={
                "ask": ask,
                "value": value,
                "badge_bbox": badge_box,
                "target_bbox": target_bbox,
                "grid": [rows, cols],
                "cap_height": cap_height,
            },
        )

    def expert(self, task: Task) -> list[str]:
        turn1, read_turn = tag_reading_turns()
        if task.answer_type == "string":
            return [turn1, read_turn]
        ask_colour = "What colour" in task.question
        turn2 = (
            BLOB_TOOLS.strip()
            + "\n\n"
            + code(
                """
options = $options  # from the question
blobs = describe_blobs(np.asarray(inside), min_pixels=20)
mark = max(blobs, key=lambda b: b["pixels"])
print(f"on the badge: a {mark['colour']} {mark['shape']} of {mark['size']} px")
value = mark["colour"] if $ask_colour else mark["shape"]
if value not in options:
    value = colour_name(np.median(np.asarray(inside).reshape(-1, 3), axis=0), options) if $ask_colour else options[0]
print("ABCDEFGH"[options.index(value)])
""",
                options=list(task.options or []),
                ask_colour=ask_colour,
            )
        )
        return [turn1, turn2]


IMAGE_FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for f in (
        VisualSearchAttribute(),
        VisualSearchRelativePosition(),
        Counting(),
        ChartReading(),
        TextReading(),
        Measurement(),
        SpatialRelation(),
        RealPhotoSearch(),
    )
}
