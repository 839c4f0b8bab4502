"""Turning one turn of model text into an action: a final answer, code to run, or neither.

The turn formats (PyVision-RL) are::

    <code>
    ```python
    ...
    ```
    </code>

and::

    <answer>
    \\boxed{...}
    </answer>

Rules implemented by :func:`parse_action` (first that applies wins):

1. **Answer.** The LAST complete ``<answer>...</answer>`` (tags case-insensitive, content may
   span lines). Inside it, the content of the LAST complete ``\\boxed{...}`` with balanced
   braces (``\\boxed{\\frac{3}{8}}`` gives ``\\frac{3}{8}``, ``\\boxed{{a,b}}`` gives
   ``{a,b}``); whitespace between ``\\boxed`` and ``{`` is tolerated (``\\boxed {x}``), as
   TeX does. Without a complete ``\\boxed{}`` the answer is the stripped tag content (a
   dangling ``\\boxed{`` with no closing brace is dropped and the text after it is used).
   One pair of matching surrounding quotes is removed (``\\boxed{'B'}`` gives ``B``).
   An empty answer (``<answer></answer>``) is still an answer: the turn ends the episode
   and scores as wrong.
2. **Unclosed answer.** If there is an ``<answer>`` with no ``</answer>`` after it
   (generation stopped), the text after the last ``<answer>`` is used only if it holds a
   complete ``\\boxed{...}``. Otherwise the answer is rejected and the code search below
   looks only at the text *before* that ``<answer>``.
3. **Code.** The LAST ``<code>`` block holding a fenced block (fence language ``python``,
   ``python3``, ``py`` or none), else the LAST bare fenced block labelled ``python`` /
   ``python3`` / ``py``. A ``<code>`` block always beats a bare fence, wherever they are.
   A ``<code>`` block whose closing fence is missing but whose ``</code>`` is present
   (``<code>```python ... </code>``) is accepted: the closing tag delimits the code
   unambiguously. A fence that is never closed and has no ``</code>`` (generation cut off
   mid-code) is NOT run: the code is probably truncated. Code is dedented and stripped of
   surrounding blank lines.
4. Otherwise the kind is ``"none"``; show :func:`format_help` to the agent.

When a turn has an answer and also code, the answer wins and ``ignored_code`` is True:
the code is not run (this is what the released PyVision-RL tool does).
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from typing import Literal

__all__ = ["ParsedAction", "extract_boxed", "format_help", "parse_action"]

ActionKind = Literal["answer", "code", "none"]


@dataclass(frozen=True)
class ParsedAction:
    """One turn, classified.

    ``kind`` is ``"answer"`` (``answer`` set, possibly ``""``), ``"code"`` (``code`` set) or
    ``"none"``. ``ignored_code`` is True when an answer was found and the turn also held
    code, which is not run. ``raw`` is the full turn text.
    """

    kind: ActionKind
    code: str | None
    answer: str | None
    ignored_code: bool
    raw: str


_ANSWER_RE = re.compile(r"<answer>(.*?)</answer>", re.DOTALL | re.IGNORECASE)
_ANSWER_OPEN_RE = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE_RE = re.compile(r"</answer>", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\s*\{")

# <code> ``` [python|python3|py] ... [```] </code>; the body may not contain another
# <code>/</code> tag, so a malformed block cannot swallow the next one.
_CODE_TAG_RE = re.compile(
    r"<code>\s*```[ \t]*(?:python3?|py)?[ \t]*\r?\n?"
    r"((?:(?!</?code>).)*?)"
    r"(?:```[ \t]*)?\s*</code>",
    re.DOTALL | re.IGNORECASE,
)
_BARE_FENCE_RE = re.compile(
    r"```[ \t]*(?:python3?|py)\b[^\n]*\n(.*?)```",
    re.DOTALL | re.IGNORECASE,
)

_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}


def _strip_quotes(s: str) -> str:
    """Strip whitespace, then one pair of matching surrounding quotes."""
    s = s.strip()
    if len(s) >= 2 and s[0] in _QUOTE_PAIRS and s[-1] == _QUOTE_PAIRS[s[0]]:
        s = s[1:-1].strip()
    return s


def _balanced_end(text: str, open_idx: int) -> int | None:
    """Index of the ``}`` closing the ``{`` at ``open_idx``, or None if never closed.

    Escaped braces (``\\{``, ``\\}``) do not count.
    """
    depth = 0
    i = open_idx
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def extract_boxed(text: str) -> str | None:
    """Content of the LAST complete ``\\boxed{...}`` in ``text`` (balanced braces), else None."""
    last: str | None = None
    for m in _BOXED_RE.finditer(text):
        open_idx = m.end() - 1
        end = _balanced_end(text, open_idx)
        if end is not None:
            last = text[open_idx + 1 : end]
    return last


def _answer_from_content(content: str) -> str:
    """The answer inside an ``<answer>`` body: last boxed content, else the stripped text."""
    boxed = extract_boxed(content)
    if boxed is not None:
        return _strip_quotes(boxed)
    dangling = list(_BOXED_RE.finditer(content))
    if dangling:
        content = content[dangling[-1].end() :]
    return _strip_quotes(content)


def _clean_code(body: str) -> str:
    return textwrap.dedent(body).strip("\r\n").rstrip()


def _find_code(text: str) -> str | None:
    """The code of the last ``<code>`` block, else of the last bare python fence."""
    tagged = _CODE_TAG_RE.findall(text)
    for body in reversed(tagged):
        code = _clean_code(body)
        if code:
            return code
    bare = _BARE_FENCE_RE.findall(text)
    for body in reversed(bare):
        code = _clean_code(body)
        if code:
            return code
    return None


def parse_action(text: str) -> ParsedAction:
    """Classify one turn as an answer, code, or neither (rules in the module docstring)."""
    if text is None:
        text = ""
    answers = _ANSWER_RE.findall(text)
    answer: str | None = None
    code_region = text
    if answers:
        answer = _answer_from_content(answers[-1])
    opens = list(_ANSWER_OPEN_RE.finditer(text))
    if opens:
        last_open = opens[-1]
        tail = text[last_open.end() :]
        if not _ANSWER_CLOSE_RE.search(tail):
            # An <answer> that is never closed (generation stopped).
            boxed = extract_boxed(tail)
            if boxed is not None:
                answer = _strip_quotes(boxed)
            elif answer is None:
                code_region = text[: last_open.start()]

    if answer is not None:
        has_code = _find_code(text) is not None
        return ParsedAction("answer", None, answer, has_code, text)
    code = _find_code(code_region)
    if code is not None:
        return ParsedAction("code", code, None, False, text)
    return ParsedAction("none", None, None, False, text)


def format_help() -> str:
    """The message shown to the agent when a turn had neither code nor an answer."""
    return (
        "Error: no Python code or final answer found in your response.\n"
        "Each turn must do exactly one of two things:\n"
        "1. Run Python code, written like this (the runtime executes it and shows you "
        "what it prints and any figures shown with plt.show()):\n"
        "<code>\n```python\n# your code here\n```\n</code>\n"
        "2. Give the final answer, written like this (this ends the episode):\n"
        "<answer>\n\\boxed{your final answer}\n</answer>\n"
        "For a multiple-choice question, put only the option letter in \\boxed{}."
    )
