"""Expert programs are real Python files, read as text and sent to the runtime.

An expert file lives in ``envs/<modality>/experts/``. It runs inside the restricted runtime, where
``image`` / ``video``, ``np``, ``plt``, ``Image`` and ``display`` are preloaded, so linters are
told those names are defined (``pyproject.toml``: per-file ignore of F821 there). A line
``# %% turn`` starts a new agent turn (a file without one is a single turn). Task parameters
(the colour to look for, the options, ...) reach the program as upper-case constants that
:func:`expert_turns` writes above the first turn; shared helper files are written once and
prepended, like an ``import`` the sandbox cannot do.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
TURN_MARK = re.compile(r"^# %% turn\b.*$", re.MULTILINE)
PARAM_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


@cache
def expert_source(modality: str, name: str) -> str:
    """The text of ``envs/<modality>/experts/<name>.py``."""
    path = ROOT / modality / "experts" / f"{name}.py"
    if not path.is_file():
        raise FileNotFoundError(f"no expert program {path}")
    return path.read_text(encoding="utf-8")


def split_turns(source: str) -> list[str]:
    """The turns of an expert file: the text between ``# %% turn`` lines, stripped.

    Comment lines above the first ``# %% turn`` are the file's header (what the program does,
    its helpers and parameters): they document the file and are not sent as a turn.
    """
    parts = [p.strip() for p in TURN_MARK.split(source)]
    if len(parts) > 1 and all(line.strip()[:1] in ("", "#") for line in parts[0].splitlines()):
        parts = parts[1:]
    return [p + "\n" for p in parts if p]


def expert_turns(modality: str, name: str, helpers: tuple[str, ...] = (), **params: Any) -> list[str]:
    """The code turns of expert ``name`` with its helper files and parameters prepended.

    ``params`` become ``NAME = repr(value)`` lines (names must be upper case), so the file
    reads them as constants. Helpers and parameters go before the first turn only: the
    runtime is persistent, later turns still see them.
    """
    for key in params:
        if not PARAM_NAME.match(key):
            raise ValueError(f"expert parameter {key!r} must be an UPPER_CASE name")
    turns = split_turns(expert_source(modality, name))
    head = [expert_source(modality, h).strip() + "\n" for h in helpers]
    if params:
        head.append("".join(f"{k} = {v!r}\n" for k, v in params.items()))
    turns[0] = "\n\n".join([*head, turns[0]]) if head else turns[0]
    return turns
