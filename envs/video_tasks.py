"""Procedurally generated video task families ("agentic vision RL" over videos).

Every family draws a small synthetic video (coloured shapes on a dark backdrop, or a
top-down room for :mod:`.video_scene`), encodes it to H.264 mp4 in ``cache_dir`` and asks
a question whose answer needs frames from across the video. Lengths grow with difficulty
(difficulty 0: 6–14 s, 1: 32–58 s, 2: ~2–3.7 min at 3 fps), so agents must sample frames
on demand instead of looking at everything.

=============================  ===========================================  ==========
family                         question                                     answer
=============================  ===========================================  ==========
``event_onset``                when does a shape appear / a ball's centre   seconds,
                               enter an outlined zone?                      ``mra``
``event_counting``             how many flashes of one lamp / balls of a    ``number``
                               colour crossing a line?                      (exact)
``state_at_time``              colour of a shape at t s (or when another    ``choice``
                               shape first turns X)?
``appearance_order``           order in which the colours first appear      ``choice``
``motion_direction``           direction of motion (8 compass names) or     ``choice``
                               which shape moves fastest
``object_counting_over_time``  distinct shapes over the video, never all    ``number``
                               on screen at once                            (exact)
``spatial_scene``              room under a sliding top-down camera:        ``choice``,
                               direction, closest, count, size, distance    ``number``,
                                                                            ``mra``
=============================  ===========================================  ==========

Timing questions are answered in seconds and scored with MRA (mean relative accuracy):
the onset is at least 15% into the video, and the expert finds the exact frame by
bisection, so a careful agent answers exactly. ``VIDEO_FAMILIES`` maps family name ->
family instance. Experts (``family.expert(task)``) are code turns for the restricted
runtime that use only the question and the ``video`` handle.
"""

from __future__ import annotations

import math
from itertools import permutations
from pathlib import Path
from typing import Any

import numpy as np

from .base import Task, TaskFamily
from .video_rendering import (
    COLOR_NAMES,
    FRAME_H,
    FRAME_W,
    SHAPES,
    Item,
    VideoFamily,
    a_an,
    background,
    bounce_path,
    cell_origin,
    choice_options,
    code,
    even,
    fmt_number,
    fmt_time,
    intervals_mask,
    item,
    listing,
    options_text,
    paste,
    pick_timing,
    render_items,
    shape_mask,
)
from .video_scene import SpatialScene

WHITE = (235, 235, 235)
LAMP_OFF = (105, 105, 105)
LAMP_RING = (175, 175, 175)

# Compass directions in frame terms (up = towards the top of the frame), angle in degrees
# counter-clockwise from "right".
DIRECTIONS: tuple[str, ...] = (
    "right",
    "up-right",
    "up",
    "up-left",
    "left",
    "down-left",
    "down",
    "down-right",
)


# ---------------------------------------------------------------------------------------
# 1. event_onset
# ---------------------------------------------------------------------------------------

ONSET_APPEAR_T1 = """$prelude
COLOR, SHAPE = $color, $shape
n = len(video)
fps = video.fps
print(video)


def present(i):
    return any(b["color"] == COLOR and b["shape"] == SHAPE for b in find_blobs(video[i]))


print("first frame:", [(b["color"], b["shape"]) for b in find_blobs(video[0])])
print("last frame:", [(b["color"], b["shape"]) for b in find_blobs(video[n - 1])])
print("target visible at start/end:", present(0), present(n - 1))
"""

ONSET_APPEAR_T2 = """# It stays once it has appeared, so "visible at frame i" is monotone: bisect.
lo, hi = 0, n - 1
checked = 0
while hi - lo > 1:
    mid = (lo + hi) // 2
    checked += 1
    if present(mid):
        hi = mid
    else:
        lo = mid
print(f"absent at frame {lo}, visible from frame {hi} ({checked} frames checked)")
print(round(hi / fps, 2))
"""

ONSET_ENTER_T1 = """$prelude
COLOR = $color
n = len(video)
fps = video.fps
print(video)
first = np.asarray(video[0])
white = first.min(axis=-1) > 200
cols = np.nonzero(white.sum(axis=0) > 0.5 * white.sum(axis=0).max())[0]
rows = np.nonzero(white.sum(axis=1) > 0.5 * white.sum(axis=1).max())[0]
mx, my = (cols.min() + cols.max()) / 2, (rows.min() + rows.max()) / 2
# interior of the zone: between the left/right and top/bottom outline strokes
zx0, zx1 = cols[cols < mx].max() + 1, cols[cols > mx].min() - 1
zy0, zy1 = rows[rows < my].max() + 1, rows[rows > my].min() - 1
print("zone interior x", zx0, "-", zx1, " y", zy0, "-", zy1)


def ball_centre(i):
    blobs = [b for b in find_blobs(video[i]) if b["color"] == COLOR]
    if not blobs:
        return None
    b = max(blobs, key=lambda d: d["area"])
    return (b["x"], b["y"])


def inside(i):
    c = ball_centre(i)
    return c is not None and zx0 - 0.5 < c[0] < zx1 + 0.5 and zy0 - 0.5 < c[1] < zy1 + 0.5


print("ball centre at start:", ball_centre(0), " at end:", ball_centre(n - 1))
print("inside at start/end:", inside(0), inside(n - 1))
"""

ONSET_ENTER_T2 = """# After entering it stays inside, so "inside at frame i" is monotone: bisect.
lo, hi = 0, n - 1
while hi - lo > 1:
    mid = (lo + hi) // 2
    if inside(mid):
        hi = mid
    else:
        lo = mid
print(f"centre outside at frame {lo} {ball_centre(lo)}, inside at frame {hi} {ball_centre(hi)}")
print(round(hi / fps, 2))
"""


class EventOnset(VideoFamily):
    """When does something first happen? (answer in seconds, scored by MRA)."""

    name = "event_onset"
    key = 101
    description = (
        "When does an event first happen (a shape appears / a ball's centre enters a zone)? "
        "Answer in seconds, MRA-scored."
    )

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        kind = str(rng.choice(["appear", "enter"]))
        if kind == "appear":
            question, onset, items_at, meta = self._appear(rng, difficulty, n)
        else:
            question, onset, items_at, meta = self._enter(rng, difficulty, fps, n, base)
        return self.make_task(
            seed,
            difficulty,
            cache_dir,
            question=question,
            answer=fmt_number(onset / fps),
            answer_type="mra",
            fps=fps,
            num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"subtype": kind, "onset_frame": onset, **meta},
        )

    def _appear(self, rng: np.random.Generator, difficulty: int, n: int):
        cells = [int(c) for c in rng.permutation(12)]
        color = str(rng.choice(COLOR_NAMES))
        shape = str(rng.choice(SHAPES))
        size = even(rng.uniform(18, 28))
        target = item(shape, size, color, *cell_origin(rng, cells[0], size))
        onset = int(rng.integers(max(1, int(0.2 * n)), int(0.9 * n)))
        num_distract = (0, int(rng.integers(2, 4)), int(rng.integers(4, 7)))[difficulty]
        distract: list[tuple[Item, np.ndarray]] = []
        for j in range(num_distract):
            if difficulty == 2 and rng.random() < 0.5:
                # same colour, other shape (or same shape, other colour): needs both cues
                if rng.random() < 0.5:
                    dc, ds = color, str(rng.choice([s for s in SHAPES if s != shape]))
                else:
                    dc, ds = str(rng.choice([c for c in COLOR_NAMES if c != color])), shape
            else:
                dc = str(rng.choice([c for c in COLOR_NAMES if c != color]))
                ds = str(rng.choice(SHAPES))
            dsize = even(rng.uniform(18, 28))
            spans = []
            t = int(rng.integers(0, max(1, n // 3)))
            on_len = (0.05, 0.3) if difficulty == 1 else (0.03, 0.2)  # fraction of the video
            while t < n:
                a = t
                b = a + max(2, int(rng.uniform(*on_len) * n))
                spans.append((a, b))
                t = b + max(2, int(rng.uniform(*on_len) * n))
            distract.append(
                (
                    item(ds, dsize, dc, *cell_origin(rng, cells[1 + j], dsize)),
                    intervals_mask(n, spans),
                )
            )

        def items_at(i: int) -> list[Item]:
            out = [it for it, vis in distract if vis[i]]
            if i >= onset:
                out.append(target)
            return out

        others = "; other shapes come and go" if num_distract else ""
        question = (
            f"{a_an(color).capitalize()} {color} {shape} appears at some moment in this video and then stays on screen until "
            f"the end{others}. At what time, in seconds from the start of the video, does the "
            f"{color} {shape} first appear? Answer with a number of seconds."
        )
        return question, onset, items_at, {"color": color, "shape": shape}

    def _enter(self, rng: np.random.Generator, difficulty: int, fps: int, n: int, base: np.ndarray):
        size, half = 14, 6.5
        color = str(rng.choice(COLOR_NAMES))
        zw, zh = even(rng.uniform(64, 100)), even(rng.uniform(52, 76))
        zx0 = even(rng.uniform(24, FRAME_W - 24 - zw))
        zy0 = even(rng.uniform(20, FRAME_H - 20 - zh))
        # continuous box of the zone interior (pixel centres zx0..zx0+zw-1)
        bx0, bx1, by0, by1 = zx0 - 0.5, zx0 + zw - 0.5, zy0 - 0.5, zy0 + zh - 0.5
        lo, hi = (half, half), (FRAME_W - 1 - half, FRAME_H - 1 - half)

        def inside(c: np.ndarray, m: float) -> bool:
            return bool(bx0 + m <= c[0] <= bx1 - m and by0 + m <= c[1] <= by1 - m)

        def quant(c: np.ndarray) -> np.ndarray:
            return np.array([even(c[0] - half) + half, even(c[1] - half) + half])

        pre_margin = 4.0 if difficulty == 2 else half + 5.0
        path = None
        onset = -1
        for _attempt in range(500):
            speed = float(np.clip(rng.uniform(35, 75) / fps, 2.5, 14.0))
            k0 = int(rng.integers(int(0.2 * n), int(0.8 * n)))
            c = np.array([rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1])])
            if inside(c, -pre_margin - 2):
                continue
            ang = rng.uniform(0, 2 * math.pi)
            v = speed * np.array([math.cos(ang), math.sin(ang)])
            pts = []
            for _i in range(k0):
                pts.append(c.copy())
                q = c + v
                for a in range(2):
                    if q[a] < lo[a] or q[a] > hi[a]:
                        v[a] = -v[a]
                q = c + v
                if inside(q, -pre_margin):
                    if not (bx0 - pre_margin <= c[0] <= bx1 + pre_margin):
                        v[0] = -v[0]
                    else:
                        v[1] = -v[1]
                    q = c + v
                    if inside(q, -pre_margin) or not (
                        lo[0] <= q[0] <= hi[0] and lo[1] <= q[1] <= hi[1]
                    ):
                        v = -v
                        q = c + v
                c = np.clip(q, lo, hi)
            # approach: head for a point well inside the zone
            goal = np.array([rng.uniform(bx0 + 12, bx1 - 12), rng.uniform(by0 + 12, by1 - 12)])
            d = goal - c
            u = d / max(np.linalg.norm(d), 1e-6)
            s_app = max(speed, 5.0)
            while len(pts) < n and not inside(c, 3.0):
                pts.append(c.copy())
                c = c + s_app * u
            # inside: bounce within the interior (centre at least 3 px from its border)
            rest = n - len(pts)
            if rest > 0:
                ilo, ihi = (bx0 + 3.0, by0 + 3.0), (bx1 - 3.0, by1 - 3.0)
                start = (float(np.clip(c[0], ilo[0], ihi[0])), float(np.clip(c[1], ilo[1], ihi[1])))
                pts.extend(bounce_path(rng, rest, min(speed, 6.0), ilo, ihi, start))
            qs = np.array([quant(p) for p in pts[:n]])
            flags = np.array([inside(q, 1.0) for q in qs])
            outside = np.array([not inside(q, -1.0) for q in qs])
            if not flags.any():
                continue
            k = int(np.argmax(flags))
            if flags[k:].all() and outside[:k].all() and 0.15 * n <= k <= 0.93 * n:
                path, onset = qs, k
                break
        if path is None:
            raise RuntimeError("event_onset: could not build an entering trajectory")

        num_distract = (0, int(rng.integers(1, 3)), int(rng.integers(2, 5)))[difficulty]
        others = []
        for _j in range(num_distract):
            dc = str(rng.choice([c for c in COLOR_NAMES if c != color]))
            dpath = bounce_path(
                rng, n, float(np.clip(rng.uniform(30, 80) / fps, 2.0, 16.0)), lo, hi
            )
            others.append((dc, dpath))
        paste(base, shape_mask("outline", zw + 4, zh + 4), WHITE, zx0 - 2, zy0 - 2)

        def items_at(i: int) -> list[Item]:
            out: list[Item] = [
                item("circle", size, dc, even(p[i][0] - half), even(p[i][1] - half))
                for dc, p in others
            ]
            out.append(item("circle", size, color, int(path[i][0] - half), int(path[i][1] - half)))
            return out

        extra = " Other balls move around too and may cross the zone." if num_distract else ""
        question = (
            f"A white outline marks a rectangular zone. {a_an(color).capitalize()} {color} ball moves around; at some moment "
            f"its centre enters the zone for the first time, and after that the ball stays inside."
            f"{extra} At what time, in seconds from the start of the video, does the centre of the "
            f"{color} ball first enter the zone? Answer with a number of seconds."
        )
        return question, onset, items_at, {"color": color, "zone": [zx0, zy0, zx0 + zw, zy0 + zh]}

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "outline marks" in q:
            color = q.split(" ball moves")[0].split()[-1]
            return [code(ONSET_ENTER_T1, color=color), ONSET_ENTER_T2]
        color, shape = q.split(" appears at some moment")[0].split()[-2:]
        return [code(ONSET_APPEAR_T1, color=color, shape=shape), ONSET_APPEAR_T2]


# ---------------------------------------------------------------------------------------
# 2. event_counting
# ---------------------------------------------------------------------------------------

FLASH_T1 = """$prelude
COLOR = $color
n = len(video)
fps = video.fps
print(video)
first = np.asarray(video[0]).astype(np.int16)
level = np.median(first.max(axis=-1))
grey = (first.max(axis=-1) - first.min(axis=-1) < 30) & (first.max(axis=-1) > level + 35)
comp, count = ndimage.label(grey)
lamps = []
for sl in ndimage.find_objects(comp):
    if sl[0].stop - sl[0].start >= 12:
        lamps.append(((sl[1].start + sl[1].stop - 1) // 2, (sl[0].start + sl[0].stop - 1) // 2))
print("lamps (dark at the start) at", lamps)
"""

FLASH_T2 = """# Every frame matters for counting: read them all in chunks, keep only a patch per lamp.
states = {p: [] for p in lamps}
for start in range(0, n, 200):
    batch = video.get_batch(range(start, min(n, start + 200)))
    for p in lamps:
        x, y = p
        patch = batch[:, y - 3:y + 4, x - 3:x + 4].reshape(len(batch), -1, 3).mean(axis=1)
        states[p].extend(color_labels(patch).tolist())
target = NAMES.index(COLOR)
answer = 0
for p in lamps:
    on = [s == target for s in states[p]]
    flashes = sum(1 for i in range(n) if on[i] and (i == 0 or not on[i - 1]))
    print("lamp", p, "lit", COLOR, "in", sum(on), "frames,", flashes, "flashes")
    answer = max(answer, flashes)
print(answer)
"""

CROSS_T1 = """$prelude
COLOR = $color
n = len(video)
fps = video.fps
print(video)
first = np.asarray(video[0])
white = first.min(axis=-1) > 200
cols = np.nonzero(white.sum(axis=0) > 0.6 * first.shape[0])[0]
xa, xb = int(cols.min()), int(cols.max())
print("white line at columns", xa, "-", xb)
"""

CROSS_T2 = """# A thin strip around the line, for every frame: each crossing ball is one blob in (time, y).
rows = []
for start in range(0, n, 200):
    batch = video.get_batch(range(start, min(n, start + 200)))
    lab = color_labels(batch[:, :, xa - 8:xb + 9])
    hit = (lab >= 0) if COLOR is None else (lab == NAMES.index(COLOR))
    rows.append(hit.any(axis=2))
timeline = np.concatenate(rows, axis=0)
comp, count = ndimage.label(timeline)
sizes = ndimage.sum(timeline, comp, range(1, count + 1))
crossings = [int(s) for s in sizes if s >= 20]
print("blobs on the line (pixels):", crossings)
print(len(crossings))
"""


class EventCounting(VideoFamily):
    """How many times does an event happen over the video? (exact integer)."""

    name = "event_counting"
    key = 102
    description = (
        "Count events over time: flashes of one lamp, or balls crossing a line (exact integer)."
    )

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        kind = str(rng.choice(["flash", "cross"]))
        if kind == "flash":
            question, count, items_at, meta = self._flash(rng, difficulty, fps, n, base)
        else:
            question, count, items_at, meta = self._cross(rng, difficulty, fps, n, base)
        return self.make_task(
            seed,
            difficulty,
            cache_dir,
            question=question,
            answer=str(count),
            answer_type="number",
            tolerance=0.0,
            fps=fps,
            num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"subtype": kind, "count": count, **meta},
        )

    @staticmethod
    def _schedule(
        rng: np.random.Generator, n: int, fps: int, m: int, on_max_s: float
    ) -> np.ndarray:
        """Per-frame on/off mask with exactly ``m`` flashes, dark at both ends."""
        on_min = max(2, math.ceil(0.4 * fps))
        gap_min = max(2, math.ceil(0.4 * fps))
        on_max = max(on_min, int(on_max_s * fps))
        ons = rng.integers(on_min, on_max + 1, size=m)
        spare = n - int(ons.sum()) - (m + 1) * gap_min
        if spare < 0:
            raise ValueError("too many flashes for this video")
        extra = rng.multinomial(spare, rng.dirichlet(np.ones(m + 1)))
        gaps = gap_min + extra
        mask = np.zeros(n, dtype=bool)
        t = 0
        for j in range(m):
            t += int(gaps[j])
            mask[t : t + int(ons[j])] = True
            t += int(ons[j])
        return mask

    def _flash(self, rng: np.random.Generator, difficulty: int, fps: int, n: int, base: np.ndarray):
        num_lamps = (1, int(rng.integers(2, 4)), int(rng.integers(3, 5)))[difficulty]
        colors = [str(c) for c in rng.choice(COLOR_NAMES, size=num_lamps, replace=False)]
        slot = (FRAME_W - 40) // num_lamps
        size = 28
        cy = even(rng.uniform(50, FRAME_H - 50))
        xs = [
            even(20 + slot * j + slot / 2 - size / 2 + rng.uniform(-6, 6)) for j in range(num_lamps)
        ]
        lo, hi = {0: (2, 6), 1: (4, 12), 2: (8, 25)}[difficulty]
        on_max_s = (1.0, 2.5, 3.0)[difficulty]
        step = max(2, math.ceil(0.4 * fps))
        cap = (n - step) // (max(step, int(on_max_s * fps)) + step)
        lo, hi = min(lo, cap), min(hi, cap)
        schedules = []
        counts = []
        for _j in range(num_lamps):
            m = int(rng.integers(lo, hi + 1))
            counts.append(m)
            schedules.append(self._schedule(rng, n, fps, m, on_max_s))
        for x in xs:
            ring = ("ring", size + 6, size + 6, LAMP_RING, x - 3, cy - 3)
            disc = ("circle", size, size, LAMP_OFF, x, cy)
            for shape, w, h, rgb, x0, y0 in (disc, ring):
                paste(base, shape_mask(shape, w, h), rgb, x0, y0)
        target = int(rng.integers(num_lamps))

        def items_at(i: int) -> list[Item]:
            return [
                item("circle", size, colors[j], xs[j], cy)
                for j in range(num_lamps)
                if schedules[j][i]
            ]

        color = colors[target]
        if num_lamps == 1:
            intro = "A lamp (a grey disc) lights up from time to time."
        else:
            intro = f"There are {num_lamps} lamps (grey discs); each lights up in its own colour from time to time."
        question = (
            f"{intro} How many times does the lamp that lights up {color} flash (turn {color} and then "
            f"dark again) during the video? Answer with an integer."
        )
        return (
            question,
            counts[target],
            items_at,
            {"color": color, "lamp_colors": colors, "lamp_counts": counts},
        )

    def _cross(self, rng: np.random.Generator, difficulty: int, fps: int, n: int, base: np.ndarray):
        size = 14
        xl = FRAME_W // 2 - 1  # the line covers columns xl, xl+1
        base[:, xl : xl + 2] = WHITE
        lanes = [16 + 24 * k for k in range(8)]
        color = str(rng.choice(COLOR_NAMES))
        lo, hi = {0: (2, 6), 1: (3, 9), 2: (5, 15)}[difficulty]
        want = int(rng.integers(lo, hi + 1))
        n_distract = (0, int(rng.integers(2, 6)), int(rng.integers(3, 8)))[difficulty]
        n_turn = (0, 0, int(rng.integers(1, 5)))[difficulty]
        both_ways = difficulty == 2
        kinds = ["cross"] * want + ["distract"] * n_distract + ["turn"] * n_turn
        rng.shuffle(kinds)
        busy: dict[int, list[tuple[int, int]]] = {y: [] for y in lanes}
        balls: list[tuple[str, int, np.ndarray]] = []  # colour, lane y, per-frame x (nan = hidden)
        crossed = 0
        for kind in kinds:
            for _attempt in range(60):
                speed = float(rng.uniform(5.0, 11.0))
                direction = 1 if (not both_ways or rng.random() < 0.5) else -1
                x_start = -size if direction == 1 else FRAME_W
                if kind == "turn":
                    # turns back at least 22 px before the strip around the line
                    reach = rng.uniform(30, xl - 8 - 22 - size)
                    travel = np.concatenate(
                        [
                            np.arange(0, reach, speed),
                            reach - np.arange(0, reach + size + speed, speed),
                        ]
                    )
                else:
                    travel = np.arange(0, FRAME_W + size + speed, speed)
                dur = len(travel)
                if dur + 2 > n:
                    continue
                t0 = int(rng.integers(0, n - dur))
                y = int(rng.choice(lanes))
                if any(not (t0 + dur + 2 <= a or b + 2 <= t0) for a, b in busy[y]):
                    continue
                busy[y].append((t0, t0 + dur))
                xs = np.full(n, np.nan)
                xs[t0 : t0 + dur] = x_start + direction * travel
                bc = (
                    color
                    if kind in ("cross", "turn")
                    else str(rng.choice([c for c in COLOR_NAMES if c != color]))
                )
                balls.append((bc, y, xs))
                crossed += kind == "cross"
                break
        if crossed == 0:
            raise RuntimeError("event_counting: could not place any crossing ball")

        def items_at(i: int) -> list[Item]:
            return [
                item("circle", size, bc, even(xs[i]), y - size // 2)
                for bc, y, xs in balls
                if not math.isnan(xs[i])
            ]

        if difficulty == 0:
            question = (
                "Balls roll horizontally across the frame, over a vertical white line. How many balls "
                "cross the white line during the video? Answer with an integer."
            )
        else:
            ways = (
                " in either direction (some balls turn back before reaching the line)"
                if both_ways
                else ""
            )
            question = (
                f"Balls of several colours roll horizontally across the frame, over a vertical white "
                f"line. How many {color} balls cross the white line{ways} during the video? Answer "
                f"with an integer."
            )
        return question, crossed, items_at, {"color": color}

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "lamp" in q:
            color = q.split("the lamp that lights up ")[1].split(" ")[0]
            return [code(FLASH_T1, color=color), FLASH_T2]
        color = q.split("How many ")[1].split(" ")[0]
        return [code(CROSS_T1, color=None if color == "balls" else color), CROSS_T2]


# ---------------------------------------------------------------------------------------
# 3. state_at_time
# ---------------------------------------------------------------------------------------

STATE_AT_T1 = """$prelude
SHAPE, T = $shape, $t
OPTIONS = $options
n = len(video)
fps = video.fps
print(video)
i = min(n - 1, int(round(T * fps)))
blobs = find_blobs(video[i])
print(f"frame {i} (t = {i / fps:.2f} s):", [(b["color"], b["shape"], b["x"], b["y"]) for b in blobs])
"""

STATE_AT_T2 = """match = [b for b in blobs if b["shape"] == SHAPE]
colour = max(match, key=lambda b: b["area"])["color"] if match else blobs[0]["color"]
if colour not in OPTIONS:  # fall back to the option with the nearest hue
    colour = min(OPTIONS, key=lambda c: abs((HUES[c] - HUES[colour] + 180) % 360 - 180))
print("the", SHAPE, "is", colour)
print("ABCDEFGH"[OPTIONS.index(colour)])
"""

STATE_WHEN_T1 = """$prelude
SHAPE_A, SHAPE_B, EVENT = $shape_a, $shape_b, $event
MIN_LAST = $min_last
OPTIONS = $options
n = len(video)
fps = video.fps
print(video)
blobs = find_blobs(video[0])
print("frame 0:", [(b["color"], b["shape"], b["box"]) for b in blobs])
# each shape keeps to its own horizontal band: remember the rows it occupies
band = {}
for b in blobs:
    band[b["shape"]] = (max(0, b["box"][1] - 4), b["box"][3] + 4)
print("bands:", band)


def colours_in_band(frames, shape):
    y0, y1 = band[shape]
    lab = color_labels(np.asarray(frames)[:, y0:y1])
    counts = np.stack([(lab == k).sum(axis=(1, 2)) for k in range(len(NAMES))], axis=1)
    return [NAMES[int(c.argmax())] if c.max() > 30 else None for c in counts]


# coarse scan of that shape's band: colours last at least MIN_LAST s, so sample at half that
samples = list(range(0, n, max(1, int(MIN_LAST * fps / 2))))
seen = colours_in_band(video.get_batch(samples), SHAPE_B)
hit = seen.index(EVENT)
print("the", SHAPE_B, "is first seen", EVENT, "at sample frame", samples[hit], "; before that:", seen[hit - 1])
"""

STATE_WHEN_T2 = """lo, hi = samples[hit - 1], samples[hit]
while hi - lo > 1:
    mid = (lo + hi) // 2
    if colours_in_band([video[mid]], SHAPE_B)[0] == EVENT:
        hi = mid
    else:
        lo = mid
colour = colours_in_band([video[hi]], SHAPE_A)[0]
print(f"the {SHAPE_B} turns {EVENT} at frame {hi} (t = {hi / fps:.2f} s); the {SHAPE_A} is then {colour}")
if colour not in OPTIONS:
    colour = min(OPTIONS, key=lambda c: abs((HUES[c] - HUES[colour] + 180) % 360 - 180))
print("ABCDEFGH"[OPTIONS.index(colour)])
"""


class StateAtTime(VideoFamily):
    """What colour is an object at a given moment (or when another object changes)?"""

    name = "state_at_time"
    key = 103
    description = (
        "Colour of a shape at a given time (or when another shape changes colour); multiple choice."
    )

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        for attempt in range(50):
            out = self._try(seed, difficulty, attempt, cache_dir)
            if out is not None:
                return out
        raise RuntimeError("state_at_time: no valid query found")

    def _try(self, seed: int, difficulty: int, attempt: int, cache_dir: Path) -> Task | None:
        rng = np.random.default_rng([seed, difficulty, self.key, attempt])
        if attempt == 0:
            rng = self.rng(seed, difficulty)
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        k = difficulty + 1
        shapes = [str(s) for s in rng.permutation(SHAPES)[:k]]
        seg_s = ((1.5, 4.0), (3.0, 10.0), (6.0, 25.0))[difficulty]
        band = FRAME_H // k
        objs = []
        for j, shape in enumerate(shapes):
            size = even(rng.uniform(24, min(32, band - 12)))
            y0 = even(j * band + (band - size) / 2 + rng.uniform(-4, 4))
            cols = np.empty(n, dtype=np.int64)
            t = 0
            prev = -1
            while t < n:
                c = int(rng.choice([c for c in range(len(COLOR_NAMES)) if c != prev]))
                d = max(2, int(rng.uniform(*seg_s) * fps))
                cols[t : t + d] = c
                t += d
                prev = c
            if difficulty == 2:
                xs = bounce_path(
                    rng, n, rng.uniform(10, 35) / fps, (4, 0), (FRAME_W - size - 4, 0)
                )[:, 0]
            else:
                xs = np.full(n, rng.uniform(20, FRAME_W - size - 20))
            objs.append((shape, size, y0, cols, xs))
        margin = max(2, int(round(0.5 * fps)))

        def steady(j: int, f: int) -> bool:
            c = objs[j][3]
            return margin <= f < n - margin and bool((c[f - margin : f + margin + 1] == c[f]).all())

        kind = "when" if difficulty == 2 and rng.random() < 0.5 else "at"
        meta: dict[str, Any] = {"subtype": kind, "shapes": shapes}
        if kind == "at":
            j = int(rng.integers(k))
            grid = 0.5 if difficulty == 0 else 1.0
            cands = [
                t for t in np.arange(grid, n / fps - 0.5, grid) if steady(j, int(round(t * fps)))
            ]
            if not cands:
                return None
            t = float(rng.choice(cands))
            f = int(round(t * fps))
            truth = COLOR_NAMES[objs[j][3][f]]
            shown = [COLOR_NAMES[c] for c in np.unique(objs[j][3])]
            options, letter = choice_options(rng, truth, COLOR_NAMES, 4, prefer=shown)
            if k == 1:
                intro = f"The video shows a {shapes[0]} whose colour changes over time."
            else:
                intro = f"The video shows {listing(shapes)}; their colours change over time."
            question = (
                f"{intro} What colour is the {shapes[j]} at t = {fmt_time(t)} s (seconds from the start "
                f"of the video)? {options_text(options)}"
            )
            meta.update({"query_shape": shapes[j], "time": t, "frame": f})
        else:
            ja, jb = (int(x) for x in rng.permutation(k)[:2])
            cb = objs[jb][3]
            starts = {}
            for f in range(1, n):
                if cb[f] != cb[f - 1] and int(cb[f]) not in starts and cb[f] not in cb[:f]:
                    starts[int(cb[f])] = f
            cands = [
                (c, f)
                for c, f in starts.items()
                if steady(ja, f) and f >= 2 * fps and f + int(seg_s[0] * fps) <= n
            ]
            if not cands:
                return None
            c_ev, f = cands[int(rng.integers(len(cands)))]
            truth = COLOR_NAMES[objs[ja][3][f]]
            shown = [COLOR_NAMES[c] for c in np.unique(objs[ja][3])]
            options, letter = choice_options(rng, truth, COLOR_NAMES, 4, prefer=shown)
            event = COLOR_NAMES[c_ev]
            question = (
                f"The video shows {listing(shapes)}; their colours change over time (each "
                f"colour lasts at least {fmt_time(seg_s[0])} seconds). What colour is the {shapes[ja]} "
                f"at the moment the {shapes[jb]} first turns {event}? {options_text(options)}"
            )
            meta.update(
                {"query_shape": shapes[ja], "event_shape": shapes[jb], "event": event, "frame": f}
            )

        def items_at(i: int) -> list[Item]:
            return [
                item(shape, size, COLOR_NAMES[cols[i]], even(xs[i]), y0)
                for shape, size, y0, cols, xs in objs
            ]

        return self.make_task(
            seed,
            difficulty,
            cache_dir,
            question=question,
            answer=letter,
            answer_type="choice",
            options=options,
            fps=fps,
            num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata=meta,
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        options = list(task.options or [])
        if "at the moment the" in q:
            a = q.split("What colour is the ")[1].split(" ")[0]
            rest = q.split("at the moment the ")[1]
            b = rest.split(" ")[0]
            event = rest.split("first turns ")[1].split("?")[0]
            min_last = float(q.split("lasts at least ")[1].split(" seconds")[0])
            return [
                code(
                    STATE_WHEN_T1,
                    shape_a=a,
                    shape_b=b,
                    event=event,
                    min_last=min_last,
                    options=options,
                ),
                STATE_WHEN_T2,
            ]
        shape = q.split("What colour is the ")[1].split(" ")[0]
        t = float(q.split("at t = ")[1].split(" s")[0])
        return [code(STATE_AT_T1, shape=shape, t=t, options=options), STATE_AT_T2]


# ---------------------------------------------------------------------------------------
# 4. appearance_order
# ---------------------------------------------------------------------------------------

ORDER_T1 = """$prelude
OPTIONS = $options
MIN_VISIBLE = $min_visible
n = len(video)
fps = video.fps
print(video)
colours = sorted({c for opt in OPTIONS for c in opt.split(" → ")})
# every appearance lasts at least MIN_VISIBLE s, so sampling twice as often misses none
step = max(1, int(MIN_VISIBLE * fps / 2))
samples = list(range(0, n, step))
first_seen = {}
for start in range(0, len(samples), 64):
    chunk = samples[start:start + 64]
    lab = color_labels(video.get_batch(chunk)[:, ::2, ::2])
    for c in colours:
        present = (lab == NAMES.index(c)).sum(axis=(1, 2)) >= 12
        for i, p in zip(chunk, present):
            if p and c not in first_seen:
                first_seen[c] = i
print(f"sampled {len(samples)} frames every {step / fps:.2f} s; first seen at frame:", first_seen)
"""

ORDER_T2 = """# colours first seen in the same sample: find their exact first frames
exact = dict(first_seen)
for c, i in first_seen.items():
    same = [d for d in first_seen if first_seen[d] == i]
    if len(same) > 1:
        frames = list(range(max(0, i - step + 1), i + 1))
        lab = color_labels(video.get_batch(frames)[:, ::2, ::2])
        present = (lab == NAMES.index(c)).sum(axis=(1, 2)) >= 12
        exact[c] = frames[int(np.argmax(present))]
order = sorted(exact, key=lambda c: exact[c])
print("order of first appearance:", order, {c: round(exact[c] / fps, 2) for c in order})
seq = " → ".join(order)
print("ABCDEFGH"[OPTIONS.index(seq)] if seq in OPTIONS else "A")
"""


class AppearanceOrder(VideoFamily):
    """In which order do the coloured shapes first appear? (permutations, multiple choice)."""

    name = "appearance_order"
    key = 104
    description = "Order in which coloured shapes first appear (multiple choice over permutations)."

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        k = (3, 4, 5)[difficulty]
        colors = [str(c) for c in rng.choice(COLOR_NAMES, size=k, replace=False)]
        cells = [int(c) for c in rng.permutation(12)[:k]]
        sprites = []
        for j in range(k):
            size = even(rng.uniform(18, 28))
            sprites.append(
                item(str(rng.choice(SHAPES)), size, colors[j], *cell_origin(rng, cells[j], size))
            )
        min_vis = (2.0, 4.0, 8.0)[difficulty]
        spacing = int(math.ceil((1.0, 3.0, 6.0)[difficulty] * fps))
        lo_f, hi_f = int(0.5 * fps), n - int((min_vis + 0.5) * fps)
        slack = hi_f - lo_f - (k - 1) * spacing
        if slack < 0:
            raise RuntimeError("appearance_order: video too short")
        firsts = [
            lo_f + int(u) + j * spacing for j, u in enumerate(np.sort(rng.uniform(0, slack, k)))
        ]
        vis = []
        for j in range(k):
            if difficulty == 0:
                vis.append(intervals_mask(n, [(firsts[j], n)]))
                continue
            on_s, off_s = (
                ((4.0, 15.0), (3.0, 10.0)) if difficulty == 1 else ((8.0, 30.0), (5.0, 40.0))
            )
            spans, t = [], firsts[j]
            while t < n:
                b = t + math.ceil(rng.uniform(*on_s) * fps)
                spans.append((t, b))
                t = b + int(rng.uniform(*off_s) * fps)
            vis.append(intervals_mask(n, spans))

        def items_at(i: int) -> list[Item]:
            return [sprites[j] for j in range(k) if vis[j][i]]

        truth = " → ".join(colors)  # colours were drawn in order of first appearance
        pool = [" → ".join(p) for p in permutations(colors)]
        swaps = []
        for j in range(k - 1):
            sw = list(colors)
            sw[j], sw[j + 1] = sw[j + 1], sw[j]
            swaps.append(" → ".join(sw))
        options, letter = choice_options(rng, truth, pool, 4, prefer=swaps[:2] if k > 3 else ())
        later = " Some shapes later disappear and come back." if difficulty else ""
        question = (
            f"Coloured shapes appear one after another in this video.{later} Whenever a shape appears "
            f"it stays visible for at least {fmt_time(min_vis)} seconds. In which order do the colours "
            f"first appear? {options_text(options)}"
        )
        return self.make_task(
            seed,
            difficulty,
            cache_dir,
            question=question,
            answer=letter,
            answer_type="choice",
            options=options,
            fps=fps,
            num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"order": colors, "first_frames": firsts, "min_visible_s": min_vis},
        )

    def expert(self, task: Task) -> list[str]:
        min_vis = float(task.question.split("for at least ")[1].split(" seconds")[0])
        return [code(ORDER_T1, options=list(task.options or []), min_visible=min_vis), ORDER_T2]


# ---------------------------------------------------------------------------------------
# 5. motion_direction
# ---------------------------------------------------------------------------------------

DIRECTION_T1 = """$prelude
import math
COLOR, SHAPE = $color, $shape
T1, T2 = $t1, $t2
OPTIONS = $options
n = len(video)
fps = video.fps
print(video)
i1 = 0 if T1 is None else min(n - 1, int(round(T1 * fps)))
i2 = n - 1 if T2 is None else min(n - 1, int(round(T2 * fps)))
track = []
for i in np.linspace(i1, i2, 5).round().astype(int):
    hits = [b for b in find_blobs(video[int(i)]) if b["color"] == COLOR]
    if hits:
        b = max(hits, key=lambda d: d["area"])
        track.append((int(i), b["x"], b["y"]))
print("positions (frame, x, y):", track)
"""

DIRECTION_T2 = """dx = track[-1][1] - track[0][1]
dy = track[-1][2] - track[0][2]
angle = math.degrees(math.atan2(-dy, dx)) % 360  # image y grows downwards
names = ["right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right"]
print(f"displacement ({dx:.0f}, {dy:.0f}) px, angle {angle:.1f} deg")
best = min(OPTIONS, key=lambda o: abs((names.index(o) * 45 - angle + 180) % 360 - 180))
print("ABCDEFGH"[OPTIONS.index(best)])
"""

FASTER_T1 = """$prelude
import math
OPTIONS = $options
n = len(video)
fps = video.fps
print(video)
print("frame 0:", [(b["color"], b["shape"], b["x"], b["y"]) for b in find_blobs(video[0])])
"""

FASTER_T2 = """# Positions one second apart at two dozen random moments. A bounce inside the gap only
# shortens the measured step, so use an upper percentile rather than the mean.
gap = max(1, int(round(fps)))
starts = sorted({int(x) for x in np.random.default_rng(0).integers(0, n - gap, 24)})
frames = sorted(set(starts) | {i + gap for i in starts})
blobs = {i: find_blobs(f) for i, f in zip(frames, video.get_batch(frames))}


def centre(i, colour):
    hits = [b for b in blobs[i] if b["color"] == colour]
    return max(hits, key=lambda d: d["area"]) if hits else None


speeds = {}
for opt in OPTIONS:
    colour = opt.split(" ")[0]
    steps = []
    for i in starts:
        p, q = centre(i, colour), centre(i + gap, colour)
        if p and q:
            steps.append(math.hypot(q["x"] - p["x"], q["y"] - p["y"]))
    speeds[opt] = float(np.percentile(steps, 75)) * fps / gap
    print(f"{opt}: about {speeds[opt]:.1f} px/s ({len(steps)} measurements)")
best = max(OPTIONS, key=lambda o: speeds[o])
print("ABCDEFGH"[OPTIONS.index(best)])
"""


class MotionDirection(VideoFamily):
    """Which way does an object move, or which object moves faster?"""

    name = "motion_direction"
    key = 105
    description = (
        "Direction of motion of a shape (8 compass directions) or which shape moves fastest."
    )

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        for attempt in range(50):
            rng = (
                self.rng(seed, difficulty)
                if attempt == 0
                else np.random.default_rng([seed, difficulty, self.key, attempt])
            )
            fps, n = pick_timing(rng, difficulty)
            base = background(rng)
            kind = str(rng.choice(["direction", "faster"]))
            made = (self._direction if kind == "direction" else self._faster)(
                rng, difficulty, fps, n
            )
            if made is None:
                continue
            question, options, letter, items_at, meta = made
            return self.make_task(
                seed,
                difficulty,
                cache_dir,
                question=question,
                answer=letter,
                answer_type="choice",
                options=options,
                fps=fps,
                num_frames=n,
                frames=lambda n=n, base=base, items_at=items_at: render_items(n, base, items_at),
                metadata={"subtype": kind, **meta},
            )
        raise RuntimeError("motion_direction: could not build a task")

    @staticmethod
    def _segment_path(
        rng: np.random.Generator, n: int, size: int, speed: float
    ) -> tuple[np.ndarray, list]:
        """Piecewise-straight path (compass headings, ±7° jitter) at ``speed`` px/frame."""
        lo, hi = np.array([4.0, 4.0]), np.array([FRAME_W - size - 4.0, FRAME_H - size - 4.0])
        p = rng.uniform(lo, hi)
        pts = np.empty((n, 2))
        segs = []
        t = 0
        while t < n:
            for _try in range(100):
                j = int(rng.integers(8))
                ang = math.radians(45 * j + rng.uniform(-7, 7))
                u = np.array([math.cos(ang), -math.sin(ang)])
                length = rng.uniform(50, 170)
                end = p + length * u
                if (end >= lo).all() and (end <= hi).all():
                    break
            else:
                j, end = -1, p + 0.0
                length = 0.0
            frames = max(2, int(round(length / speed))) if j >= 0 else 2
            for f in range(frames):
                if t + f < n:
                    pts[t + f] = p + (end - p) * (f + 1) / frames
            segs.append((t, min(n, t + frames), j, p.copy(), end.copy()))
            t += frames
            p = end
        return pts, segs

    def _direction(self, rng: np.random.Generator, difficulty: int, fps: int, n: int):
        k = (1, int(rng.integers(2, 4)), int(rng.integers(2, 4)))[difficulty]
        colors = [str(c) for c in rng.choice(COLOR_NAMES, size=k, replace=False)]
        shapes = [str(rng.choice(SHAPES)) for _ in range(k)]
        sizes = [even(rng.uniform(16, 24)) for _ in range(k)]
        paths, headings = [], []
        t1 = t2 = None
        for j in range(k):
            lo = np.array([4.0, 4.0])
            hi = np.array([FRAME_W - sizes[j] - 4.0, FRAME_H - sizes[j] - 4.0])
            if difficulty < 2:
                for _try in range(200):
                    h = int(rng.integers(8))
                    ang = math.radians(45 * h + rng.uniform(-7, 7))
                    u = np.array([math.cos(ang), -math.sin(ang)])
                    length = rng.uniform(70, 150)
                    start = rng.uniform(lo, hi)
                    end = start + length * u
                    if (end >= lo).all() and (end <= hi).all():
                        break
                else:
                    return None
                frac = np.linspace(0.0, 1.0, n)[:, None]
                paths.append(start + frac * (end - start))
                headings.append(h)
            else:
                pts, segs = self._segment_path(rng, n, sizes[j], rng.uniform(10, 22) / fps)
                paths.append(pts)
                headings.append(segs)
        target = int(rng.integers(k))
        if difficulty < 2:
            truth = DIRECTIONS[headings[target]]
            when = " during the video"
        else:
            cands = []
            for a, b, h, _p, _e in headings[target]:
                if h < 0:
                    continue
                s1, s2 = math.ceil(a / fps + 0.5), math.floor((b - 1) / fps - 0.5)
                if s2 - s1 >= 3:
                    f1, f2 = int(round(s1 * fps)), int(round(s2 * fps))
                    if np.linalg.norm(paths[target][f2] - paths[target][f1]) >= 30:
                        cands.append((s1, s2, h))
            if not cands:
                return None
            t1, t2, h = cands[int(rng.integers(len(cands)))]
            truth = DIRECTIONS[h]
            when = f" between t = {t1} s and t = {t2} s"
        hidx = DIRECTIONS.index(truth)
        prefer = [DIRECTIONS[(hidx + d) % 8] for d in (1, -1, 4, 2, -2)]
        options, letter = choice_options(
            rng, truth, DIRECTIONS, 4, prefer=prefer[: int(rng.integers(1, 4))]
        )
        order = [j for j in range(k) if j != target] + [target]  # the asked-about shape on top

        def items_at(i: int) -> list[Item]:
            return [
                item(shapes[j], sizes[j], colors[j], even(paths[j][i][0]), even(paths[j][i][1]))
                for j in order
            ]

        others = " (other shapes move too)" if k > 1 else ""
        question = (
            f"In which direction does the {colors[target]} {shapes[target]} move{when}{others}? "
            f"Directions are as seen in the frame: up is towards the top edge. {options_text(options)}"
        )
        meta = {
            "color": colors[target],
            "shape": shapes[target],
            "t1": t1,
            "t2": t2,
            "direction": truth,
        }
        return question, options, letter, items_at, meta

    def _faster(self, rng: np.random.Generator, difficulty: int, fps: int, n: int):
        k = (2, 2, 3)[difficulty]
        colors = [str(c) for c in rng.choice(COLOR_NAMES, size=k, replace=False)]
        shapes = [str(rng.choice(SHAPES)) for _ in range(k)]
        sizes = [even(rng.uniform(16, 24)) for _ in range(k)]
        slow = rng.uniform(15, 35)
        speeds = [slow * rng.uniform(1.5, 2.5)] + [
            slow * rng.uniform(0.7, 1.0) for _ in range(k - 1)
        ]
        paths = [
            bounce_path(
                rng, n, speeds[j] / fps, (4, 4), (FRAME_W - sizes[j] - 4, FRAME_H - sizes[j] - 4)
            )
            for j in range(k)
        ]
        names = [f"{colors[j]} {shapes[j]}" for j in range(k)]
        options, letter = choice_options(rng, names[0], names, k)

        def items_at(i: int) -> list[Item]:
            return [
                item(shapes[j], sizes[j], colors[j], even(paths[j][i][0]), even(paths[j][i][1]))
                for j in range(k)
            ]

        what = (
            "Which of the two shapes moves faster"
            if k == 2
            else "Which of the three shapes moves fastest"
        )
        question = (
            f"Shapes move around the frame at constant speeds, bouncing off the edges. {what}? "
            f"{options_text(options)}"
        )
        return question, options, letter, items_at, {"speeds_px_s": [round(v, 2) for v in speeds]}

    def expert(self, task: Task) -> list[str]:
        q = task.question
        options = list(task.options or [])
        if q.startswith("In which direction"):
            color, shape = q.split("does the ")[1].split(" move")[0].split(" ")
            t1 = t2 = None
            if " between t = " in q:
                t1 = float(q.split("between t = ")[1].split(" s")[0])
                t2 = float(q.split("and t = ")[1].split(" s")[0])
            return [
                code(DIRECTION_T1, color=color, shape=shape, t1=t1, t2=t2, options=options),
                DIRECTION_T2,
            ]
        return [code(FASTER_T1, options=options), FASTER_T2]


# ---------------------------------------------------------------------------------------
# 6. object_counting_over_time
# ---------------------------------------------------------------------------------------

DISTINCT_T1 = """$prelude
MIN_VISIBLE = $min_visible
n = len(video)
fps = video.fps
print(video)
step = max(1, int(MIN_VISIBLE * fps / 2))  # no appearance can slip between two samples
samples = list(range(0, n, step))
seen = {}
for start in range(0, len(samples), 64):
    chunk = samples[start:start + 64]
    for i, frame in zip(chunk, video.get_batch(chunk)):
        for b in find_blobs(frame):
            seen.setdefault((b["color"], b["shape"]), []).append(i)
for key, frames in sorted(seen.items()):
    print(key, "seen in", len(frames), "samples, first at", round(frames[0] / fps, 1), "s")
"""

DISTINCT_T2 = """print(len(seen))
"""


class ObjectCountingOverTime(VideoFamily):
    """How many distinct shapes appear over the whole video (never all at once)?"""

    name = "object_counting_over_time"
    key = 106
    description = "Count the distinct shapes that appear over the video; they are never all on screen at once."

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        for attempt in range(50):
            rng = (
                self.rng(seed, difficulty)
                if attempt == 0
                else np.random.default_rng([seed, difficulty, self.key, attempt])
            )
            made = self._try(rng, difficulty)
            if made is not None:
                fps, n, base, question, count, items_at, meta = made
                return self.make_task(
                    seed,
                    difficulty,
                    cache_dir,
                    question=question,
                    answer=str(count),
                    answer_type="number",
                    tolerance=0.0,
                    fps=fps,
                    num_frames=n,
                    frames=lambda n=n, base=base, items_at=items_at: render_items(
                        n, base, items_at
                    ),
                    metadata=meta,
                )
        raise RuntimeError("object_counting_over_time: could not schedule appearances")

    def _try(self, rng: np.random.Generator, difficulty: int):
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        lo, hi = ((2, 4), (4, 8), (6, 12))[difficulty]
        d = int(rng.integers(lo, hi + 1))
        if difficulty == 0:
            idents = [
                (str(c), str(rng.choice(SHAPES)))
                for c in rng.choice(COLOR_NAMES, size=d, replace=False)
            ]
        else:
            combos = [(c, s) for c in COLOR_NAMES for s in SHAPES]
            idents = [combos[int(i)] for i in rng.choice(len(combos), size=d, replace=False)]
        reps = [1 if difficulty == 0 else int(rng.integers(1, difficulty + 2)) for _ in idents]
        min_vis, max_vis = ((1.2, 3.0), (3.0, 10.0), (8.0, 24.0))[difficulty]
        cap = min(d - 1, (2, 3, 3)[difficulty])
        load = np.zeros(n, dtype=np.int64)
        cell_busy = np.zeros((12, n), dtype=bool)
        ident_busy = np.zeros((d, n), dtype=bool)
        shows = []  # (identity index, start, end, item)
        jobs = [j for j in range(d) for _r in range(reps[j])]
        rng.shuffle(jobs)
        for j in jobs:
            dur = math.ceil(rng.uniform(min_vis, max_vis) * fps)
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
                color, shape = idents[j]
                load[a:b] += 1
                cell_busy[cell, a:b] = True
                ident_busy[j, a:b] = True
                shows.append((j, a, b, item(shape, size, color, *cell_origin(rng, cell, size))))
                break
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
            f"the same time{comes_back}). Each appearance lasts at least {fmt_time(min_vis)} seconds. How "
            f"many distinct shapes appear in total? Shapes are distinct when they differ in colour or "
            f"in form (square, circle, triangle). Answer with an integer."
        )
        meta = {
            "identities": [list(idents[j]) for j in present],
            "appearances": len(shows),
            "max_on_screen": int(load.max()),
            "min_visible_s": min_vis,
        }
        return fps, n, base, question, count, items_at, meta

    def expert(self, task: Task) -> list[str]:
        min_vis = float(task.question.split("lasts at least ")[1].split(" seconds")[0])
        return [code(DISTINCT_T1, min_visible=min_vis), DISTINCT_T2]


VIDEO_FAMILIES: dict[str, TaskFamily] = {
    fam.name: fam
    for fam in (
        EventOnset(),
        EventCounting(),
        StateAtTime(),
        AppearanceOrder(),
        MotionDirection(),
        ObjectCountingOverTime(),
        SpatialScene(),
    )
}
