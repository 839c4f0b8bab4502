"""``event_onset``: when does something first happen (seconds, MRA-scored)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..base import Task, TaskFamily
from ..common import a_an, fmt_number
from ..experts import expert_turns
from .rendering import (
    FRAME_H,
    FRAME_W,
    VIDEO_COLOURS,
    VIDEO_SHAPES,
    WHITE,
    Item,
    background,
    bounce_path,
    cell_origin,
    even,
    intervals_mask,
    item,
    paste,
    pick_timing,
    render_items,
    shape_mask,
    video_task,
)

BALL, HALF = 14, 6.5  # ball diameter and half of it (px)
# the box a ball's centre stays in
LO, HI = (HALF, HALF), (FRAME_W - 1 - HALF, FRAME_H - 1 - HALF)
# (what the question says, onset frame, per-frame items, metadata)
Onset = tuple[str, int, Callable[[int], list[Item]], dict[str, Any]]


@dataclass(frozen=True)
class Zone:
    """The continuous box of a zone's interior (pixel centres x0..x0+w-1, y0..y0+h-1)."""

    bx0: float
    bx1: float
    by0: float
    by1: float

    def inside(self, c: np.ndarray, m: float) -> bool:
        """Is point ``c`` inside the box shrunk by ``m`` (grown when ``m`` < 0)?"""
        return bool(self.bx0 + m <= c[0] <= self.bx1 - m and self.by0 + m <= c[1] <= self.by1 - m)


class EventOnset(TaskFamily):
    """When does an event first happen? Answer in seconds.

    **Description.** Coloured shapes on a dark backdrop. Subtype ``appear``: a target shape
    appears at some frame and stays until the end, while distractors come and go. Subtype
    ``enter``: a ball wanders outside a white outlined zone, then heads in and its centre stays
    inside; the onset is at least 15% into the video.

    **Question.** "At what time, in seconds from the start of the video, does the red circle
    first appear?" / "... does the centre of the blue ball first enter the zone?"

    **Answer type.** ``mra``: seconds (up to two decimals), scored by mean relative accuracy.

    **Difficulty.** Length 6-14 s / 32-58 s / 122-220 s (see ``TIMING``). ``appear``: 0, 2-3
    or 4-6 distractors; at 2 half of them share the target's colour or shape. ``enter``: 0, 1-2
    or 2-4 other balls that may cross the zone; at 2 the ball wanders closer to the zone.

    **Expert.** Two turns: find the target (or the zone in frame 0) and check both ends, then
    bisect over frames, since "visible" / "inside" is monotone in time.

    **Registered id.** ``PyVisionVideo-EventOnset-v0``.
    """

    name = "event_onset"
    modality = "video"
    salt = 101
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
            question, onset, items_at, meta = _appear(rng, difficulty, n)
        else:
            question, onset, items_at, meta = _enter(rng, difficulty, fps, n, base)
        return video_task(
            self, seed, difficulty, cache_dir, question=question, answer=fmt_number(onset / fps),
            answer_type="mra", fps=fps, num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"subtype": kind, "onset_frame": onset, **meta},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "outline marks" in q:
            colour = q.split(" ball moves")[0].split()[-1]
            return expert_turns("video", "onset_enter", helpers=("blobs",), COLOUR=colour)
        colour, shape = q.split(" appears at some moment")[0].split()[-2:]
        return expert_turns("video", "onset_appear", helpers=("blobs",), COLOUR=colour, SHAPE=shape)


# -- subtype "appear" -------------------------------------------------------------------------
def _distractor(
    rng: np.random.Generator, difficulty: int, n: int, colour: str, shape: str, cell: int
) -> tuple[Item, np.ndarray]:
    """A shape (not the target) that comes and goes, and its per-frame visibility."""
    if difficulty == 2 and rng.random() < 0.5:
        # same colour, other shape (or same shape, other colour): needs both cues
        if rng.random() < 0.5:
            dc, ds = colour, str(rng.choice([s for s in VIDEO_SHAPES if s != shape]))
        else:
            dc, ds = str(rng.choice([c for c in VIDEO_COLOURS if c != colour])), shape
    else:
        dc = str(rng.choice([c for c in VIDEO_COLOURS if c != colour]))
        ds = str(rng.choice(VIDEO_SHAPES))
    dsize = even(rng.uniform(18, 28))
    spans = []
    t = int(rng.integers(0, max(1, n // 3)))
    on_len = (0.05, 0.3) if difficulty == 1 else (0.03, 0.2)  # fraction of the video
    while t < n:
        a = t
        b = a + max(2, int(rng.uniform(*on_len) * n))
        spans.append((a, b))
        t = b + max(2, int(rng.uniform(*on_len) * n))
    return item(ds, dsize, dc, *cell_origin(rng, cell, dsize)), intervals_mask(n, spans)


def _appear(rng: np.random.Generator, difficulty: int, n: int) -> Onset:
    cells = [int(c) for c in rng.permutation(12)]
    colour = str(rng.choice(VIDEO_COLOURS))
    shape = str(rng.choice(VIDEO_SHAPES))
    size = even(rng.uniform(18, 28))
    target = item(shape, size, colour, *cell_origin(rng, cells[0], size))
    onset = int(rng.integers(max(1, int(0.2 * n)), int(0.9 * n)))
    num_distract = (0, int(rng.integers(2, 4)), int(rng.integers(4, 7)))[difficulty]
    distract = [
        _distractor(rng, difficulty, n, colour, shape, cells[1 + j]) for j in range(num_distract)
    ]

    def items_at(i: int) -> list[Item]:
        out = [it for it, vis in distract if vis[i]]
        if i >= onset:
            out.append(target)
        return out

    others = "; other shapes come and go" if num_distract else ""
    question = (
        f"{a_an(colour).capitalize()} {colour} {shape} appears at some moment in this video and then stays on screen until "
        f"the end{others}. At what time, in seconds from the start of the video, does the "
        f"{colour} {shape} first appear? Answer with a number of seconds."
    )
    return question, onset, items_at, {"color": colour, "shape": shape}


# -- subtype "enter" --------------------------------------------------------------------------
def _wander(
    zone: Zone, c: np.ndarray, v: np.ndarray, steps: int, margin: float
) -> tuple[list[np.ndarray], np.ndarray]:
    """``steps`` positions bouncing off the frame edges and off the zone grown by ``margin``."""
    pts = []
    for _i in range(steps):
        pts.append(c.copy())
        q = c + v
        for a in range(2):
            if q[a] < LO[a] or q[a] > HI[a]:
                v[a] = -v[a]
        q = c + v
        if zone.inside(q, -margin):
            if not (zone.bx0 - margin <= c[0] <= zone.bx1 + margin):
                v[0] = -v[0]
            else:
                v[1] = -v[1]
            q = c + v
            if zone.inside(q, -margin) or not (LO[0] <= q[0] <= HI[0] and LO[1] <= q[1] <= HI[1]):
                v = -v
                q = c + v
        c = np.clip(q, LO, HI)
    return pts, c


def _quantise(c: np.ndarray) -> np.ndarray:
    """The ball's centre once its corner sits on the even pixel grid."""
    return np.array([even(c[0] - HALF) + HALF, even(c[1] - HALF) + HALF])


def _try_entering_path(
    rng: np.random.Generator, zone: Zone, fps: int, n: int, pre_margin: float
) -> tuple[np.ndarray, int] | None:
    """Wander outside, approach a point well inside, bounce within: (centres, onset) or None."""
    speed = float(np.clip(rng.uniform(35, 75) / fps, 2.5, 14.0))
    k0 = int(rng.integers(int(0.2 * n), int(0.8 * n)))
    c = np.array([rng.uniform(LO[0], HI[0]), rng.uniform(LO[1], HI[1])])
    if zone.inside(c, -pre_margin - 2):
        return None
    ang = rng.uniform(0, 2 * math.pi)
    v = speed * np.array([math.cos(ang), math.sin(ang)])
    pts, c = _wander(zone, c, v, k0, pre_margin)
    # approach: head for a point well inside the zone
    goal = np.array(
        [rng.uniform(zone.bx0 + 12, zone.bx1 - 12), rng.uniform(zone.by0 + 12, zone.by1 - 12)]
    )
    d = goal - c
    u = d / max(np.linalg.norm(d), 1e-6)
    s_app = max(speed, 5.0)
    while len(pts) < n and not zone.inside(c, 3.0):
        pts.append(c.copy())
        c = c + s_app * u
    # inside: bounce within the interior (centre at least 3 px from its border)
    rest = n - len(pts)
    if rest > 0:
        ilo, ihi = (zone.bx0 + 3.0, zone.by0 + 3.0), (zone.bx1 - 3.0, zone.by1 - 3.0)
        start = (float(np.clip(c[0], ilo[0], ihi[0])), float(np.clip(c[1], ilo[1], ihi[1])))
        pts.extend(bounce_path(rng, rest, min(speed, 6.0), ilo, ihi, start))
    qs = np.array([_quantise(p) for p in pts[:n]])
    flags = np.array([zone.inside(q, 1.0) for q in qs])
    outside = np.array([not zone.inside(q, -1.0) for q in qs])
    if not flags.any():
        return None
    k = int(np.argmax(flags))
    if flags[k:].all() and outside[:k].all() and 0.15 * n <= k <= 0.93 * n:
        return qs, k
    return None


def _enter(
    rng: np.random.Generator, difficulty: int, fps: int, n: int, base: np.ndarray
) -> Onset:
    colour = str(rng.choice(VIDEO_COLOURS))
    zw, zh = even(rng.uniform(64, 100)), even(rng.uniform(52, 76))
    zx0 = even(rng.uniform(24, FRAME_W - 24 - zw))
    zy0 = even(rng.uniform(20, FRAME_H - 20 - zh))
    zone = Zone(zx0 - 0.5, zx0 + zw - 0.5, zy0 - 0.5, zy0 + zh - 0.5)
    pre_margin = 4.0 if difficulty == 2 else HALF + 5.0
    for _attempt in range(500):
        made = _try_entering_path(rng, zone, fps, n, pre_margin)
        if made is not None:
            path, onset = made
            break
    else:
        raise RuntimeError("event_onset: could not build an entering trajectory")

    num_distract = (0, int(rng.integers(1, 3)), int(rng.integers(2, 5)))[difficulty]
    others = []
    for _j in range(num_distract):
        dc = str(rng.choice([c for c in VIDEO_COLOURS if c != colour]))
        dpath = bounce_path(rng, n, float(np.clip(rng.uniform(30, 80) / fps, 2.0, 16.0)), LO, HI)
        others.append((dc, dpath))
    paste(base, shape_mask("outline", zw + 4, zh + 4), WHITE, zx0 - 2, zy0 - 2)

    def items_at(i: int) -> list[Item]:
        out: list[Item] = [
            item("circle", BALL, dc, even(p[i][0] - HALF), even(p[i][1] - HALF))
            for dc, p in others
        ]
        out.append(item("circle", BALL, colour, int(path[i][0] - HALF), int(path[i][1] - HALF)))
        return out

    extra = " Other balls move around too and may cross the zone." if num_distract else ""
    question = (
        f"A white outline marks a rectangular zone. {a_an(colour).capitalize()} {colour} ball moves around; at some moment "
        f"its centre enters the zone for the first time, and after that the ball stays inside."
        f"{extra} At what time, in seconds from the start of the video, does the centre of the "
        f"{colour} ball first enter the zone? Answer with a number of seconds."
    )
    return question, onset, items_at, {"color": colour, "zone": [zx0, zy0, zx0 + zw, zy0 + zh]}
