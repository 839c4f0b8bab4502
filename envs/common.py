"""Option and wording helpers shared by the image and video task families.

Modality-neutral: nothing here draws or renders. Multiple-choice answers are letters
(``LETTERS``); the option order always comes from the family's seeded generator, so these
helpers consume random numbers exactly as the families always have (they pin the suites).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

LETTERS = "ABCDEFGH"

# Plural nouns of the shape names used in questions ("How many red circles ...").
PLURALS = {"circle": "circles", "square": "squares", "triangle": "triangles", "diamond": "diamonds"}


def options_text(options: Sequence[str]) -> str:
    """``(A) x (B) y ...``"""
    return " ".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))


def format_choices(stem: str, options: Sequence[str]) -> str:
    """A multiple-choice question: the stem, lettered options and the answer instruction."""
    return f"{stem}\nOptions: {options_text(options)}\nAnswer with the letter of the correct option."


def letter_of(options: Sequence[str], value: str) -> str:
    """The letter of ``value`` among ``options``."""
    return LETTERS[list(options).index(value)]


def pick_options(rng: np.random.Generator, answer: str, pool: Sequence[str], k: int = 4) -> list[str]:
    """``answer`` plus ``k - 1`` other entries of ``pool``, shuffled."""
    others = [p for p in pool if p != answer]
    chosen = [others[i] for i in rng.choice(len(others), size=min(k - 1, len(others)), replace=False)]
    options = [answer, *chosen]
    return [options[i] for i in rng.permutation(len(options))]


def choice_options(
    rng: np.random.Generator, correct: str, pool: Sequence[str], k: int, prefer: Sequence[str] = ()
) -> tuple[list[str], str]:
    """``k`` shuffled options containing ``correct`` (preferred distractors first); returns (options, letter)."""
    distract = [p for p in dict.fromkeys(prefer) if p != correct]
    rng.shuffle(distract)
    rest = [p for p in pool if p != correct and p not in distract]
    rng.shuffle(rest)
    opts = [correct, *(distract + rest)[: k - 1]]
    order = rng.permutation(len(opts))
    opts = [opts[i] for i in order]
    return opts, LETTERS[opts.index(correct)]


def a_an(word: str) -> str:
    """The indefinite article for ``word``."""
    return "an" if word[:1].lower() in "aeiou" else "a"


def listing(words: Sequence[str]) -> str:
    """``a circle``, ``a circle and a square``, ``a circle, a square and a triangle``."""
    parts = [f"{a_an(s)} {s}" for s in words]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def fmt_number(x: float) -> str:
    """Up to two decimals, no trailing zeros (``37``, ``12.5``, ``0.33``)."""
    s = f"{x:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("", "-0") else s
