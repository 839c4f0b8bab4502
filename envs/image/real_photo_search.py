"""real_photo_search: a tiny badge or code tag pasted into a large collage of real photos."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..base import Task, TaskFamily
from ..common import format_choices, letter_of, pick_options
from ..experts import expert_turns
from . import drawing as dr
from .layout import search_size, tiny_size

PHOTO_WIDTHS = {0: (2400, 3200), 1: (3200, 4400), 2: (4400, 5600)}
ASKS = ("colour", "shape", "code")
MARGIN = 40  # the patch keeps this far from the canvas edges


@dataclass
class Patch:
    """The pasted badge or tag: its image, the asked value, where the mark sits inside it."""

    image: Image.Image
    value: str
    inner: int | None  # offset of the shape inside a badge (None for a code tag)
    size: int  # the shape's side, or the code's font size
    cap_height: int | None  # height of a capital of the code (None for a badge)


class RealPhotoSearch(TaskFamily):
    """A collage of real photographs with a tiny inserted badge or tag to find and read.

    ## Description
    A 2.4K-5.6K wide collage of scikit-image's bundled sample photographs (randomly cropped,
    mirrored and upscaled, contrast kept below pure white) in a grid of cells. Pasted
    somewhere: either a tiny white badge with one coloured shape of 12-16 px, or a tiny
    white tag with a short printed code. The patch is the only pure-white thing in the image.

    ## Question
    Badge: "A tiny white badge with a coloured shape on it has been pasted somewhere ... What
    colour is the shape / What shape is drawn on the badge?" (four lettered options). Tag:
    "A tiny white tag with a printed code ... What is the code?"

    ## Answer type
    ``choice`` for the badge (the option letter; 1 or 0); ``string`` for the code
    (normalised exact match; 1 or 0).

    ## Difficulty
    - 0: 2400-3200 px wide, 2-3 x 2-3 photos; codes ``LLD`` in a 14-16 px font.
    - 1: 3200-4400 px, 2-3 x 3-4 photos; codes ``LDLD``, 12-14 px font.
    - 2: 4400-5600 px, 3-4 x 4-5 photos; codes ``LLDDL``, 11-12 px font.

    ## Expert
    Turn 1 finds the largest pure-white patch on a reduced copy and crops its inside at full
    size. Turn 2 reads a code by matching glyphs with renderings of Pillow's default font, or
    names the badge's shape (its fill) or colour (nearest hue among the options).

    ## Registered id
    ``PyVisionImage-RealPhotoSearch-v0``
    """

    name = "real_photo_search"
    modality = "image"
    description = "A tiny badge or code tag pasted into a large collage of real photos: name its colour, shape or code."
    salt = 108

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, PHOTO_WIDTHS, difficulty)
        rows, cols = ((2, 2), (2, 3), (3, 4))[difficulty]
        rows += int(rng.integers(0, 2))
        cols += int(rng.integers(0, 2))
        image = dr.photo_collage(rng, width, height, rows, cols)
        ask = ASKS[int(rng.integers(3))]
        patch = self._code_tag(rng, difficulty) if ask == "code" else self._badge(rng, ask, width)
        x = int(rng.integers(MARGIN, width - MARGIN - patch.image.width))
        y = int(rng.integers(MARGIN, height - MARGIN - patch.image.height))
        image.paste(patch.image, (x, y))
        badge_box = [x, y, x + patch.image.width, y + patch.image.height]
        if ask == "code":
            question = (
                "A tiny white tag with a printed code has been pasted somewhere into this collage of photos. "
                "What is the code? Answer with the code exactly as printed."
            )
            answer, options, target_bbox = patch.value, None, badge_box
        else:
            options = pick_options(rng, patch.value, dr.SHAPE_COLOURS if ask == "colour" else dr.SHAPES)
            what = "What colour is the shape on the badge?" if ask == "colour" else "What shape is drawn on the badge?"
            question = format_choices(
                "A tiny white badge with a coloured shape on it has been pasted somewhere into this collage of "
                f"photos. {what}",
                options,
            )
            answer = letter_of(options, patch.value)
            inner = x + (patch.inner or 0), y + (patch.inner or 0)
            target_bbox = [inner[0], inner[1], inner[0] + patch.size, inner[1] + patch.size]
        return self.make_task(
            seed, difficulty,
            question=question, answer=answer, answer_type="string" if ask == "code" else "choice",
            options=options,
            images={"image": image},
            metadata={"ask": ask, "value": patch.value, "badge_bbox": badge_box, "target_bbox": target_bbox,
                      "grid": [rows, cols], "cap_height": patch.cap_height},
        )

    @staticmethod
    def _code_tag(rng: np.random.Generator, difficulty: int) -> Patch:
        """A white tag with a short printed code."""
        value = dr.random_code(rng, ("LLD", "LDLD", "LLDDL")[difficulty])
        size = int(rng.integers(*((14, 17), (12, 15), (11, 13))[difficulty]))
        tag = dr.text_tag(value, size, (255, 255, 255), pad=int(rng.integers(6, 8)))
        cap = dr.font(size).getbbox("H")
        return Patch(tag, value, None, size, cap[3] - cap[1])

    @staticmethod
    def _badge(rng: np.random.Generator, ask: str, width: int) -> Patch:
        """A white badge with one tiny coloured shape; the value is its colour or its shape."""
        size = tiny_size(rng, width)
        colour = dr.SHAPE_COLOURS[int(rng.integers(8))]
        shape = dr.SHAPES[int(rng.integers(4))]
        pad = int(rng.integers(5, 7))
        badge = dr.shape_badge(shape, dr.SHAPE_PALETTE[colour], size, pad)
        return Patch(badge, colour if ask == "colour" else shape, pad + 1, size, None)

    def expert(self, task: Task) -> list[str]:
        if task.answer_type == "string":
            ask, helpers = "code", ("ocr_tools", "white_tag")
        else:
            ask = "colour" if "What colour" in task.question else "shape"
            helpers = ("blob_tools", "white_tag")
        return expert_turns("image", self.name, helpers=helpers, read=("ASK", "OPTIONS"), ASK=ask, ALPHABET=dr.CODE_ALPHABET,
                            OPTIONS=list(task.options or []))
