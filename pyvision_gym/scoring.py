"""Verifiers: answer -> accuracy in [0, 1] (the rewards built on them are in :mod:`.rewards`).

Verifiers judge only the final answer string (what :func:`pyvision_gym.parsing.parse_action`
extracted), never the rest of the transcript. Each returns a float accuracy:

- ``"choice"``  :func:`score_choice`  option letter or option text, 1.0 / 0.0
- ``"string"``  :func:`score_string`  normalised exact match, 1.0 / 0.0
- ``"number"``  :func:`score_number`  the single number in the prediction, within tolerance
- ``"mra"``     :func:`score_mra`     Mean Relative Accuracy (VSI-Bench), 0.0, 0.1, ..., 1.0
- ``"math"``    :func:`score_math`    math equivalence through math-verify, 1.0 / 0.0

:func:`score_answer` dispatches on the answer type and returns a :class:`ScoreResult`.

"""

from __future__ import annotations

import re
import threading
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

__all__ = [
    "ANSWER_TYPES",
    "MATH_SOURCES",
    "MRA_THRESHOLDS",
    "ScoreResult",
    "extract_number",
    "infer_answer_type",
    "normalize_text",
    "score_answer",
    "score_choice",
    "score_math",
    "score_mra",
    "score_number",
    "score_string",
]

ANSWER_TYPES = ("choice", "string", "number", "mra", "math")

# θ ∈ {0.50, 0.55, ..., 0.95}, held exactly as fractions so boundary cases are exact.
MRA_THRESHOLDS: tuple[Fraction, ...] = tuple(Fraction(50 + 5 * i, 100) for i in range(10))

# ---------------------------------------------------------------------------------------
# Text normalisation
# ---------------------------------------------------------------------------------------

_TEXT_WRAP_RE = re.compile(r"\\(?:text|textbf|textit|texttt|mathrm|mathbf|mbox|operatorname)\s*\{")
_EDGE_PUNCT = " \t\r\n.,;:!?\"'`\u201c\u201d\u2018\u2019()[]{}<>*_$"


def _unwrap_text_macros(s: str) -> str:
    r"""Replace ``\text{x}`` (and \textbf, \mathrm, ...) by ``x``, innermost braces balanced."""
    while True:
        m = _TEXT_WRAP_RE.search(s)
        if m is None:
            return s
        open_idx = m.end() - 1
        depth = 0
        end = None
        for i in range(open_idx, len(s)):
            if s[i] == "{":
                depth += 1
            elif s[i] == "}":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end is None:  # unbalanced: drop the macro name and the brace
            s = s[: m.start()] + s[m.end() :]
        else:
            s = s[: m.start()] + s[open_idx + 1 : end] + s[end + 1 :]


def normalize_text(s: str) -> str:
    r"""Normalise for string comparison.

    Unicode NFKC, ``\text{}``-style wrappers removed, ``\%`` -> ``%``, lower case, runs of
    whitespace collapsed to one space, and surrounding punctuation, quotes, brackets and
    ``$`` stripped. Inner punctuation is kept ("u.s.a" stays "u.s.a"); articles are kept.
    """
    if s is None:
        return ""
    s = unicodedata.normalize("NFKC", str(s))
    s = _unwrap_text_macros(s)
    s = s.replace("\\%", "%").replace("\\ ", " ").replace("~", " ")
    s = s.lower()
    s = re.sub(r"\s+", " ", s)
    return s.strip(_EDGE_PUNCT)


# ---------------------------------------------------------------------------------------
# Multiple choice
# ---------------------------------------------------------------------------------------

_BARE_LETTER_RE = re.compile(r"[(\[]?([A-Za-z])[)\].]?")
_OPTION_PREFIX_RE = re.compile(r"^\s*(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s*")
_LEAD_IN_RE = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+|best\s+)?(?:answer|option|choice)(?:\s+is)?\s*[:\-]?\s*",
    re.IGNORECASE,
)
_LEADING_LETTER_RE = re.compile(r"^[(\[]?([A-Za-z])[)\]]?(?:(?:[.:,)\]]|\s+)\s*(.*))?$", re.DOTALL)
_LETTER_TOKEN_RE = re.compile(r"(?<![A-Za-z0-9])\(?([A-Z])\)?(?![A-Za-z0-9])")
_OPTION_MARKER_RE = re.compile(
    r"(?:option|choice)\s*\(?([A-Za-z])\)?(?![A-Za-z0-9])", re.IGNORECASE
)


def _letter(i: int) -> str:
    return chr(ord("A") + i)


def _option_table(options: Sequence[str] | Mapping[str, str] | None) -> dict[str, str]:
    """Letter -> normalised option text. Prefixes like "A. ", "(A) ", "A) " are removed."""
    if not options:
        return {}
    if isinstance(options, Mapping):
        items = [(str(k).strip().strip("().").upper(), str(v)) for k, v in options.items()]
    else:
        items = [(_letter(i), str(v)) for i, v in enumerate(options)]
    table: dict[str, str] = {}
    for letter, text in items:
        m = _OPTION_PREFIX_RE.match(text)
        if m and (m.group(1) or m.group(2)).upper() == letter:
            text = text[m.end() :]
        table[letter] = normalize_text(text)
    return table


def _clean_pred(pred: str) -> str:
    s = unicodedata.normalize("NFKC", pred)
    s = _unwrap_text_macros(s).strip()
    s = s.strip("$").strip()
    # one pair of surrounding quotes
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "\"'`":
        s = s[1:-1].strip()
    return s


def _letters_named(pred: str, table: dict[str, str]) -> set[str]:
    """The set of option letters a prediction names (empty when it names none)."""
    valid = set(table) if table else {_letter(i) for i in range(26)}
    text = _clean_pred(pred)
    norm = normalize_text(text)
    if not norm:
        return set()
    bare = _BARE_LETTER_RE.fullmatch(text)
    if bare:
        letter = bare.group(1).upper()
        return {letter} if letter in valid else set()
    by_text = {k for k, v in table.items() if v and v == norm}
    if by_text:
        return by_text
    stripped = text
    for _ in range(3):  # "The answer is option B" needs two passes
        new = _LEAD_IN_RE.sub("", stripped, count=1).strip()
        if new == stripped:
            break
        stripped = new
    m = _LEADING_LETTER_RE.match(stripped)
    if m:
        letter = m.group(1)
        rest = (m.group(2) or "").strip()
        # A lowercase letter counts only when it is the whole answer ("b"), so that
        # "a blue car" is not read as option A.
        if letter.upper() in valid and (letter.isupper() or not rest):
            named = {letter.upper()}
            if rest:
                rest_norm = normalize_text(rest)
                named |= {k for k, v in table.items() if v and v == rest_norm}
                named |= {x for x in _LETTER_TOKEN_RE.findall(rest) if x in valid}
            return named
    named = {x.upper() for x in _OPTION_MARKER_RE.findall(stripped) if x.upper() in valid}
    named |= {x for x in _LETTER_TOKEN_RE.findall(stripped) if x in valid}
    return named


def _gold_letter(answer: str, table: dict[str, str]) -> str | None:
    a = _clean_pred(str(answer))
    m = _BARE_LETTER_RE.fullmatch(a)
    if m:
        return m.group(1).upper()
    m = _OPTION_PREFIX_RE.match(a)
    if m:
        return (m.group(1) or m.group(2)).upper()
    norm = normalize_text(a)
    hits = [k for k, v in table.items() if v == norm]
    return hits[0] if len(hits) == 1 else None


def score_choice(
    pred: str, answer_letter: str, options: Sequence[str] | Mapping[str, str] | None = None
) -> float:
    """1.0 if ``pred`` names exactly the gold option, else 0.0.

    Accepted: the letter ("B", "(B)", "B.", "b", "B) blue", "Option B", "The answer is B")
    or the option text ("blue", case/whitespace-insensitive). A prediction naming two or
    more different options ("B or C", "B) red" when red is option C) is wrong.
    ``options`` is a list (A, B, C, ... in order) or a letter -> text mapping; option texts
    may carry their own "A. " prefix. ``answer_letter`` may also be the gold option text.
    """
    if not pred or not str(pred).strip():
        return 0.0
    table = _option_table(options)
    gold = _gold_letter(answer_letter, table)
    if gold is None:
        return 0.0
    named = _letters_named(str(pred), table)
    return 1.0 if named == {gold} else 0.0


# ---------------------------------------------------------------------------------------
# Strings and numbers
# ---------------------------------------------------------------------------------------


def score_string(pred: str, answer: str) -> float:
    """1.0 when :func:`normalize_text` of both sides is equal and non-empty, else 0.0."""
    p, a = normalize_text(pred or ""), normalize_text(answer or "")
    return 1.0 if p and p == a else 0.0


_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
    )
}
_FRAC_TEX_RE = re.compile(r"(-?)\\[dt]?frac\s*\{\s*(-?\d+)\s*\}\s*\{\s*(-?\d+)\s*\}")
_NUM_RE = re.compile(
    r"(?<![\w.])(?P<sign>[-+\u2212])?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d*)?|\.\d+)"
    r"(?:[eE](?P<exp>[-+]?\d+))?"
    r"(?:\s*/\s*(?P<den>\d+)(?![\d.]))?"
)


def _numbers_in(text: str) -> list[Fraction]:
    """All numbers in ``text`` as exact fractions (thousands commas, decimals, a/b, \\frac)."""
    s = unicodedata.normalize("NFKC", text)
    out: list[Fraction] = []
    for m in _FRAC_TEX_RE.finditer(s):
        den = int(m.group(3))
        if den != 0:
            val = Fraction(int(m.group(2)), den)
            out.append(-val if m.group(1) else val)
    s = _FRAC_TEX_RE.sub(" ", s)
    for m in _NUM_RE.finditer(s):
        raw = m.group("num").replace(",", "")
        if raw.endswith("."):
            raw = raw[:-1]
        val = Fraction(raw)
        if m.group("exp"):
            val *= Fraction(10) ** int(m.group("exp"))
        if m.group("den"):
            den = int(m.group("den"))
            if den == 0:
                continue
            val /= den
        if m.group("sign") in ("-", "\u2212"):
            val = -val
        out.append(val)
    if not out:
        for w in re.findall(r"[a-z]+", s.lower()):
            if w in _NUMBER_WORDS:
                out.append(Fraction(_NUMBER_WORDS[w]))
    return out


def extract_number(text: str | None) -> Fraction | None:
    """The single number in ``text``, or None when there is none or several different ones.

    "12", "12.0", "1,234", "12 px", "about 12", "-3", "3/4", "\\frac{3}{4}", "1e3" and
    number words up to "twenty" (only when no digits appear) are read. "10-12", "12 or 13"
    and "1, 2" hold several different numbers and give None; "12 (12 px)" gives 12.
    """
    if text is None:
        return None
    nums = set(_numbers_in(str(text)))
    if len(nums) != 1:
        return None
    return nums.pop()


def _to_fraction(x: float | int | Fraction) -> Fraction:
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    return Fraction(repr(float(x)))


def _prediction_and_truth(pred: str, answer: str | float) -> tuple[Fraction | None, Fraction | None]:
    """The single number in ``pred`` and the ground truth, both exact (None when missing)."""
    y = _to_fraction(answer) if isinstance(answer, (int, float)) else extract_number(str(answer))
    return extract_number(pred), y


def score_number(
    pred: str, answer: str | float, rel_tol: float = 0.0, abs_tol: float = 0.0
) -> float:
    """1.0 when the single number in ``pred`` is within tolerance of ``answer``, else 0.0.

    Within tolerance means ``|p - y| <= max(rel_tol * |y|, abs_tol)``, computed exactly
    (decimal strings become fractions), so "12.0" equals "12" with zero tolerance.
    """
    p, y = _prediction_and_truth(pred, answer)
    if p is None or y is None:
        return 0.0
    bound = max(_to_fraction(rel_tol) * abs(y), _to_fraction(abs_tol))
    return 1.0 if abs(p - y) <= bound else 0.0


def score_mra(pred: str, answer: str | float) -> float:
    """Mean Relative Accuracy: the share of θ in {0.50, ..., 0.95} with |ŷ-y|/|y| < 1-θ.

    Computed with exact fractions (y=10: ŷ=12 gives 0.6, ŷ=11 gives 0.8, ŷ=15 gives 0.0).
    No single number in ``pred`` gives 0.0. For y == 0 the relative error is undefined:
    the score is 1.0 if ŷ == 0 exactly, else 0.0.
    """
    p, y = _prediction_and_truth(pred, answer)
    if p is None or y is None:
        return 0.0
    if y == 0:
        return 1.0 if p == 0 else 0.0
    err = abs(p - y) / abs(y)
    hits = sum(1 for theta in MRA_THRESHOLDS if err < 1 - theta)
    return hits / len(MRA_THRESHOLDS)


# ---------------------------------------------------------------------------------------
# Math
# ---------------------------------------------------------------------------------------

_MATH_DELIMS = ("$", "\\(", "\\[", "\\boxed")


def _math_parse(text: str, timeout: int | None) -> list[Any]:
    from math_verify import parse

    if any(d in text for d in _MATH_DELIMS):
        return parse(text, parsing_timeout=timeout)
    parsed = parse(f"${text}$", parsing_timeout=timeout)
    if not parsed:
        parsed = parse(text, parsing_timeout=timeout)
    return parsed


def score_math(pred: str, answer: str, timeout_s: int = 5) -> float:
    """1.0 if ``pred`` is mathematically equivalent to ``answer`` (math-verify), else 0.0.

    Bare expressions are wrapped in ``$...$`` before parsing. Any parsing or verification
    error, and a timeout, give 0.0. math-verify times out with ``signal.alarm``, which only
    works in the main thread; elsewhere its timeouts are switched off
    (``parsing_timeout=None``, ``timeout_seconds=None``), so scoring works in worker
    threads but a pathological expression is not interrupted there.
    """
    if not pred or not str(pred).strip():
        return 0.0
    pred, answer = str(pred).strip(), str(answer).strip()
    if " ".join(pred.split()) == " ".join(answer.split()):  # identical text
        return 1.0
    from math_verify import verify
    from math_verify.errors import TimeoutException

    timeout: int | None = (
        timeout_s if threading.current_thread() is threading.main_thread() else None
    )
    try:
        gold = _math_parse(answer, timeout)
        target = _math_parse(pred, timeout)
        if not gold or not target:
            return 0.0
        return 1.0 if verify(gold, target, timeout_seconds=timeout) else 0.0
    except (Exception, TimeoutException):
        return 0.0


# ---------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreResult:
    """A judged answer: ``accuracy`` in [0, 1]; ``correct`` is accuracy == 1 for exact types
    and MRA >= 0.5 for ``"mra"``; ``detail`` is a short human-readable reason."""

    accuracy: float
    correct: bool
    answer_type: str
    detail: str = ""


def _short(s: str, n: int = 80) -> str:
    s = str(s).replace("\n", " ")
    return s if len(s) <= n else s[: n - 3] + "..."


def score_answer(
    pred: str | None,
    answer: str,
    answer_type: str,
    options: Sequence[str] | Mapping[str, str] | None = None,
    tolerance: float = 0.0,
) -> ScoreResult:
    """Judge ``pred`` against ``answer`` with the verifier for ``answer_type``.

    ``tolerance`` is the relative tolerance for ``"number"`` (ignored by the other types).
    A missing or blank prediction scores 0. An unknown ``answer_type`` raises ValueError.
    """
    if answer_type not in ANSWER_TYPES:
        raise ValueError(f"unknown answer_type {answer_type!r}; expected one of {ANSWER_TYPES}")
    if pred is None or not str(pred).strip():
        return ScoreResult(0.0, False, answer_type, "no answer")
    if answer_type == "choice":
        acc = score_choice(pred, answer, options)
    elif answer_type == "string":
        acc = score_string(pred, answer)
    elif answer_type == "number":
        if extract_number(str(answer)) is None:
            return ScoreResult(0.0, False, answer_type, f"gold {answer!r} is not a single number")
        acc = score_number(pred, answer, rel_tol=tolerance)
    elif answer_type == "mra":
        if extract_number(str(answer)) is None:
            return ScoreResult(0.0, False, answer_type, f"gold {answer!r} is not a single number")
        acc = score_mra(pred, answer)
    else:
        acc = score_math(pred, answer)
    correct = acc >= 0.5 if answer_type == "mra" else acc == 1.0
    detail = f"pred={_short(pred)!r} gold={_short(answer)!r} acc={acc:g}"
    return ScoreResult(float(acc), bool(correct), answer_type, detail)


# Sources whose free-form answers are mathematical expressions.
MATH_SOURCES = ("mathvision", "mathverse", "mathvista", "math_8k_verified", "geo3k", "geoqa")
_CHOICE_RE = re.compile(r"\s*\(?([A-Z])\)?\.?\s*")
_NUMERIC_RE = re.compile(r"\s*[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?\s*")


def _is_math_source(ds: str) -> bool:
    return ds.startswith(("wemath", "math", "geo")) or ds in MATH_SOURCES


def infer_answer_type(
    answer: str, data_source: str | None = None, has_options: bool = False
) -> str:
    """Pick a verifier for a row of a PyVision-RL-format validation set.

    First matching rule wins:

    ==========================================  =========  =================================
    condition                                   type       example sources
    ==========================================  =========  =================================
    ``vsi_numerical`` or ``*_rule_verifiable``  ``mra``    VSI-Bench numeric questions
    answer is one capital letter, "(A)", "A."   ``choice`` vstar, hrbench-4k/8k, vsi MCQ
    math source (``mathvision``, ``wemath-*``,  ``math``   mathvision, wemath-standard/pro
    ``math*``, ``mathverse``, ``geo3k``, ...)
    answer is purely numeric, source ``vsi*``   ``mra``    vsi
    answer is purely numeric                    ``number`` chart, longvila (tolerance 0)
    otherwise                                   ``string`` everything else
    ==========================================  =========  =================================

    ``has_options`` is accepted for callers that know the row has options; a letter answer
    is treated as a choice either way, and a row with options but a non-letter answer is
    still scored by its content (the option text is matched by the string verifier).
    """
    ds = (data_source or "").strip().lower()
    ans = str(answer)
    if ds == "vsi_numerical" or ds.endswith("_rule_verifiable"):
        return "mra"
    if _CHOICE_RE.fullmatch(ans):
        return "choice"
    if ds and _is_math_source(ds):
        return "math"
    if ans.strip() and _NUMERIC_RE.fullmatch(ans) and re.search(r"\d", ans):
        return "mra" if ds.startswith("vsi") else "number"
    return "string"
