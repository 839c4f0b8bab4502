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

import bisect
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


# Every search below is linear in the turn's length: tags and fences are located once with
# simple literal patterns and paired by walking the positions, instead of lazy ``(.*?)``
# regexes that rescan the rest of the text from every opening tag (quadratic on turns such as
# ``"<answer>" * 100_000`` or ``"\\boxed{" * 9000``).
_ANSWER_TAG_RE = re.compile(r"<(/?)answer>", re.IGNORECASE)
_BOXED_RE = re.compile(r"\\boxed\s*\{")
_CODE_TAG_RE = re.compile(r"<(/?)code>", re.IGNORECASE)
# The head of a <code> block: <code> ``` [python|python3|py]; then the body up to </code>.
_CODE_HEAD_RE = re.compile(r"<code>\s*```[ \t]*(?:python3?|py)?[ \t]*\r?\n?", re.IGNORECASE)
_FENCE_LABEL_RE = re.compile(r"[ \t]*(?:python3?|py)\b", re.IGNORECASE)

_QUOTE_PAIRS = {'"': '"', "'": "'", "`": "`", "\u201c": "\u201d", "\u2018": "\u2019"}


def _strip_quotes(s: str) -> str:
    """Strip whitespace, then one pair of matching surrounding quotes."""
    s = s.strip()
    if len(s) >= 2 and s[0] in _QUOTE_PAIRS and s[-1] == _QUOTE_PAIRS[s[0]]:
        s = s[1:-1].strip()
    return s


def _brace_pairs(text: str) -> dict[int, int]:
    """``{open index: close index}`` for every balanced brace pair, escapes (``\\{``) skipped."""
    pairs: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            pairs[stack.pop()] = i
        i += 1
    return pairs


def extract_boxed(text: str) -> str | None:
    """Content of the LAST complete ``\\boxed{...}`` in ``text`` (balanced braces), else None."""
    opens = [m.end() - 1 for m in _BOXED_RE.finditer(text)]
    if not opens:
        return None
    pairs = _brace_pairs(text)
    for open_idx in reversed(opens):
        if open_idx in pairs:
            return text[open_idx + 1 : pairs[open_idx]]
    return None


def _answer_from_content(content: str) -> str:
    """The answer inside an ``<answer>`` body: last boxed content, else the stripped text."""
    boxed = extract_boxed(content)
    if boxed is not None:
        return _strip_quotes(boxed)
    dangling = None
    for dangling in _BOXED_RE.finditer(content):  # noqa: B007 - we want the last match
        pass
    if dangling is not None:
        content = content[dangling.end() :]
    return _strip_quotes(content)


def _answer_bodies(text: str) -> tuple[list[str], int | None]:
    """Bodies of the complete ``<answer>…</answer>`` pairs (leftmost, non-overlapping, as a
    lazy regex pairs them) and the start of the last ``<answer>`` if no ``</answer>`` follows."""
    bodies: list[str] = []
    open_end: int | None = None
    last_open: int | None = None
    last_close = -1
    for m in _ANSWER_TAG_RE.finditer(text):
        if not m.group(1):
            last_open = m.start()
            if open_end is None:
                open_end = m.end()
        else:
            last_close = m.start()
            if open_end is not None:
                bodies.append(text[open_end : m.start()])
                open_end = None
    unclosed = last_open if last_open is not None and last_close < last_open else None
    return bodies, unclosed


def _clean_code(body: str) -> str:
    return textwrap.dedent(body).strip("\r\n").rstrip()


def _tagged_code(text: str) -> list[str]:
    """Bodies of ``<code>`` blocks: an opening tag whose next tag is ``</code>``."""
    bodies = []
    tags = list(_CODE_TAG_RE.finditer(text))
    for here, nxt in zip(tags, tags[1:], strict=False):
        if here.group(1) or not nxt.group(1):
            continue
        head = _CODE_HEAD_RE.match(text, here.start(), nxt.start())
        if head is None:
            continue
        body = text[head.end() : nxt.start()].rstrip()
        if body.endswith("```"):
            body = body[:-3]
        bodies.append(body)
    return bodies


def _fenced_code(text: str) -> list[str]:
    """Bodies of bare fences labelled python / python3 / py: from the end of the label's line
    to the next fence (leftmost, non-overlapping)."""
    fences = [m.start() for m in re.finditer("(?=```)", text)]  # overlapping, as a regex sees them
    newlines = [m.start() for m in re.finditer("\n", text)]
    bodies, pos = [], 0
    for k, f in enumerate(fences):
        if f < pos or not _FENCE_LABEL_RE.match(text, f + 3):
            continue
        line_end = _first_after(newlines, f + 3)
        close = None if line_end is None else _first_after(fences, line_end + 1, lo=k + 1)
        if close is None:
            continue
        bodies.append(text[line_end + 1 : close])
        pos = close + 3
    return bodies


def _first_after(positions: list[int], at_least: int, lo: int = 0) -> int | None:
    """The first of the sorted ``positions`` that is >= ``at_least``."""
    i = bisect.bisect_left(positions, at_least, lo=lo)
    return positions[i] if i < len(positions) else None


def _find_code(text: str) -> str | None:
    """The code of the last ``<code>`` block, else of the last bare python fence."""
    for bodies in (_tagged_code(text), _fenced_code(text)):
        for body in reversed(bodies):
            code = _clean_code(body)
            if code:
                return code
    return None


def parse_action(text: str) -> ParsedAction:
    """Classify one turn as an answer, code, or neither (rules in the module docstring)."""
    if text is None:
        text = ""
    bodies, unclosed = _answer_bodies(text)
    answer = _answer_from_content(bodies[-1]) if bodies else None
    code_region = text
    if unclosed is not None:
        # An <answer> that is never closed (generation stopped).
        boxed = extract_boxed(text[text.index(">", unclosed) + 1 :])
        if boxed is not None:
            answer = _strip_quotes(boxed)
        elif answer is None:
            code_region = text[:unclosed]

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
