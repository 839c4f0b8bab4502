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
# With a question reader as well (``question_reader=True``), the session also holds ``question``
# and the family's ``read_question(question)`` (``envs/<modality>/experts/question_<family>.py``):
# the expert's first turn calls it for the parameters it reads from the question instead of
# restating them, so its programs no longer copy the question's words.
_READER: ContextVar[bool] = ContextVar("expert_question_reader", default=False)
_PARAMS: ContextVar[dict[str, Any] | None] = ContextVar("expert_parameters", default=None)


def expert_turns(modality: str, name: str, helpers: tuple[str, ...] = (), read: tuple[str, ...] = (),
                 **params: Any) -> list[str]:
    """The code turns of expert ``name`` with its helper files and parameters prepended.

    ``params`` become ``NAME = repr(value)`` lines (names must be upper case), so the file
    reads them as constants. Helpers and parameters go before the first turn only: the
    runtime is persistent, later turns still see them. Inside :func:`helpers_preloaded` the
    helpers are left out (the runtime already defines them); with its question reader, the
    parameters named in ``read`` (in the order ``read_question`` returns them) come from
    ``read_question(question)`` instead of constants.
    """
    for key in (*params, *read):
        if not PARAM_NAME.match(key):
            raise ValueError(f"expert parameter {key!r} must be an UPPER_CASE name")
    if not set(read) <= set(params):
        raise ValueError(f"expert {name}: read names {sorted(set(read) - set(params))} that are not parameters")
    reading = bool(read) and _PRELOADED.get() and _READER.get()
    if reading:
        helpers = (*helpers, f"question_{name}")
    used, seen_params = _USED.get(), _PARAMS.get()
    if used is not None:
        used.update(dict.fromkeys(helpers))
    if seen_params is not None:
        seen_params.update(params)
    turns = split_turns(expert_source(modality, name))
    shown = () if _PRELOADED.get() else helpers
    head = [expert_source(modality, h).strip() + "\n" for h in shown]
    if reading:
        head.append(f"{', '.join(read)} = read_question(question)\n")
        params = {k: v for k, v in params.items() if k not in read}
    if params:
        head.append("".join(f"{k} = {v!r}\n" for k, v in params.items()))
    turns[0] = "\n\n".join([*head, turns[0]]) if head else turns[0]
    return turns


@contextmanager
def helpers_preloaded(active: bool = True, question_reader: bool = False) -> Iterator[None]:
    """Within this block experts leave their helper files out (a toolbox runtime holds them);
    with ``question_reader`` they call ``read_question(question)`` for what the question says."""
    token, reader_token = _PRELOADED.set(active), _READER.set(active and question_reader)
    try:
        yield
    finally:
        _READER.reset(reader_token)
        _PRELOADED.reset(token)


def toolbox_helpers(family: TaskFamily, task: Task, question_reader: bool = False) -> tuple[str, ...]:
    """The helper files the family's expert uses for ``task``, in the order it includes them
    (its question reader last, with ``question_reader``)."""
    used: dict[str, None] = {}
    token = _USED.set(used)
    try:
        with helpers_preloaded(True, question_reader):
            family.expert(task)
    finally:
        _USED.reset(token)
    return tuple(used)


def expert_parameters(family: TaskFamily, task: Task) -> dict[str, Any]:
    """The parameters the family's expert passes its program for ``task`` (what it read from the question)."""
    params: dict[str, Any] = {}
    token = _PARAMS.set(params)
    try:
        family.expert(task)
    finally:
        _PARAMS.reset(token)
    return params


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


def expert_action(family: TaskFamily, task: Task, turn: int, last_output: str, toolbox: bool = False,
                  question_reader: bool = False) -> str:
    """The scripted expert's turn ``turn`` (0-based): its code turns, then the answer — the last
    line the code printed. ``toolbox``: the environment preloaded the helpers (``question_reader``:
    and the question with its reader)."""
    with helpers_preloaded(toolbox, question_reader):
        code = family.expert(task)
    return code_action(code[turn]) if turn < len(code) else answer_action(last_line(last_output))
