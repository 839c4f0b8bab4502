"""text_reading: read a small printed code off a white tag hidden in a large cluttered image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ..base import Task, TaskFamily
from ..experts import expert_turns
from . import drawing as dr
from .layout import Box, cluttered_search_canvas, search_size

TEXT_WIDTHS = {0: (2000, 3000), 1: (3000, 4500), 2: (4500, 6000)}
CODE_PATTERNS = {0: ("LLL-DDD", "LLDD", "DLL-DD"), 1: ("LLD-DDD", "DLL-LDD", "LLLL-DD"), 2: ("LLDL-DDLD", "DLLD-LDDL", "LLD-LDD-DL")}
TAG_PAPERS = [(250, 235, 140), (170, 210, 250), (190, 240, 180), (250, 200, 210), (220, 220, 220)]


def paste_somewhere(rng: np.random.Generator, image: Image.Image, patch: Image.Image, taken: list[Box],
                    margin: int = 30) -> Box:
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


class TextReading(TaskFamily):
    """Read a small printed code off a white tag hidden in a large cluttered image.

    ## Description
    The cluttered canvas of the search families (grey texture, grey clutter, coloured shapes),
    2K-6K wide, with one small white tag (1 px dark border) bearing a code such as
    ``K7Q-482`` printed in Pillow's default font, its capitals at most ~6 px tall once the
    canvas is shown 1000 px wide. Harder levels add loose grey lettering and decoy tags
    printed on coloured paper. Codes avoid the look-alikes I, O, 0 and 1.

    ## Question
    "A small white tag with a thin dark border is hidden somewhere in this large image. What
    code is printed on it? Answer with the code exactly as printed."

    ## Answer type
    ``string``: normalised exact match (case, spaces and edge punctuation ignored); 1 or 0.

    ## Difficulty
    - 0: 2000-3000 px wide; codes of 4-7 characters; 13-16 px font; no decoys.
    - 1: 3000-4500 px; codes of 7 characters; 11-14 px font; 12 loose codes, 2 decoy tags.
    - 2: 4500-6000 px; codes of 9-10 characters; 10-12 px font; 30 loose codes, 4 decoy tags.

    ## Expert
    Turn 1 finds the largest pure-white patch on a reduced copy (nothing else is pure white)
    and crops the tag's inside at full size. Turn 2 splits the ink into glyphs and matches
    each with renderings of the default font at the sizes that fit the capital height.

    ## Registered id
    ``PyVisionImage-TextReading-v0``
    """

    name = "text_reading"
    modality = "image"
    description = "Read a small code (e.g. K7Q-482) printed on a white tag somewhere in a 2K-6K cluttered image."
    salt = 105

    def generate(self, seed: int, difficulty: int, cache_dir: Path) -> Task:
        rng = self.rng(seed, difficulty)
        width, height = search_size(rng, TEXT_WIDTHS, difficulty)
        image, _, _ = cluttered_search_canvas(rng, width, height, difficulty)
        draw = ImageDraw.Draw(image)
        patterns = CODE_PATTERNS[difficulty]
        for _ in range((0, 12, 30)[difficulty]):  # loose grey lettering, not on any tag
            x, y = int(rng.integers(0, width - 200)), int(rng.integers(0, height - 40))
            pattern = patterns[int(rng.integers(3))]
            draw.text((x, y), dr.random_code(rng, pattern), fill=dr.muted_colour(rng, (30, 90)), font=dr.font(int(rng.integers(10, 20))))
        lo, hi = ((13, 16), (11, 14), (10, 12))[difficulty]
        taken: list[Box] = []
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
            seed, difficulty,
            question=stem, answer=answer, answer_type="string",
            images={"image": image},
            metadata={"tag_bbox": list(box), "font_size": size, "cap_height": cap[3] - cap[1], "target_bbox": list(box)},
        )

    def expert(self, task: Task) -> list[str]:
        return expert_turns("image", self.name, helpers=("ocr_tools", "white_tag"), ALPHABET=dr.CODE_ALPHABET)
