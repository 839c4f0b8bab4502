"""spatial_relation: the object closest to / farthest from a reference, or inside a frame."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..base import Task, TaskFamily
from ..common import format_choices, letter_of, pick_options
from ..experts import expert_turns
from . import drawing as dr
from .layout import Box, scatter_boxes

SIZES = ((800, 600), (1000, 750), (1200, 900))  # canvas (width, height) per difficulty
Corner = tuple[int, int]


class SpatialRelation(TaskFamily):
    """Closest / farthest object from a reference, or which object sits inside a frame.

    ## Description
    Five to nine filled shapes, each named by its colour and kind (e.g. "blue diamond") and
    each name unique. For a distance question the answer's distance (between centres) beats
    the runner-up's by a set margin. For a frame question, one to three hollow rectangles in
    colours no object uses each hold exactly one object; the other objects stay outside.

    ## Question
    "Which object is closest to / farthest from the <colour> <shape> (measuring between
    object centres)?" or "Which object is inside the <colour> frame?", four lettered options.

    ## Answer type
    ``choice``: the option letter (or the option's text); 1 if right, else 0.

    ## Difficulty
    - 0: 800x600 white canvas, 5 objects of 30-56 px in distinct colours, distance questions
      only, runner-up at least 1.3 times farther (or nearer).
    - 1: 1000x750 textured canvas, 6 objects of 28-52 px, a frame question 35% of the time
      (1-2 frames), margin 1.2.
    - 2: 1200x900, 9 objects of 24-48 px that may share a colour, 2-3 frames, margin 1.15.

    ## Expert
    Turn 1 lists the saturated blobs, telling hollow frames (low fill) from objects and naming
    each object by colour and shape. Turn 2 measures centre distances to the reference and
    picks the nearest or farthest option, or the object whose centre lies inside the frame.

    ## Registered id
    ``PyVisionImage-SpatialRelation-v0``
    """

    name = "spatial_relation"
    modality = "image"
    description = "Which object is closest to / farthest from a reference object, or inside a coloured frame."
    salt = 107

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = SIZES[difficulty]
        n_obj = (5, 6, 9)[difficulty]
        ask = "inside" if difficulty and rng.random() < 0.35 else ("closest", "farthest")[int(rng.integers(2))]
        n_frames = 0 if ask != "inside" else int(rng.integers(1, 3)) + (difficulty == 2)
        order = rng.permutation(8)
        frame_colours = [dr.SHAPE_COLOURS[i] for i in order[:n_frames]]
        object_colours = [dr.SHAPE_COLOURS[i] for i in order[n_frames:]]
        if difficulty < 2:
            combos = [(object_colours[i], dr.SHAPES[int(rng.integers(4))]) for i in range(n_obj)]
        else:
            pool = [(c, s) for c in object_colours for s in dr.SHAPES]
            combos = [pool[i] for i in rng.choice(len(pool), n_obj, replace=False)]
        names = [f"{c} {s}" for c, s in combos]
        sizes, frames, corners, ref, answer_idx = self._arrange(rng, width, height, difficulty, n_obj, n_frames, ask)

        image = (
            Image.new("RGB", (width, height), (255, 255, 255))
            if difficulty == 0
            else dr.textured_background(rng, width, height, lum=(200, 240), tint=8, tile=256)
        )
        draw = ImageDraw.Draw(image)
        for (fx0, fy0, fx1, fy1), colour in zip(frames, frame_colours, strict=True):
            draw.rectangle([fx0, fy0, fx1, fy1], outline=dr.SHAPE_PALETTE[colour], width=4)
        for (c, s), (x, y), size in zip(combos, corners, sizes, strict=True):
            dr.draw_shape(draw, s, x, y, size, dr.SHAPE_PALETTE[c])

        if ask == "inside":
            answer_idx = int(rng.integers(n_frames))
            options = pick_options(rng, names[answer_idx], names)
            stem = f"Which object is inside the {frame_colours[answer_idx]} frame?"
        else:
            candidates = [n for i, n in enumerate(names) if i != ref]
            options = pick_options(rng, names[answer_idx], candidates)
            word = "closest to" if ask == "closest" else "farthest from"
            stem = f"Which object is {word} the {names[ref]} (measuring between object centres)?"
        return self.make_task(
            seed, difficulty,
            question=format_choices(stem, options),
            answer=letter_of(options, names[answer_idx]),
            answer_type="choice",
            options=options,
            images={"image": image},
            metadata={"ask": ask, "objects": names, "frames": frame_colours, "answer_object": names[answer_idx]},
        )

    # -- layout --------------------------------------------------------------------------------
    def _arrange(self, rng: np.random.Generator, width: int, height: int, difficulty: int, n_obj: int,
                 n_frames: int, ask: str) -> tuple[list[int], list[Box], list[Corner], int, int]:
        """Object sizes, frames and corners; for a distance question also the reference object
        and the answer (both -1 for a frame question). Draws new sizes until a layout fits."""
        lo, hi = ((30, 56), (28, 52), (24, 48))[difficulty]
        margin_ratio = (1.3, 1.2, 1.15)[difficulty]
        while True:
            sizes = [int(rng.integers(lo, hi + 1)) for _ in range(n_obj)]
            if n_frames:
                framed = self._framed(rng, width, height, sizes, n_frames)
                if framed is not None:
                    return sizes, framed[0], framed[1], -1, -1
                continue
            corners = scatter_boxes(rng, width, height, sizes, gap=14, margin=12)
            if corners is None:
                continue
            centres = np.array([(x + (s - 1) / 2, y + (s - 1) / 2) for (x, y), s in zip(corners, sizes, strict=True)])
            ref = int(rng.integers(n_obj))
            dist = np.hypot(*(centres - centres[ref]).T)
            others = sorted((float(d), i) for i, d in enumerate(dist) if i != ref)
            if ask == "closest" and others[1][0] >= margin_ratio * others[0][0]:
                return sizes, [], corners, ref, others[0][1]
            if ask == "farthest" and others[-1][0] >= margin_ratio * others[-2][0]:
                return sizes, [], corners, ref, others[-1][1]

    @staticmethod
    def _framed(rng: np.random.Generator, width: int, height: int, sizes: list[int],
                n_frames: int) -> tuple[list[Box], list[Corner]] | None:
        """Frames side by side in their own columns, each holding exactly one object (the first
        ``n_frames``), the other objects clear of every frame; None if they do not fit."""
        columns = np.linspace(20, width - 20, n_frames + 1)
        frames: list[Box] = []
        for k in range(n_frames):
            fw = int(rng.integers(150, min(280, int(columns[k + 1] - columns[k]) - 20)))
            fh = int(rng.integers(150, min(280, height // 2)))
            fx = int(rng.integers(int(columns[k]), int(columns[k + 1]) - fw))
            fy = int(rng.integers(20, height - 20 - fh))
            frames.append((fx, fy, fx + fw, fy + fh))
        corners: list[Corner] = []
        for k, (fx0, fy0, fx1, fy1) in enumerate(frames):
            s = sizes[k]
            corners.append((int(rng.integers(fx0 + 14, fx1 - 14 - s)), int(rng.integers(fy0 + 14, fy1 - 14 - s))))
        keep_out = [(f[0] - 8, f[1] - 8, f[2] + 8, f[3] + 8) for f in frames]
        rest = scatter_boxes(rng, width, height, sizes[n_frames:], gap=14, margin=12, avoid=keep_out)
        return None if rest is None else (frames, corners + rest)

    def expert(self, task: Task) -> list[str]:
        q = task.question
        if "inside the" in q:
            ask, ref = "inside", ""
            frame_colour = next(c for c in dr.SHAPE_COLOURS if f"inside the {c} frame" in q)
        else:
            ask, frame_colour = ("closest" if "closest" in q else "farthest"), ""
            ref = q.split(" the ")[1].split(" (measuring")[0]
        return expert_turns("image", self.name, helpers=("blob_tools",),
                            read=("ASK", "FRAME_COLOUR", "REF", "OPTIONS"), ASK=ask, FRAME_COLOUR=frame_colour,
                            REF=ref, OPTIONS=list(task.options or []))
