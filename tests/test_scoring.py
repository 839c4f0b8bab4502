"""Tests for pyvision_gym.scoring (verifiers, dispatch, answer-type inference) and .rewards."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from pyvision_gym.rewards import AccumulativeToolReward, AccuracyReward, RewardFn, make_reward
from pyvision_gym.scoring import (
    ScoreResult,
    extract_number,
    infer_answer_type,
    normalize_text,
    score_answer,
    score_choice,
    score_math,
    score_mra,
    score_number,
    score_string,
)

OPTIONS = ["red", "blue", "green", "yellow"]


# --- normalize_text / score_string -----------------------------------------------------


def test_normalize_text() -> None:
    assert normalize_text("  The  Red\nCar. ") == "the red car"
    assert normalize_text("\\text{Blue}") == "blue"
    assert normalize_text('"yes"') == "yes"
    assert normalize_text("$\\textbf{left}$") == "left"
    assert normalize_text("U.S.A.") == "u.s.a"


@pytest.mark.parametrize(
    ("pred", "answer"),
    [
        ("Red car", "red car"),
        ("  red   car. ", "red car"),
        ("\\text{red car}", "Red Car"),
        ("'left'", "left"),
    ],
)
def test_score_string_positive(pred: str, answer: str) -> None:
    assert score_string(pred, answer) == 1.0


@pytest.mark.parametrize(
    ("pred", "answer"),
    [("red", "red car"), ("blue car", "red car"), ("", "red"), ("...", "")],
)
def test_score_string_negative(pred: str, answer: str) -> None:
    assert score_string(pred, answer) == 0.0


# --- score_choice ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pred",
    [
        "B",
        "(B)",
        "B.",
        "b",
        "B) blue",
        "B. Blue",
        "Option B",
        "option (b)",
        "The answer is B",
        "blue",
        "  BLUE ",
        "\\text{B}",
        "'B'",
        "[B]",
        "I think B",
    ],
)
def test_score_choice_positive(pred: str) -> None:
    assert score_choice(pred, "B", OPTIONS) == 1.0


@pytest.mark.parametrize(
    "pred",
    [
        "A",
        "C",
        "red",
        "B or C",
        "B, C",
        "B) red",
        "B and D",
        "",
        "purple",
        "Blue-ish",
        "a blue car",
    ],
)
def test_score_choice_negative(pred: str) -> None:
    assert score_choice(pred, "B", OPTIONS) == 0.0


def test_score_choice_prefixed_options_and_gold_forms() -> None:
    prefixed = ["A. red", "B. blue", "(C) green"]
    assert score_choice("blue", "B", prefixed) == 1.0
    assert score_choice("green", "C", prefixed) == 1.0
    assert score_choice("blue", "(B)", OPTIONS) == 1.0
    assert score_choice("B", "blue", OPTIONS) == 1.0  # gold given as option text
    assert score_choice("B", "B", {"A": "cat", "B": "dog"}) == 1.0
    assert score_choice("dog", "B", {"A": "cat", "B": "dog"}) == 1.0


def test_score_choice_without_options_letters_only() -> None:
    assert score_choice("(C)", "C", None) == 1.0
    assert score_choice("C. something", "C", None) == 1.0
    assert score_choice("blue", "B", None) == 0.0


def test_score_choice_letter_out_of_range() -> None:
    assert score_choice("E", "B", OPTIONS) == 0.0


def test_score_choice_numeric_option_texts() -> None:
    opts = ["3", "4", "5", "6"]
    assert score_choice("4", "B", opts) == 1.0
    assert score_choice("5", "B", opts) == 0.0


# --- numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("12", 12),
        ("12.0", 12),
        ("1,234", 1234),
        ("12 px", 12),
        ("about 12", 12),
        ("-3", -3),
        ("3/4", 0.75),
        ("\\frac{3}{4}", 0.75),
        ("1e3", 1000),
        ("twelve", 12),
        ("12 (12 px)", 12),
        (".5", 0.5),
        ("5.", 5),
    ],
)
def test_extract_number(text: str, value: float) -> None:
    assert extract_number(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["10-12", "12 or 13", "1, 2", "no number", "", "two or three"])
def test_extract_number_none(text: str) -> None:
    assert extract_number(text) is None


def test_extract_number_words_only_without_digits() -> None:
    assert extract_number("one or 3 apples") == 3


def test_score_number() -> None:
    assert score_number("12", "12") == 1.0
    assert score_number("12.0", "12") == 1.0
    assert score_number("about 12 px", "12") == 1.0
    assert score_number("1,234", "1234") == 1.0
    assert score_number("13", "12") == 0.0
    assert score_number("12 or 13", "12") == 0.0
    assert score_number("none", "12") == 0.0
    assert score_number("0.1", "0.3") == 0.0
    # tolerance: |p - y| <= max(rel_tol*|y|, abs_tol), boundary inclusive and exact
    assert score_number("11", "10", rel_tol=0.1) == 1.0
    assert score_number("11.01", "10", rel_tol=0.1) == 0.0
    assert score_number("3.3", "3", rel_tol=0.1) == 1.0
    assert score_number("10.4", "10", abs_tol=0.5) == 1.0
    assert score_number("10.6", "10", abs_tol=0.5) == 0.0
    assert score_number("12", 12.0) == 1.0


# --- MRA ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "expected"),
    [
        ("10", 1.0),
        ("12", 0.6),  # err 0.20: 1-θ ∈ {.50,.45,.40,.35,.30,.25} > 0.20 -> 6/10
        ("11", 0.8),  # err 0.10: 8 thresholds
        ("9", 0.8),
        ("10.4", 1.0),  # err 0.04 < 0.05
        ("10.5", 0.9),  # err 0.05 is not < 0.05 (strict)
        ("8.5", 0.7),  # err 0.15
        ("13.5", 0.3),  # err 0.35
        ("15", 0.0),  # err 0.50 is not < 0.50
        ("30", 0.0),
        ("I think 12 meters", 0.6),
        ("maybe 9 or 10", 0.0),  # several numbers
        ("no idea", 0.0),
    ],
)
def test_score_mra(pred: str, expected: float) -> None:
    assert score_mra(pred, "10") == pytest.approx(expected)


def test_score_mra_fractional_boundary_exact() -> None:
    # 3.3 vs 3: err is exactly 0.1 (floats would give 0.0999...), so 8 thresholds, not 9.
    assert score_mra("3.3", "3") == pytest.approx(0.8)


def test_score_mra_zero_gold() -> None:
    assert score_mra("0", "0") == 1.0
    assert score_mra("0.0", "0") == 1.0
    assert score_mra("0.1", "0") == 0.0


# --- math ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pred", "answer"),
    [
        ("0.375", "\\frac{3}{8}"),
        ("\\frac{3}{8}", "3/8"),
        ("1+x", "x+1"),
        ("$\\sqrt{2}$", "2^{1/2}"),
        ("\\{2,1\\}", "\\{1,2\\}"),
        ("A", "A"),
    ],
)
def test_score_math_positive(pred: str, answer: str) -> None:
    assert score_math(pred, answer) == 1.0


@pytest.mark.parametrize(
    ("pred", "answer"),
    [("3", "4"), ("x+2", "x+1"), ("", "1"), ("\\frac{1}{", "1/2"), ("blue", "red")],
)
def test_score_math_negative(pred: str, answer: str) -> None:
    assert score_math(pred, answer) == 0.0


def test_score_math_in_worker_thread() -> None:
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda pa: score_math(*pa), [("0.5", "\\frac{1}{2}"), ("2", "3")]))
    assert results == [1.0, 0.0]


# --- score_answer ------------------------------------------------------------------------


def test_score_answer_dispatch() -> None:
    r = score_answer("B) blue", "B", "choice", options=OPTIONS)
    assert isinstance(r, ScoreResult)
    assert (r.accuracy, r.correct, r.answer_type) == (1.0, True, "choice")
    assert score_answer("red car", "Red Car", "string").correct
    assert score_answer("12.5", "12", "number", tolerance=0.05).correct
    assert not score_answer("12.5", "12", "number").correct
    assert score_answer("0.5", "1/2", "math").correct


def test_score_answer_mra_correct_threshold() -> None:
    r = score_answer("12", "10", "mra")
    assert r.accuracy == pytest.approx(0.6) and r.correct is True
    r = score_answer("13.5", "10", "mra")
    assert r.accuracy == pytest.approx(0.3) and r.correct is False
    r = score_answer("12.5", "10", "mra")  # err .25 -> 5/10 -> exactly 0.5 counts as correct
    assert r.accuracy == pytest.approx(0.5) and r.correct is True


@pytest.mark.parametrize("pred", [None, "", "   "])
def test_score_answer_missing_prediction(pred: str | None) -> None:
    r = score_answer(pred, "B", "choice", options=OPTIONS)
    assert (r.accuracy, r.correct) == (0.0, False)
    assert "no answer" in r.detail


def test_score_answer_bad_inputs() -> None:
    with pytest.raises(ValueError):
        score_answer("1", "1", "fuzzy")
    r = score_answer("12", "10 to 12", "number")
    assert r.accuracy == 0.0 and "not a single number" in r.detail


# --- infer_answer_type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "source", "has_options", "expected"),
    [
        ("3", "vsi_numerical", False, "mra"),
        ("2.5", "scannet_rule_verifiable", False, "mra"),
        ("B", "vstar", True, "choice"),
        ("(C)", "hrbench-4k", True, "choice"),
        ("A", "hrbench-8k", False, "choice"),
        ("A", "mathvision", True, "choice"),
        ("\\frac{1}{2}", "mathvision", False, "math"),
        ("12", "wemath-standard", False, "math"),
        ("x^2", "wemath-pro", False, "math"),
        ("4", "vsi", False, "mra"),
        ("1,234", "chart", False, "number"),
        ("-0.5", "longvila", False, "number"),
        ("red car", "vsi", False, "string"),
        ("the left one", None, False, "string"),
        ("apple", "chart", False, "string"),
    ],
)
def test_infer_answer_type(
    answer: str, source: str | None, has_options: bool, expected: str
) -> None:
    assert infer_answer_type(answer, source, has_options) == expected


# --- rewards ------------------------------------------------------------------------------


def _res(acc: float, correct: bool, kind: str = "choice") -> ScoreResult:
    return ScoreResult(acc, correct, kind, "")


def test_accuracy_reward() -> None:
    total, terms = AccuracyReward()(_res(1.0, True), 3)
    assert total == 1.0 and terms == {"accuracy": 1.0}


def test_accumulative_tool_reward_cases() -> None:
    r = AccumulativeToolReward()
    total, terms = r(_res(1.0, True), 3)
    assert total == pytest.approx(1.3)
    assert terms["accuracy"] == 1.0 and terms["tool_bonus"] == pytest.approx(0.3)
    assert r(_res(0.0, False), 3) == (0.0, {"accuracy": 0.0, "tool_bonus": 0.0})
    assert r(_res(1.0, True), 0)[0] == 1.0
    # MRA partial credit: bonus only when MRA >= 0.5 (score.correct)
    assert r(score_answer("13.5", "10", "mra"), 2)[0] == pytest.approx(0.3)
    assert r(_res(0.4, False, "mra"), 3)[0] == pytest.approx(0.4)
    assert r(_res(0.6, True, "mra"), 2)[0] == pytest.approx(0.8)
    assert r(score_answer("12", "10", "mra"), 2)[0] == pytest.approx(0.8)


def test_accumulative_tool_reward_options() -> None:
    assert AccumulativeToolReward(per_turn=0.2)(_res(1.0, True), 2)[0] == pytest.approx(1.4)
    capped = AccumulativeToolReward(max_bonus_turns=2)
    assert capped(_res(1.0, True), 5)[0] == pytest.approx(1.2)
    with pytest.raises(ValueError):
        AccumulativeToolReward()(_res(1.0, True), -1)


def test_terms_sum_to_total() -> None:
    for fn in (AccuracyReward(), AccumulativeToolReward()):
        total, terms = fn(_res(1.0, True), 4)
        assert sum(terms.values()) == pytest.approx(total)


def test_make_reward() -> None:
    assert isinstance(make_reward("accuracy"), AccuracyReward)
    acc = make_reward("accumulative", per_turn=0.05)
    assert isinstance(acc, AccumulativeToolReward) and acc.per_turn == 0.05
    assert isinstance(make_reward(AccumulativeToolReward, per_turn=0.3), AccumulativeToolReward)

    def custom(score: ScoreResult, tool_calls: int) -> tuple[float, dict[str, float]]:
        return 2.0 * score.accuracy, {"double": 2.0 * score.accuracy}

    assert make_reward(custom) is custom
    assert isinstance(make_reward("accumulative"), RewardFn)
    with pytest.raises(ValueError):
        make_reward("nope")
    with pytest.raises(TypeError):
        make_reward(custom, per_turn=0.1)
    with pytest.raises(TypeError):
        make_reward(42)  # type: ignore[arg-type]
