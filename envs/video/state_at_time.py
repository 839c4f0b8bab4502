"""``state_at_time``: what colour is a shape at a given moment (multiple choice)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..base import Task, TaskFamily
from ..common import choice_options, fmt_number, listing, options_text
from ..experts import expert_turns
from .rendering import (
    FRAME_H,
    FRAME_W,
    VIDEO_COLOURS,
    VIDEO_SHAPES,
    Item,
    background,
    bounce_path,
    even,
    item,
    pick_timing,
    render_items,
    video_task,
)

# How long each colour lasts (seconds), per difficulty.
SEGMENT_S = ((1.5, 4.0), (3.0, 10.0), (6.0, 25.0))
# (question, options, answer letter, metadata)
Query = tuple[str, list[str], str, dict[str, Any]]


class Track(NamedTuple):
    """One shape: its sprite size, row, colour index per frame and x per frame."""

    shape: str
    size: int
    y0: int
    colours: np.ndarray
    xs: np.ndarray


class Scene(NamedTuple):
    """The shapes of one video and the timing a query needs."""

    shapes: list[str]
    tracks: list[Track]
    fps: int
    n: int
    margin: int  # a queried colour is steady this many frames either side

    def steady(self, j: int, f: int) -> bool:
        """Does shape ``j`` keep its colour of frame ``f`` for ``margin`` frames either side?"""
        c = self.tracks[j].colours
        m = self.margin
        return m <= f < self.n - m and bool((c[f - m : f + m + 1] == c[f]).all())


class StateAtTime(TaskFamily):
    """What colour is a shape at a given moment, or when another shape changes colour?

    **Description.** One to three shapes (one per horizontal band) change colour over time,
    each colour lasting a few seconds; at difficulty 2 they also slide left and right.

    **Question.** "What colour is the circle at t = 12.5 s?" or (difficulty 2, half the tasks)
    "What colour is the square at the moment the triangle first turns blue?"; four colour
    options, the shape's own colours preferred as distractors.

    **Answer type.** ``choice``: the option's letter.

    **Difficulty.** Length 6-14 s / 32-58 s / 122-220 s; 1, 2 or 3 shapes; colours last
    1.5-4 s, 3-10 s or 6-25 s; query times on a 0.5 s grid at 0, whole seconds above; the
    "when" subtype and moving shapes only at 2. The queried colour is steady for ±0.5 s.

    **Expert.** "at": read the one frame at t and the colour of the named shape. "when": find
    each shape's band in frame 0, scan the event shape's band at half the shortest colour
    duration, bisect to the exact frame, then read the other band there. Two turns.

    **Registered id.** ``PyVisionVideo-StateAtTime-v0``.
    """

    name = "state_at_time"
    modality = "video"
    salt = 103
    tries = 50
    description = (
        "Colour of a shape at a given time (or when another shape changes colour); multiple choice."
    )

    def build(
        self, rng: np.random.Generator, seed: int, difficulty: int, cache_dir: Path
    ) -> Task | None:
        fps, n = pick_timing(rng, difficulty)
        base = background(rng)
        scene = _scene(rng, difficulty, fps, n)
        kind = "when" if difficulty == 2 and rng.random() < 0.5 else "at"
        query = (_ask_when if kind == "when" else _ask_at)(rng, difficulty, scene)
        if query is None:
            return None
        question, options, letter, qmeta = query

        def items_at(i: int) -> list[Item]:
            return [
                item(t.shape, t.size, VIDEO_COLOURS[t.colours[i]], even(t.xs[i]), t.y0)
                for t in scene.tracks
            ]

        return video_task(
            self, seed, difficulty, cache_dir, question=question, answer=letter,
            answer_type="choice", options=options, fps=fps, num_frames=n,
            frames=lambda: render_items(n, base, items_at),
            metadata={"subtype": kind, "shapes": scene.shapes, **qmeta},
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        options = list(task.options or [])
        if "at the moment the" in q:
            rest = q.split("at the moment the ")[1]
            return expert_turns(
                "video", "state_when", helpers=("blobs",),
                SHAPE_A=q.split("What colour is the ")[1].split(" ")[0],
                SHAPE_B=rest.split(" ")[0],
                EVENT=rest.split("first turns ")[1].split("?")[0],
                MIN_LAST=float(q.split("lasts at least ")[1].split(" seconds")[0]),
                OPTIONS=options,
            )
        return expert_turns(
            "video", "state_at", helpers=("blobs",),
            SHAPE=q.split("What colour is the ")[1].split(" ")[0],
            T=float(q.split("at t = ")[1].split(" s")[0]),
            OPTIONS=options,
        )


def _scene(rng: np.random.Generator, difficulty: int, fps: int, n: int) -> Scene:
    """``difficulty + 1`` shapes, one per band, each with a colour timeline and x path."""
    k = difficulty + 1
    shapes = [str(s) for s in rng.permutation(VIDEO_SHAPES)[:k]]
    band = FRAME_H // k
    tracks = []
    for j, shape in enumerate(shapes):
        size = even(rng.uniform(24, min(32, band - 12)))
        y0 = even(j * band + (band - size) / 2 + rng.uniform(-4, 4))
        cols = np.empty(n, dtype=np.int64)
        t = 0
        prev = -1
        while t < n:
            c = int(rng.choice([c for c in range(len(VIDEO_COLOURS)) if c != prev]))
            d = max(2, int(rng.uniform(*SEGMENT_S[difficulty]) * fps))
            cols[t : t + d] = c
            t += d
            prev = c
        if difficulty == 2:
            xs = bounce_path(rng, n, rng.uniform(10, 35) / fps, (4, 0), (FRAME_W - size - 4, 0))[:, 0]
        else:
            xs = np.full(n, rng.uniform(20, FRAME_W - size - 20))
        tracks.append(Track(shape, size, y0, cols, xs))
    return Scene(shapes, tracks, fps, n, max(2, int(round(0.5 * fps))))


def _colour_options(rng: np.random.Generator, track: Track, f: int) -> tuple[str, list[str], str]:
    """The track's colour at frame ``f``, four options (its own colours preferred), the letter."""
    truth = VIDEO_COLOURS[track.colours[f]]
    shown = [VIDEO_COLOURS[c] for c in np.unique(track.colours)]
    options, letter = choice_options(rng, truth, VIDEO_COLOURS, 4, prefer=shown)
    return truth, options, letter


def _ask_at(rng: np.random.Generator, difficulty: int, scene: Scene) -> Query | None:
    """What colour is one shape at a time when its colour is steady?"""
    shapes, fps, n = scene.shapes, scene.fps, scene.n
    j = int(rng.integers(len(shapes)))
    grid = 0.5 if difficulty == 0 else 1.0
    cands = [t for t in np.arange(grid, n / fps - 0.5, grid) if scene.steady(j, int(round(t * fps)))]
    if not cands:
        return None
    t = float(rng.choice(cands))
    f = int(round(t * fps))
    _truth, options, letter = _colour_options(rng, scene.tracks[j], f)
    if len(shapes) == 1:
        intro = f"The video shows a {shapes[0]} whose colour changes over time."
    else:
        intro = f"The video shows {listing(shapes)}; their colours change over time."
    question = (
        f"{intro} What colour is the {shapes[j]} at t = {fmt_number(t)} s (seconds from the start "
        f"of the video)? {options_text(options)}"
    )
    return question, options, letter, {"query_shape": shapes[j], "time": t, "frame": f}


def _ask_when(rng: np.random.Generator, difficulty: int, scene: Scene) -> Query | None:
    """What colour is one shape when another first turns a colour it never had before?"""
    shapes, fps, n = scene.shapes, scene.fps, scene.n
    seg_min = SEGMENT_S[difficulty][0]
    ja, jb = (int(x) for x in rng.permutation(len(shapes))[:2])
    cb = scene.tracks[jb].colours
    starts = {}
    for f in range(1, n):
        if cb[f] != cb[f - 1] and int(cb[f]) not in starts and cb[f] not in cb[:f]:
            starts[int(cb[f])] = f
    cands = [
        (c, f)
        for c, f in starts.items()
        if scene.steady(ja, f) and f >= 2 * fps and f + int(seg_min * fps) <= n
    ]
    if not cands:
        return None
    c_ev, f = cands[int(rng.integers(len(cands)))]
    _truth, options, letter = _colour_options(rng, scene.tracks[ja], f)
    event = VIDEO_COLOURS[c_ev]
    question = (
        f"The video shows {listing(shapes)}; their colours change over time (each "
        f"colour lasts at least {fmt_number(seg_min)} seconds). What colour is the {shapes[ja]} "
        f"at the moment the {shapes[jb]} first turns {event}? {options_text(options)}"
    )
    meta = {"query_shape": shapes[ja], "event_shape": shapes[jb], "event": event, "frame": f}
    return question, options, letter, meta
