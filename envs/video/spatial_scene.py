"""``spatial_scene``: VSI-Bench-like questions about a room seen by a sliding top-down camera."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..base import AnswerType, Task, TaskFamily
from ..common import LETTERS, a_an, choice_options, fmt_number, options_text
from ..experts import expert_turns
from .rendering import even, video_task
from .scene import (
    ITEM_NOUN,
    PPM,
    SCENE_LEVELS,
    SceneObject,
    camera_sweep,
    layout,
    relative_side,
    window_frames,
    world_image,
)

SUBTYPES = ("direction", "closest", "count", "size", "distance")
# (question tail, answer, answer type, options, metadata)
Ask = tuple[str, str, AnswerType, list[str] | None, dict[str, Any]]
Asker = Callable[[np.random.Generator, int, list[SceneObject], list[SceneObject]], Ask | None]


class SpatialScene(TaskFamily):
    """Spatial reasoning over a room revealed by a sliding top-down camera.

    **Description.** A top-down room (1 m floor tiles, white walls) with coloured furniture
    (one piece per colour, rectangular or round) and small yellow chairs, filmed by a window
    that slides over it in a serpentine sweep without rotating or zooming, so no frame shows
    the whole room (see :mod:`.scene`).

    **Question.** One of five subtypes: relative direction ("standing at the red sofa, facing
    the blue bed: is the green desk to your left or right?"), closest object to a reference,
    number of yellow chairs, an object's longer side or diameter, the distance between two
    objects' centres.

    **Answer type.** ``choice`` (direction, closest), ``number`` (count, exact) or ``mra``
    (size and distance in metres).

    **Difficulty.** Room 7-8 × 5.5-6 m, 10-15 s, 3 objects, 2-4 chairs; 10-12 × 7.5-9 m,
    42-58 s, 4-5 objects, 3-6 chairs; 13-15 × 9.5-11 m, 150-220 s, 5-6 objects, 4-9 chairs.
    Direction questions ask left/right at 0 and front/back × left/right above.

    **Expert.** Three turns: measure the tile size from grid lines; track the grid's offset
    from frame to frame to recover the camera path; stitch a mosaic of the room and measure
    every object in metres, then answer the subtype from those measurements.

    **Registered id.** ``PyVisionVideo-SpatialScene-v0``.
    """

    name = "spatial_scene"
    modality = "video"
    salt = 107
    tries = 100
    description = (
        "VSI-Bench-like room seen by a sliding top-down camera: relative direction/distance, "
        "object count, sizes and distances in metres."
    )

    def build(
        self, rng: np.random.Generator, seed: int, difficulty: int, cache_dir: Path
    ) -> Task | None:
        level = SCENE_LEVELS[difficulty]
        fps = int(rng.choice(level["fps"]))
        n = int(round(rng.uniform(*level["dur"]) * fps))
        rw = even(rng.uniform(*level["w"]) * PPM)
        rh = even(rng.uniform(*level["h"]) * PPM)
        room = layout(rng, level, rw, rh)
        if room is None:
            return None
        named, items = room
        cams = camera_sweep(rng, rw, rh, n, max(max(o.w, o.h) for o in named))
        if cams is None:
            return None
        subtype = str(rng.choice(SUBTYPES))
        made = ASKERS[subtype](rng, difficulty, named, items)
        if made is None:
            return None
        tail, answer, answer_type, options, qmeta = made
        world = world_image(rw, rh, named + items)
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
        return video_task(
            self, seed, difficulty, cache_dir, question=f"{_intro(named)} {tail}", answer=answer,
            answer_type=answer_type, options=options, fps=fps, num_frames=n,
            frames=lambda: window_frames(world, cams), metadata=meta,
        )

    def expert(self, task: Task) -> list[str]:
        q = task.question
        listed = q.split("its own colour: ")[1].split("; and some")[0]
        labels = [part.split(" ", 1)[1] for part in listed.split(", ")]  # drop "a" / "an"
        tail = q.split("the objects as seen from above. ")[1]

        def colour_in(text: str) -> str:
            """The colour of the (longest) object label in ``text``."""
            return max((lab for lab in labels if lab in text), key=len).split(" ")[0]

        turns = expert_turns("video", "scene_map", helpers=("blobs",))
        options = list(task.options or [])
        if tail.startswith("Imagine standing"):
            last = expert_turns(
                "video", "scene_direction",
                STAND=colour_in(tail.split("standing at the ")[1].split(" and facing")[0]),
                FACE=colour_in(tail.split("facing the ")[1].split(":")[0]),
                TARGET=colour_in(tail.split(":")[1]),
                OPTIONS=options,
            )
        elif tail.startswith("Which of these objects"):
            ref = colour_in(tail.split("closest to the ")[1].split(" (centre")[0])
            last = expert_turns("video", "scene_closest", REF=ref, OPTIONS=options)
        elif tail.startswith("How many"):
            last = expert_turns("video", "scene_count")
        elif "distance between the centres" in tail:
            part = tail.split("centres of the ")[1].split(", in metres")[0]
            a_txt, b_txt = part.split(" and the ")
            last = expert_turns("video", "scene_distance", A=colour_in(a_txt), B=colour_in(b_txt))
        else:
            obj = colour_in(tail.split(" of the ")[1].split(", in metres")[0])
            last = expert_turns("video", "scene_size", OBJ=obj)
        turns[-1] = turns[-1] + "\n" + last[0]
        return turns


def _intro(named: list[SceneObject]) -> str:
    listed = ", ".join(f"{a_an(o.label)} {o.label}" for o in named)
    return (
        "This video is a top-down view of a room, filmed by a camera that slides over it without "
        "rotating or zooming, so only part of the room is visible at a time. The floor is tiled "
        "with 1 m x 1 m tiles (light grid lines). The room contains furniture, each piece with "
        f"its own colour: {listed}; and some small yellow {ITEM_NOUN}. Positions refer to the "
        "centres of the objects as seen from above."
    )


# -- the five subtypes -----------------------------------------------------------------------
def _ask_direction(
    rng: np.random.Generator, difficulty: int, named: list[SceneObject], items: list[SceneObject]
) -> Ask | None:
    """Standing at one object facing another: which side is a third on?"""
    k = len(named)
    quad = difficulty > 0
    for _try in range(100):
        a, b, c = (named[int(i)] for i in rng.permutation(k)[:3])
        if np.linalg.norm(b.centre - a.centre) < 1.0 or np.linalg.norm(c.centre - a.centre) < 1.0:
            continue
        ang = relative_side(a.centre, b.centre, c.centre)
        if not 20 <= abs(ang) <= 160 or (quad and abs(abs(ang) - 90) < 15):
            continue
        side = "left" if ang > 0 else "right"
        if quad:
            truth = ("front-" if abs(ang) < 90 else "back-") + side
            options = ["front-left", "front-right", "back-left", "back-right"]
            ask = "where is the {t}: in front of you or behind you, and to your left or right?"
        else:
            truth = side
            options = ["left", "right"]
            ask = "is the {t} to your left or to your right?"
        tail = (
            f"Imagine standing at the {a.label} and facing the {b.label}: "
            + ask.format(t=c.label)
            + f" {options_text(options)}"
        )
        meta = {"stand": a.label, "face": b.label, "target": c.label, "angle_deg": round(ang, 1)}
        return tail, LETTERS[options.index(truth)], "choice", options, meta
    return None


def _ask_closest(
    rng: np.random.Generator, difficulty: int, named: list[SceneObject], items: list[SceneObject]
) -> Ask | None:
    """Which of 3-4 objects is closest to a reference (a clear winner)?"""
    k = len(named)
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
        meta = {"reference": ref.label, "distances": {lab: round(v, 3) for v, lab in d}}
        return tail, letter, "choice", options, meta
    return None


def _ask_count(
    rng: np.random.Generator, difficulty: int, named: list[SceneObject], items: list[SceneObject]
) -> Ask | None:
    """How many yellow chairs?"""
    tail = f"How many yellow {ITEM_NOUN} are there in the room? Answer with an integer."
    return tail, str(len(items)), "number", None, {}


def _ask_size(
    rng: np.random.Generator, difficulty: int, named: list[SceneObject], items: list[SceneObject]
) -> Ask | None:
    """The longer side (or diameter) of an object at least 1 m across."""
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


def _ask_distance(
    rng: np.random.Generator, difficulty: int, named: list[SceneObject], items: list[SceneObject]
) -> Ask | None:
    """The distance between two objects' centres (at least 2 m)."""
    for _try in range(100):
        a, b = (named[int(i)] for i in rng.permutation(len(named))[:2])
        d = float(np.linalg.norm(a.centre - b.centre))
        if d >= 2.0:
            tail = (
                f"What is the distance between the centres of the {a.label} and the {b.label}, "
                f"in metres? Answer with a number."
            )
            return tail, fmt_number(d), "mra", None, {"pair": [a.label, b.label], "distance_m": round(d, 4)}
    return None


ASKERS: dict[str, Asker] = {
    "direction": _ask_direction,
    "closest": _ask_closest,
    "count": _ask_count,
    "size": _ask_size,
    "distance": _ask_distance,
}
