"""Layout helpers used by several image families: canvas sizes, cluttered canvases, placement.

Every function draws its random numbers from the caller's generator in a fixed order (that
order pins the pixels of the frozen suites).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from . import drawing as dr

Box = tuple[int, int, int, int]

# Canvas widths (min, max) per difficulty of the two tiny-object search families.
SEARCH_WIDTHS = {0: (2400, 3200), 1: (3200, 5000), 2: (5000, 8000)}


def search_size(rng: np.random.Generator, ranges: dict[int, tuple[int, int]], difficulty: int) -> tuple[int, int]:
    """Canvas width in the difficulty's range and a height of 50-62% of it."""
    lo, hi = ranges[difficulty]
    width = int(rng.integers(lo, hi + 1))
    return width, int(width * rng.uniform(0.5, 0.62))


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


def tiny_size(rng: np.random.Generator, width: int) -> int:
    """Side of a tiny target: 12-16 px, and at most ~5.5 px once the canvas is shown 1000 px wide."""
    return int(rng.integers(12, min(16, int(5.5 * width / 1000)) + 1))


def scatter_boxes(
    rng: np.random.Generator,
    width: int,
    height: int,
    sizes: list[int],
    gap: int,
    margin: int = 10,
    avoid: list[Box] | None = None,
) -> list[tuple[int, int]] | None:
    """Top-left corners for square boxes of the given sizes that keep ``gap`` px apart.

    Returns None if the rejection sampling gives up (the caller then tries another layout).
    """
    boxes: list[Box] = list(avoid or [])
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
