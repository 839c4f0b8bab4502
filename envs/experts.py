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

import ast
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .base import Task, TaskFamily

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


# An environment made with ``toolbox=True`` defines the experts' helper functions in the runtime
# before the first turn; the experts then leave them out of their first turn (much shorter
# programs: what a small model can learn to write). ``_USED`` records which helpers an expert
# asked for, so the environment knows what to preload.
_PRELOADED: ContextVar[bool] = ContextVar("expert_helpers_preloaded", default=False)
_USED: ContextVar[dict[str, None] | None] = ContextVar("expert_helpers_used", default=None)


def expert_turns(modality: str, name: str, helpers: tuple[str, ...] = (), **params: Any) -> list[str]:
    """The code turns of expert ``name`` with its helper files and parameters prepended.

    ``params`` become ``NAME = repr(value)`` lines (names must be upper case), so the file
    reads them as constants. Helpers and parameters go before the first turn only: the
    runtime is persistent, later turns still see them. Inside :func:`helpers_preloaded` the
    helpers are left out (the runtime already defines them).
    """
    for key in params:
        if not PARAM_NAME.match(key):
            raise ValueError(f"expert parameter {key!r} must be an UPPER_CASE name")
    used = _USED.get()
    if used is not None:
        used.update(dict.fromkeys(helpers))
    turns = split_turns(expert_source(modality, name))
    shown = () if _PRELOADED.get() else helpers
    head = [expert_source(modality, h).strip() + "\n" for h in shown]
    if params:
        head.append("".join(f"{k} = {v!r}\n" for k, v in params.items()))
    turns[0] = "\n\n".join([*head, turns[0]]) if head else turns[0]
    return turns


@contextmanager
def helpers_preloaded(active: bool = True) -> Iterator[None]:
    """Within this block experts leave their helper files out (a toolbox runtime holds them)."""
    token = _PRELOADED.set(active)
    try:
        yield
    finally:
        _PRELOADED.reset(token)


def toolbox_helpers(family: TaskFamily, task: Task) -> tuple[str, ...]:
    """The helper files the family's expert uses for ``task``, in the order it includes them."""
    used: dict[str, None] = {}
    token = _USED.set(used)
    try:
        family.expert(task)
    finally:
        _USED.reset(token)
    return tuple(used)


def toolbox_source(modality: str, helpers: tuple[str, ...]) -> str:
    """The code that defines ``helpers`` in the runtime."""
    return "\n\n".join(expert_source(modality, h).strip() for h in helpers) + "\n"


def toolbox_signatures(source: str) -> list[str]:
    """``name(arg, ...)`` of every top-level function ``source`` defines (for the prompt)."""
    return list(_signatures(source))


_AST_LOCK = threading.Lock()


@cache
def _signatures(source: str) -> tuple[str, ...]:
    # CPython 3.11's AST constructor keeps its recursion depth per interpreter, not per thread:
    # two threads parsing at once fail with "SystemError: AST constructor recursion depth
    # mismatch" (seen when the trainer's environment threads reset together). One parse at a
    # time, and each toolbox source is parsed once.
    with _AST_LOCK:
        tree = ast.parse(source)
    return tuple(f"{node.name}({', '.join(a.arg for a in node.args.args)})"
                 for node in tree.body if isinstance(node, ast.FunctionDef))


# ----------------------------------------------------------------------------- the expert's turns
def code_action(src: str) -> str:
    """A code turn in the agent's format (PyVision-RL's)."""
    return f"<code>\n```python\n{src.strip()}\n```\n</code>"


def answer_action(answer: str) -> str:
    """A final-answer turn in the agent's format."""
    return f"<answer>\\boxed{{{answer}}}</answer>"


def last_line(text: str) -> str:
    """The last non-empty line of ``text`` (stripped), or ``""``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def expert_action(family: TaskFamily, task: Task, turn: int, last_output: str, toolbox: bool = False) -> str:
    """The scripted expert's turn ``turn`` (0-based): its code turns, then the answer — the last
    line the code printed. ``toolbox``: the environment preloaded the helpers."""
    with helpers_preloaded(toolbox):
        code = family.expert(task)
    return code_action(code[turn]) if turn < len(code) else answer_action(last_line(last_output))
