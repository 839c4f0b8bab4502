"""The room of ``spatial_scene``: furniture layout, the top-down world image and the camera sweep.

The room is drawn once as a large top-down "world" image (floor with a 1 m grid, white
walls, coloured furniture, small yellow chairs) at a fixed scale; the video is a window
that slides over it in a serpentine sweep (translation only), so no frame shows the whole
room. Everything needed is recoverable from pixels: the grid gives the scale and, tracked
from frame to frame, the camera motion; colours identify the objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from .rendering import FRAME_H, FRAME_W, VIDEO_PALETTE, YuvImage, even, paste, shape_mask

PPM = 40  # pixels per metre on the floor
FLOOR = (100, 100, 104)
GRID = (152, 152, 152)
WALL = (235, 235, 235)
OUTSIDE = (22, 22, 26)
PAD = 64  # world-image margin around the room, px
WALL_PX = 8
SEE_BEYOND = 16  # the camera reaches this far past the walls, px

NAMED_COLOURS = ("red", "orange", "green", "cyan", "blue", "magenta")
RECT_NOUNS = ("sofa", "bed", "desk", "cabinet", "bookshelf", "dresser", "table", "rug")
ROUND_NOUNS = ("round table", "ottoman", "plant pot", "floor lamp", "round rug", "side table")
ITEM_NOUN = "chairs"
ITEM_PX = 18

# per difficulty: fps choices, duration range (s), room width range (m), room depth range (m),
# number of named objects, number of yellow chairs
SCENE_LEVELS: dict[int, dict[str, Any]] = {
    0: {"fps": (10, 12), "dur": (10.0, 15.0), "w": (7.0, 8.0), "h": (5.5, 6.0), "named": (3, 3), "items": (2, 4)},
    1: {"fps": (6,), "dur": (42.0, 58.0), "w": (10.0, 12.0), "h": (7.5, 9.0), "named": (4, 5), "items": (3, 6)},
    2: {"fps": (3,), "dur": (150.0, 220.0), "w": (13.0, 15.0), "h": (9.5, 11.0), "named": (5, 6), "items": (4, 9)},
}


class SceneObject:
    """One piece of furniture: colour, noun, shape and its box in room pixels."""

    def __init__(self, colour: str, noun: str, shape: str, x0: int, y0: int, w: int, h: int) -> None:
        self.colour, self.noun, self.shape = colour, noun, shape
        self.x0, self.y0, self.w, self.h = x0, y0, w, h

    @property
    def label(self) -> str:
        return f"{self.colour} {self.noun}"

    @property
    def centre(self) -> np.ndarray:
        """Centre in metres (room coordinates, x right, y down in the top-down view)."""
        return np.array([self.x0 + self.w / 2.0, self.y0 + self.h / 2.0]) / PPM

    def clearance(self, other: SceneObject) -> float:
        """Gap in px between the two boxes (negative when they overlap)."""
        dx = max(other.x0 - (self.x0 + self.w), self.x0 - (other.x0 + other.w))
        dy = max(other.y0 - (self.y0 + self.h), self.y0 - (other.y0 + other.h))
        return float(max(dx, dy))


def relative_side(stand: np.ndarray, face: np.ndarray, target: np.ndarray) -> float:
    """Signed angle (degrees) of ``target`` seen from ``stand`` facing ``face``; positive = left.

    Inputs are top-down image coordinates (y down), so y is flipped to get a
    counter-clockwise-positive angle as seen from above.
    """
    f = face - stand
    t = target - stand
    fx, fy, tx, ty = f[0], -f[1], t[0], -t[1]
    return math.degrees(math.atan2(fx * ty - fy * tx, fx * tx + fy * ty))


def _free_spot(
    rng: np.random.Generator, placed: list[SceneObject], rw: int, rh: int, w: int, h: int, gap: int
) -> tuple[int, int] | None:
    """A corner for a ``w×h`` box at least ``gap`` px from every placed box (200 tries)."""
    for _try in range(200):
        x0 = even(rng.uniform(8, rw - w - 8))
        y0 = even(rng.uniform(8, rh - h - 8))
        cand = SceneObject("", "", "", x0, y0, w, h)
        if all(cand.clearance(o) >= gap for o in placed):
            return x0, y0
    return None


def layout(
    rng: np.random.Generator, level: dict[str, Any], rw: int, rh: int
) -> tuple[list[SceneObject], list[SceneObject]] | None:
    """The named furniture (one per colour) and the yellow chairs, or None when they don't fit."""
    lo, hi = level["named"]
    k = int(rng.integers(lo, hi + 1))
    colours = [str(c) for c in rng.choice(NAMED_COLOURS, size=k, replace=False)]
    placed: list[SceneObject] = []
    used_nouns: set[str] = set()
    for c in colours:
        if rng.random() < 0.6:
            shape = "rect"
            noun = str(rng.choice([x for x in RECT_NOUNS if x not in used_nouns] or RECT_NOUNS))
            w, h = even(rng.uniform(0.6, 2.4) * PPM), even(rng.uniform(0.6, 2.4) * PPM)
        else:
            shape = "circle"
            noun = str(rng.choice([x for x in ROUND_NOUNS if x not in used_nouns] or ROUND_NOUNS))
            w = h = even(rng.uniform(0.6, 1.6) * PPM)
        used_nouns.add(noun)
        pos = _free_spot(rng, placed, rw, rh, w, h, 16)
        if pos is None:
            return None
        placed.append(SceneObject(c, noun, shape, pos[0], pos[1], w, h))
    named = list(placed)
    m = int(rng.integers(level["items"][0], level["items"][1] + 1))
    items = []
    for _j in range(m):
        pos = _free_spot(rng, placed, rw, rh, ITEM_PX, ITEM_PX, 14)
        if pos is None:
            return None
        chair = SceneObject("yellow", "chair", "rect", pos[0], pos[1], ITEM_PX, ITEM_PX)
        placed.append(chair)
        items.append(chair)
    return named, items


def world_image(rw: int, rh: int, objects: list[SceneObject]) -> np.ndarray:
    """The whole room seen from above (RGB), with a ``PAD`` margin outside the walls."""
    world = np.empty((rh + 2 * PAD, rw + 2 * PAD, 3), dtype=np.uint8)
    world[:] = OUTSIDE
    world[PAD - WALL_PX : PAD + rh + WALL_PX, PAD - WALL_PX : PAD + rw + WALL_PX] = WALL
    room = world[PAD : PAD + rh, PAD : PAD + rw]
    room[:] = FLOOR
    for x in range(PPM, rw, PPM):
        room[:, x : x + 2] = GRID
    for y in range(PPM, rh, PPM):
        room[y : y + 2, :] = GRID
    for o in objects:
        mask = shape_mask("rect" if o.shape == "rect" else "circle", o.w, o.h)
        paste(room, mask, VIDEO_PALETTE[o.colour], o.x0, o.y0)
    return world


def camera_sweep(
    rng: np.random.Generator, rw: int, rh: int, n: int, max_dim: int
) -> list[tuple[int, int]] | None:
    """Serpentine sweep of the window's top-left corner (world px, even), ``n`` frames."""
    xa, xb = PAD - SEE_BEYOND, PAD + rw + SEE_BEYOND - FRAME_W
    ya, yb = PAD - SEE_BEYOND, PAD + rh + SEE_BEYOND - FRAME_H
    step_max = FRAME_H - max_dim - 8
    rows = max(2, math.ceil((yb - ya) / step_max) + 1)
    ys = np.linspace(ya, yb, rows)
    if rng.random() < 0.5:
        ys = ys[::-1]
    left_first = rng.random() < 0.5
    way = []
    for r, y in enumerate(ys):
        a, b = (xa, xb) if (r % 2 == 0) == left_first else (xb, xa)
        way += [(a, y), (b, y)]
    way_arr = np.array(way, dtype=float)
    seg = np.linalg.norm(np.diff(way_arr, axis=0), axis=1)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    total = cum[-1]
    if total / (n - 1) > 5.0:  # keep steps small enough to track the grid at stride 2
        return None
    s = np.linspace(0.0, total, n)
    px = np.interp(s, cum, way_arr[:, 0])
    py = np.interp(s, cum, way_arr[:, 1])
    return [(even(x), even(y)) for x, y in zip(px, py, strict=True)]


def window_frames(world: np.ndarray, cams: list[tuple[int, int]]) -> Iterator[np.ndarray]:
    """Packed yuv420p frames: the window at each camera corner (repeats yield the same array)."""
    planes = YuvImage.from_rgb(world)  # converted once; frames are crops
    last, frame = None, None
    for cx, cy in cams:
        if (cx, cy) != last:
            frame = planes.crop(cx, cy, FRAME_W, FRAME_H).packed()
            last = (cx, cy)
        yield frame
