"""Spaces for text actions and observations made of text plus images of varying size."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

# Gymnasium's Text space defaults to 62 alphanumerics; code needs every character. This is
# the whole Basic Multilingual Plane minus surrogates and most control characters (tab, newline
# and carriage return stay). Characters outside it are still accepted by ``step``.
FULL_CHARSET: str = "\t\n\r" + "".join(chr(c) for c in range(32, 0xD800)) + "".join(chr(c) for c in range(0xE000, 0xFFFE))


class UnicodeText(spaces.Text):
    """Gymnasium's ``Text`` over :data:`FULL_CHARSET`, with a ``repr`` that does not print the
    63,000-character charset (and its own shared-memory layout, see :mod:`pyvision_gym.vector`)."""

    def __init__(self, max_length: int, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(max_length=max_length, min_length=0, charset=FULL_CHARSET, seed=seed)

    def __repr__(self) -> str:
        return f"UnicodeText(max_length={self.max_length})"


def text_space(max_length: int) -> UnicodeText:
    return UnicodeText(max_length=max_length)


class ImageSequence(spaces.Space[tuple]):
    """A tuple of 0..``max_images`` RGB images (H×W×3 uint8) whose sizes may differ.

    Gymnasium's built-ins need a fixed shape per Box; observations here carry crops, zooms
    and plots of any size, so the space checks dtype, rank, channels and bounds instead.
    """

    def __init__(self, max_images: int, max_side: int = 16384, seed: int | np.random.Generator | None = None) -> None:
        super().__init__(shape=None, dtype=np.uint8, seed=seed)
        self.max_images = int(max_images)
        self.max_side = int(max_side)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> tuple[np.ndarray, ...]:
        n = int(self.np_random.integers(0, min(self.max_images, 3) + 1))
        out = []
        for _ in range(n):
            h, w = (int(v) for v in self.np_random.integers(1, 65, size=2))
            out.append(self.np_random.integers(0, 256, size=(h, w, 3), dtype=np.uint8))
        return tuple(out)

    def contains(self, x: Any) -> bool:
        if not isinstance(x, (tuple, list)) or len(x) > self.max_images:
            return False
        return all(
            isinstance(a, np.ndarray) and a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
            and 0 < a.shape[0] <= self.max_side and 0 < a.shape[1] <= self.max_side
            for a in x
        )

    def to_jsonable(self, sample_n: Sequence[tuple[np.ndarray, ...]]) -> list[list[list]]:
        return [[a.tolist() for a in s] for s in sample_n]

    def from_jsonable(self, sample_n: list[list[list]]) -> list[tuple[np.ndarray, ...]]:
        return [tuple(np.asarray(a, dtype=np.uint8) for a in s) for s in sample_n]

    def __repr__(self) -> str:
        return f"ImageSequence(max_images={self.max_images}, max_side={self.max_side})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ImageSequence) and other.max_images == self.max_images and other.max_side == self.max_side
