"""``spatial_scene``: VSI-Bench-like questions about a room seen by a sliding top-down camera.

The room is drawn once as a large top-down "world" image (floor with a 1 m grid, white
walls, coloured furniture, small yellow chairs) at a fixed scale; the video is a window
that slides over it in a serpentine sweep (translation only), so no frame shows the whole
room. Everything needed is recoverable from pixels: the grid gives the scale and, tracked
from frame to frame, the camera motion; colours identify the objects.

Question subtypes: relative direction and relative distance (multiple choice), object
count (exact integer), object size and centre-to-centre distance in metres (MRA).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .base import Task
from .video_rendering import (
    FRAME_H,
    FRAME_W,
    LETTERS,
    PALETTE,
    VideoFamily,
    YuvImage,
    a_an,
    choice_options,
    code,
    even,
    fmt_number,
    options_text,
    paste,
    shape_mask,
)

PPM = 40  # pixels per metre on the floor
FLOOR = (100, 100, 104)
GRID = (152, 152, 152)
WALL = (235, 235, 235)
OUTSIDE = (22, 22, 26)
PAD = 64  # world-image margin around the room, px
WALL_PX = 8
SEE_BEYOND = 16  # the camera reaches this far past the walls, px

NAMED_COLORS = ("red", "orange", "green", "cyan", "blue", "magenta")
RECT_NOUNS = ("sofa", "bed", "desk", "cabinet", "bookshelf", "dresser", "table", "rug")
ROUND_NOUNS = ("round table", "ottoman", "plant pot", "floor lamp", "round rug", "side table")
ITEM_NOUN = "chairs"
ITEM_PX = 18

# per difficulty: fps choices, duration range (s), room width range (m), room depth range (m),
# number of named objects, number of yellow chairs
SCENE_LEVELS: dict[int, dict[str, Any]] = {
    0: {
        "fps": (10, 12),
        "dur": (10.0, 15.0),
        "w": (7.0, 8.0),
        "h": (5.5, 6.0),
        "named": (3, 3),
        "items": (2, 4),
    },
    1: {
        "fps": (6,),
        "dur": (42.0, 58.0),
        "w": (10.0, 12.0),
        "h": (7.5, 9.0),
        "named": (4, 5),
        "items": (3, 6),
    },
    2: {
        "fps": (3,),
        "dur": (150.0, 220.0),
        "w": (13.0, 15.0),
        "h": (9.5, 11.0),
        "named": (5, 6),
        "items": (4, 9),
    },
}

SUBTYPES = ("direction", "closest", "count", "size", "distance")


class SceneObject:
    """One piece of furniture: colour, noun, shape and its box in room pixels."""

    def __init__(self, color: str, noun: str, shape: str, x0: int, y0: int, w: int, h: int) -> None:
        self.color, self.noun, self.shape = color, noun, shape
        self.x0, self.y0, self.w, self.h = x0, y0, w, h

    @property
    def label(self) -> str:
        return f"{self.color} {self.noun}"

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


SCENE_T1 = """$prelude
import math
from collections import Counter
n = len(video)
fps = video.fps
print(video)


def grid_mask(f):
    # light-grey grid-line pixels (frames or batches)
    f = np.asarray(f).astype(np.int16)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = np.maximum(np.maximum(r, g), b)
    mn = np.minimum(np.minimum(r, g), b)
    return (mx - mn < 25) & (mx > 125) & (mx < 190)


# the tile size in pixels: the commonest gap between neighbouring grid lines (columns and
# rows of three frames; furniture may hide a line, a wall edge may look like one)
gaps = []
for f in video.get_batch([0, n // 2, n - 1]):
    g = grid_mask(f)
    for prof in (g.mean(axis=0), g.mean(axis=1)):
        lines = np.flatnonzero(prof > 0.25 * prof.max())
        starts = [int(c) for k, c in enumerate(lines) if k == 0 or c != lines[k - 1] + 1]
        gaps.extend(int(d) for d in np.diff(starts) if d >= 8)
P = Counter(gaps).most_common(1)[0][0]
print("gaps between grid lines:", sorted(Counter(gaps).items()), "-> one tile (1 m) =", P, "px")
"""

SCENE_T2 = """# Track the camera: the grid's offset (mod P) in each sampled frame, unwrapped over time.
def fold(prof):
    # prof: (frames, length) fraction of grid pixels per column (or row) -> score per offset
    onehot = ((np.arange(prof.shape[1])[:, None] % P) == np.arange(P)[None, :]).astype(float)
    s = np.dot(prof, onehot)
    return s + np.roll(s, -1, axis=1)  # lines are 2 px wide


def offsets(batch):
    b = np.asarray(batch)
    ox = fold(grid_mask(b[:, ::4]).mean(axis=1)).argmax(axis=1)
    oy = fold(grid_mask(b[:, :, ::4]).mean(axis=2)).argmax(axis=1)
    return list(zip(ox.tolist(), oy.tolist()))


def track(stride):
    # decoding runs of consecutive frames is cheaper than seeking to scattered ones
    idx, offs, kept = [], [], []
    for start in range(0, n, 96):
        stop = min(n, start + 96)
        batch = video.get_batch(range(start, stop))[::stride]
        idx.extend(range(start, stop, stride))
        offs.extend(offsets(batch))
        kept.extend(batch[::3].copy())  # a copy lets the rest of the chunk be freed
        last = batch[-1]
    cam = [(0, 0)]
    worst = 0
    for a, b in zip(offs, offs[1:]):
        d = [((b[k] - a[k] + P // 2) % P) - P // 2 for k in range(2)]
        worst = max(worst, abs(d[0]), abs(d[1]))
        cam.append((cam[-1][0] - d[0], cam[-1][1] - d[1]))  # content moves opposite to the camera
    return idx, cam, worst, kept, last


idx, cam, worst, kept, last = track(2)
if worst > P // 4:  # too fast to unwrap safely: use every frame
    idx, cam, worst, kept, last = track(1)
xs = [c[0] for c in cam]
ys = [c[1] for c in cam]
print(f"tracked {len(idx)} frames; largest step {worst} px; camera x range {min(xs)}..{max(xs)}, y range {min(ys)}..{max(ys)} px")
"""

SCENE_T3 = """# Stitch the frames into one top-down mosaic of the room, then measure every object in it.
H, W = video.height, video.width
x0, y0 = min(xs), min(ys)
mosaic = np.zeros((H + max(ys) - y0, W + max(xs) - x0, 3), dtype=np.uint8)
for k in range(0, len(idx), 3):
    cx, cy = cam[k]
    mosaic[cy - y0:cy - y0 + H, cx - x0:cx - x0 + W] = kept[k // 3]
cx, cy = cam[-1]
mosaic[cy - y0:cy - y0 + H, cx - x0:cx - x0 + W] = last
objects = {}
chairs = []
for b in find_blobs(mosaic, min_area=60):
    bx0, by0, bx1, by1 = b["box"]
    info = {"centre": ((bx0 + bx1) / 2 / P, (by0 + by1) / 2 / P), "size": ((bx1 - bx0) / P, (by1 - by0) / P), "area": b["area"]}
    if b["color"] == "yellow":
        chairs.append(info)
    elif b["color"] not in objects or b["area"] > objects[b["color"]]["area"]:
        objects[b["color"]] = info
for c, o in objects.items():
    print(f"{c:8s} centre ({o['centre'][0]:.2f}, {o['centre'][1]:.2f}) m, size {o['size'][0]:.2f} x {o['size'][1]:.2f} m")
print("yellow chairs:", len(chairs))
"""

SCENE_DIRECTION = """STAND, FACE, TARGET = $stand, $face, $target
OPTIONS = $options
s, f, t = (np.array(objects[c]["centre"]) for c in (STAND, FACE, TARGET))
fx, fy = f[0] - s[0], -(f[1] - s[1])  # flip y: image rows grow downwards
tx, ty = t[0] - s[0], -(t[1] - s[1])
angle = math.degrees(math.atan2(fx * ty - fy * tx, fx * tx + fy * ty))  # > 0: to the left
side = "left" if angle > 0 else "right"
where = side if "left" in OPTIONS else ("front-" if abs(angle) < 90 else "back-") + side
print(f"the {TARGET} object is {angle:.0f} deg from the facing direction -> {where}")
print("ABCDEFGH"[OPTIONS.index(where)])
"""

SCENE_CLOSEST = """REF = $ref
OPTIONS = $options
r = np.array(objects[REF]["centre"])
dist = {o: float(np.linalg.norm(np.array(objects[o.split(" ")[0]]["centre"]) - r)) for o in OPTIONS}
for o in OPTIONS:
    print(f"{o}: {dist[o]:.2f} m")
print("ABCDEFGH"[OPTIONS.index(min(OPTIONS, key=lambda o: dist[o]))])
"""

SCENE_COUNT = """print(len(chairs))
"""

SCENE_SIZE = """OBJ = $obj
w, h = objects[OBJ]["size"]
print(f"{OBJ}: {w:.2f} m x {h:.2f} m")
print(round(max(w, h), 2))
"""

SCENE_DISTANCE = """A, B = $a, $b
d = float(np.linalg.norm(np.array(objects[A]["centre"]) - np.array(objects[B]["centre"])))
print(f"distance between the {A} and {B} objects: {d:.3f} m")
print(round(d, 2))
"""


class SpatialScene(VideoFamily):
    """Spatial reasoning over a room revealed by a sliding top-down camera."""

    name = "spatial_scene"
    key = 107
    description = (
        "VSI-Bench-like room seen by a sliding top-down camera: relative direction/distance, "
        "object count, sizes and distances in metres."
    )

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        for attempt in range(100):
            rng = (
                self.rng(seed, difficulty)
                if attempt == 0
                else np.random.default_rng([seed, difficulty, self.key, attempt])
            )
            made = self._try(rng, difficulty)
            if made is not None:
                fps, n, world, cams, question, answer, answer_type, options, meta = made

                def frames(world=world, cams=cams) -> Iterator[np.ndarray]:
                    planes = YuvImage.from_rgb(world)  # converted once; frames are crops
                    last, frame = None, None
                    for cx, cy in cams:
                        if (cx, cy) != last:
                            frame = planes.crop(cx, cy, FRAME_W, FRAME_H).packed()
                            last = (cx, cy)
                        yield frame

                return self.make_task(
                    seed,
                    difficulty,
                    cache_dir,
                    question=question,
                    answer=answer,
                    answer_type=answer_type,
                    options=options,
                    tolerance=0.0,
                    fps=fps,
                    num_frames=n,
                    frames=frames,
                    metadata=meta,
                )
        raise RuntimeError("spatial_scene: could not build a scene")

    # -- scene ---------------------------------------------------------------------------
    @staticmethod
    def _layout(rng: np.random.Generator, level: dict[str, Any], rw: int, rh: int):
        lo, hi = level["named"]
        k = int(rng.integers(lo, hi + 1))
        colors = [str(c) for c in rng.choice(NAMED_COLORS, size=k, replace=False)]
        placed: list[SceneObject] = []
        used_nouns: set[str] = set()

        def place(obj_w: int, obj_h: int, gap: int) -> tuple[int, int] | None:
            for _try in range(200):
                x0 = even(rng.uniform(8, rw - obj_w - 8))
                y0 = even(rng.uniform(8, rh - obj_h - 8))
                cand = SceneObject("", "", "", x0, y0, obj_w, obj_h)
                if all(cand.clearance(o) >= gap for o in placed):
                    return x0, y0
            return None

        for c in colors:
            if rng.random() < 0.6:
                shape = "rect"
                noun = str(rng.choice([x for x in RECT_NOUNS if x not in used_nouns] or RECT_NOUNS))
                w, h = even(rng.uniform(0.6, 2.4) * PPM), even(rng.uniform(0.6, 2.4) * PPM)
            else:
                shape = "circle"
                noun = str(
                    rng.choice([x for x in ROUND_NOUNS if x not in used_nouns] or ROUND_NOUNS)
                )
                w = h = even(rng.uniform(0.6, 1.6) * PPM)
            used_nouns.add(noun)
            pos = place(w, h, 16)
            if pos is None:
                return None
            placed.append(SceneObject(c, noun, shape, pos[0], pos[1], w, h))
        named = list(placed)
        m = int(rng.integers(level["items"][0], level["items"][1] + 1))
        items = []
        for _j in range(m):
            pos = place(ITEM_PX, ITEM_PX, 14)
            if pos is None:
                return None
            chair = SceneObject("yellow", "chair", "rect", pos[0], pos[1], ITEM_PX, ITEM_PX)
            placed.append(chair)
            items.append(chair)
        return named, items

    @staticmethod
    def _world(rw: int, rh: int, objects: list[SceneObject]) -> np.ndarray:
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
            paste(
                room,
                shape_mask("rect" if o.shape == "rect" else "circle", o.w, o.h),
                PALETTE[o.color],
                o.x0,
                o.y0,
            )
        return world

    @staticmethod
    def _camera(
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

    # -- one attempt -----------------------------------------------------------------------
    def _try(self, rng: np.random.Generator, difficulty: int):
        level = SCENE_LEVELS[difficulty]
        fps = int(rng.choice(level["fps"]))
        n = int(round(rng.uniform(*level["dur"]) * fps))
        rw = even(rng.uniform(*level["w"]) * PPM)
        rh = even(rng.uniform(*level["h"]) * PPM)
        layout = self._layout(rng, level, rw, rh)
        if layout is None:
            return None
        named, items = layout
        cams = self._camera(rng, rw, rh, n, max(max(o.w, o.h) for o in named))
        if cams is None:
            return None
        subtype = str(rng.choice(SUBTYPES))
        made = self._question(rng, difficulty, subtype, named, items)
        if made is None:
            return None
        question_tail, answer, answer_type, options, qmeta = made
        listing = ", ".join(f"{a_an(o.label)} {o.label}" for o in named)
        intro = (
            "This video is a top-down view of a room, filmed by a camera that slides over it without "
            "rotating or zooming, so only part of the room is visible at a time. The floor is tiled "
            "with 1 m x 1 m tiles (light grid lines). The room contains furniture, each piece with "
            f"its own colour: {listing}; and some small yellow {ITEM_NOUN}. Positions refer to the "
            "centres of the objects as seen from above."
        )
        world = self._world(rw, rh, named + items)
        meta = {
            "subtype": subtype,
            "room_m": [rw / PPM, rh / PPM],
            "objects": [
                {
                    "label": o.label,
                    "shape": o.shape,
                    "centre_m": [round(float(v), 3) for v in o.centre],
                    "size_m": [o.w / PPM, o.h / PPM],
                }
                for o in named
            ],
            "num_chairs": len(items),
            "px_per_m": PPM,
            **qmeta,
        }
        return fps, n, world, cams, f"{intro} {question_tail}", answer, answer_type, options, meta

    @staticmethod
    def _question(
        rng: np.random.Generator,
        difficulty: int,
        subtype: str,
        named: list[SceneObject],
        items: list,
    ):
        k = len(named)
        if subtype == "direction":
            quad = difficulty > 0
            for _try in range(100):
                a, b, c = (named[int(i)] for i in rng.permutation(k)[:3])
                if (
                    np.linalg.norm(b.centre - a.centre) < 1.0
                    or np.linalg.norm(c.centre - a.centre) < 1.0
                ):
                    continue
                ang = relative_side(a.centre, b.centre, c.centre)
                if not 20 <= abs(ang) <= 160 or (quad and abs(abs(ang) - 90) < 15):
                    continue
                side = "left" if ang > 0 else "right"
                if quad:
                    truth = ("front-" if abs(ang) < 90 else "back-") + side
                    pool = ["front-left", "front-right", "back-left", "back-right"]
                    options, letter = pool, LETTERS[pool.index(truth)]
                    ask = "where is the {t}: in front of you or behind you, and to your left or right?"
                else:
                    truth = side
                    options, letter = ["left", "right"], LETTERS[["left", "right"].index(side)]
                    ask = "is the {t} to your left or to your right?"
                tail = (
                    f"Imagine standing at the {a.label} and facing the {b.label}: "
                    + ask.format(t=c.label)
                    + f" {options_text(options)}"
                )
                return (
                    tail,
                    letter,
                    "choice",
                    options,
                    {
                        "stand": a.label,
                        "face": b.label,
                        "target": c.label,
                        "angle_deg": round(ang, 1),
                    },
                )
            return None
        if subtype == "closest":
            m = 3 if k <= 4 else 4
            for _try in range(100):
                ref = named[int(rng.integers(k))]
                others = [o for o in named if o is not ref]
                cand = [others[int(i)] for i in rng.permutation(len(others))[:m]]
                d = sorted((float(np.linalg.norm(o.centre - ref.centre)), o.label) for o in cand)
                if d[1][0] / d[0][0] < 1.15 or d[1][0] - d[0][0] < 0.4:
                    continue
                options, letter = choice_options(rng, d[0][1], [o.label for o in cand], m)
                tail = (
                    f"Which of these objects is closest to the {ref.label} (centre to centre)? "
                    f"{options_text(options)}"
                )
                return (
                    tail,
                    letter,
                    "choice",
                    options,
                    {"reference": ref.label, "distances": {lab: round(v, 3) for v, lab in d}},
                )
            return None
        if subtype == "count":
            tail = f"How many yellow {ITEM_NOUN} are there in the room? Answer with an integer."
            return tail, str(len(items)), "number", None, {}
        if subtype == "size":
            big = [o for o in named if max(o.w, o.h) >= PPM]
            if not big:
                return None
            o = big[int(rng.integers(len(big)))]
            size = max(o.w, o.h) / PPM
            if o.shape == "rect":
                tail = f"How long is the longer side of the {o.label}, in metres? Answer with a number."
            else:
                tail = f"What is the diameter of the {o.label}, in metres? Answer with a number."
            return tail, fmt_number(size), "mra", None, {"object": o.label}
        for _try in range(100):
            a, b = (named[int(i)] for i in rng.permutation(k)[:2])
            d = float(np.linalg.norm(a.centre - b.centre))
            if d >= 2.0:
                tail = (
                    f"What is the distance between the centres of the {a.label} and the {b.label}, "
                    f"in metres? Answer with a number."
                )
                return (
                    tail,
                    fmt_number(d),
                    "mra",
                    None,
                    {"pair": [a.label, b.label], "distance_m": round(d, 4)},
                )
        return None

    # -- expert ------------------------------------------------------------------------------
    def expert(self, task: Task) -> list[str]:
        q = task.question
        listing = q.split("its own colour: ")[1].split("; and some")[0]
        labels = [part.split(" ", 1)[1] for part in listing.split(", ")]  # drop "a" / "an"
        color_of = {lab: lab.split(" ")[0] for lab in labels}
        tail = q.split("the objects as seen from above. ")[1]
        options = list(task.options or [])
        head = [code(SCENE_T1), SCENE_T2, SCENE_T3]

        def find(text: str) -> str:
            return max((lab for lab in labels if lab in text), key=len)

        if tail.startswith("Imagine standing"):
            a = find(tail.split("standing at the ")[1].split(" and facing")[0])
            b = find(tail.split("facing the ")[1].split(":")[0])
            c = find(tail.split(":")[1])
            last = code(
                SCENE_DIRECTION,
                stand=color_of[a],
                face=color_of[b],
                target=color_of[c],
                options=options,
            )
        elif tail.startswith("Which of these objects"):
            ref = find(tail.split("closest to the ")[1].split(" (centre")[0])
            last = code(SCENE_CLOSEST, ref=color_of[ref], options=options)
        elif tail.startswith("How many"):
            last = SCENE_COUNT
        elif "distance between the centres" in tail:
            part = tail.split("centres of the ")[1].split(", in metres")[0]
            a_txt, b_txt = part.split(" and the ")
            last = code(SCENE_DISTANCE, a=color_of[find(a_txt)], b=color_of[find(b_txt)])
        else:
            obj = find(tail.split(" of the ")[1].split(", in metres")[0])
            last = code(SCENE_SIZE, obj=color_of[obj])
        head[-1] = head[-1] + "\n" + last
        return head
