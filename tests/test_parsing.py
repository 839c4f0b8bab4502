"""Tests for pyvision_gym.parsing: turn text -> answer / code / none."""

from __future__ import annotations

import dataclasses

import pytest

from pyvision_gym.parsing import ParsedAction, extract_boxed, format_help, parse_action

CODE_TURN = "Let me zoom in.\n<code>\n```python\nprint(image_clue_0.size)\n```\n</code>"


def test_canonical_answer() -> None:
    a = parse_action("I see it.\n<answer>\n\\boxed{B}\n</answer>")
    assert a.kind == "answer"
    assert a.answer == "B"
    assert a.code is None
    assert a.ignored_code is False


def test_canonical_code() -> None:
    a = parse_action(CODE_TURN)
    assert a.kind == "code"
    assert a.code == "print(image_clue_0.size)"
    assert a.answer is None
    assert a.raw == CODE_TURN


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>\n\\boxed{\\frac{3}{8}}\n</answer>", "\\frac{3}{8}"),
        ("<answer>\\boxed{{a,b}}</answer>", "{a,b}"),
        ("<answer>\\boxed{\\sqrt{\\frac{1}{2}}}</answer>", "\\sqrt{\\frac{1}{2}}"),
        ("<answer>\n  \\boxed{ 42 }  \n</answer>", "42"),
        ("<answer>\\boxed {x}</answer>", "x"),
        ("<answer>\\boxed{'B'}</answer>", "B"),
        ('<answer>\\boxed{"red car"}</answer>', "red car"),
        ("<answer>\\boxed{''B''}</answer>", "'B'"),  # only one pair of quotes removed
        ("<answer>The answer is $\\boxed{7}$.</answer>", "7"),
        ("<answer>\\boxed{1} or maybe \\boxed{2}</answer>", "2"),  # last boxed
        ("<answer>  plain text answer \n</answer>", "plain text answer"),
        ("<answer>'C'</answer>", "C"),
        ("<answer>\\boxed{abc</answer>", "abc"),  # dangling \boxed{ dropped
        ("<ANSWER>\\boxed{D}</ANSWER>", "D"),
        ("<answer>\\boxed{a \\{ b}</answer>", "a \\{ b"),  # escaped brace is not structure
    ],
)
def test_answer_extraction(text: str, expected: str) -> None:
    a = parse_action(text)
    assert a.kind == "answer"
    assert a.answer == expected


def test_several_answers_last_wins() -> None:
    a = parse_action("<answer>\\boxed{A}</answer> wait, no. <answer>\n\\boxed{C}\n</answer>")
    assert a.answer == "C"


def test_empty_answer_is_still_an_answer() -> None:
    a = parse_action("<answer></answer>")
    assert a.kind == "answer"
    assert a.answer == ""


def test_answer_and_code_answer_wins_code_ignored() -> None:
    a = parse_action(CODE_TURN + "\n<answer>\n\\boxed{C}\n</answer>")
    assert a.kind == "answer"
    assert a.answer == "C"
    assert a.ignored_code is True
    assert a.code is None


def test_answer_before_code_still_wins() -> None:
    a = parse_action("<answer>\\boxed{5}</answer>\n" + CODE_TURN)
    assert (a.kind, a.answer, a.ignored_code) == ("answer", "5", True)


def test_no_code_no_answer() -> None:
    for text in ["", "I am thinking about the image.", "```\nnot python\n```", "<code></code>"]:
        a = parse_action(text)
        assert a.kind == "none", text
        assert a.code is None and a.answer is None and a.ignored_code is False


def test_unclosed_answer_with_boxed_is_used() -> None:
    a = parse_action("So the count is\n<answer>\n\\boxed{42}")
    assert (a.kind, a.answer) == ("answer", "42")


def test_unclosed_answer_without_boxed_is_none() -> None:
    assert parse_action("<answer>\nThe answer is pro").kind == "none"
    assert parse_action("<answer>\n\\boxed{4").kind == "none"


def test_unclosed_answer_falls_back_to_earlier_code() -> None:
    a = parse_action(CODE_TURN + "\n<answer> I am not su")
    assert a.kind == "code"
    assert a.code == "print(image_clue_0.size)"


def test_closed_answer_beats_later_unclosed_without_boxed() -> None:
    a = parse_action("<answer>\\boxed{A}</answer> hmm <answer> maybe")
    assert (a.kind, a.answer) == ("answer", "A")


def test_code_block_beats_bare_fence_wherever_it_is() -> None:
    text = (
        "```python\nx = 'bare before'\n```\n"
        "<code>\n```python\nx = 'tagged'\n```\n</code>\n"
        "```python\nx = 'bare after'\n```"
    )
    a = parse_action(text)
    assert a.kind == "code"
    assert a.code == "x = 'tagged'"


def test_several_code_blocks_last_wins() -> None:
    text = "<code>\n```python\na = 1\n```\n</code>\n<code>\n```python\nb = 2\n```\n</code>"
    assert parse_action(text).code == "b = 2"


def test_bare_fence_fallback_last_wins_and_py_accepted() -> None:
    a = parse_action("```python\nfirst = 1\n```\ntext\n```py\nsecond = 2\n```")
    assert (a.kind, a.code) == ("code", "second = 2")


def test_unlabelled_fence_only_inside_code_tag() -> None:
    assert parse_action("<code>\n```\nz = 3\n```\n</code>").code == "z = 3"
    assert parse_action("```\nz = 3\n```").kind == "none"


def test_code_tag_missing_closing_fence_is_accepted() -> None:
    a = parse_action("<code>\n```python\nprint('hi')\n</code>")
    assert (a.kind, a.code) == ("code", "print('hi')")


def test_truncated_code_is_not_run() -> None:
    assert parse_action("<code>\n```python\nfor i in range(3):\n    pri").kind == "none"


def test_malformed_block_does_not_swallow_next() -> None:
    text = "<code>\n```python\nbroken = 1\n<code>\n```python\ngood = 2\n```\n</code>"
    assert parse_action(text).code == "good = 2"


def test_backticks_inside_code_string() -> None:
    text = "<code>\n```python\ns = '```'\nprint(s)\n```\n</code>"
    assert parse_action(text).code == "s = '```'\nprint(s)"


def test_code_is_dedented_and_keeps_inner_indentation() -> None:
    text = "<code>\n```python\n    for i in range(2):\n        print(i)\n```\n</code>"
    assert parse_action(text).code == "for i in range(2):\n    print(i)"


def test_one_line_fence_inside_code_tag() -> None:
    assert parse_action("<code>```python print(1)```</code>").code == "print(1)"


def test_parsed_action_is_frozen() -> None:
    a = parse_action("hi")
    assert isinstance(a, ParsedAction)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.kind = "code"  # type: ignore[misc]


def test_extract_boxed() -> None:
    assert extract_boxed("\\boxed{a} and \\boxed{b{c}}") == "b{c}"
    assert extract_boxed("no box") is None
    assert extract_boxed("\\boxed{unclosed") is None


def test_format_help_shows_both_formats() -> None:
    h = format_help()
    assert "<code>\n```python\n" in h and "```\n</code>" in h
    assert "<answer>\n\\boxed{" in h and "}\n</answer>" in h
    # The examples in the help text are themselves parseable as the two formats.
    code_example = h[h.index("<code>") : h.index("</code>") + len("</code>")]
    answer_example = h[h.index("<answer>") : h.index("</answer>") + len("</answer>")]
    assert parse_action(code_example).kind == "code"
    assert parse_action(answer_example).kind == "answer"
