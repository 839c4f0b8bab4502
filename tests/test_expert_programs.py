"""The expert programs are real Python files (``envs/<modality>/experts/*.py``): each one parses,
compiles under the runtime's restricted policy, turn by turn, and uses only what the runtime
allows. Covers both modalities by globbing."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from expert_checks import policy_problems

from pyvision_gym.envs import experts
from pyvision_gym.envs.registry import families_for
from pyvision_gym.sandbox.policy import compile_agent_code

EXPERT_FILES = sorted(experts.ROOT.glob("*/experts/*.py"))


def label(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}"


def test_expert_files_found() -> None:
    assert any(p.parent.parent.name == "image" for p in EXPERT_FILES)
    assert not any(p.name == "__init__.py" for p in EXPERT_FILES)  # data files, not packages


@pytest.mark.parametrize("path", EXPERT_FILES, ids=label)
def test_expert_file_parses_and_compiles(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    ast.parse(source, filename=str(path))
    compile_agent_code(source, str(path))  # the whole file (helpers are sent whole)
    turns = experts.split_turns(source)
    assert turns, f"{path} has no code"
    for turn in turns:
        compile_agent_code(turn, str(path))  # each turn alone, as the runtime receives it
        assert policy_problems(turn) == [], (path, policy_problems(turn))


@pytest.mark.parametrize("name", list(families_for("image")))
def test_every_image_family_has_an_expert_file(name: str) -> None:
    assert (experts.ROOT / "image" / "experts" / f"{name}.py").is_file()


def test_split_turns_drops_a_comment_header() -> None:
    source = "# What it does.\n\n# Parameters: X.\n\n# %% turn\nx = X\n\n# %% turn\nprint(x)\n"
    assert experts.split_turns(source) == ["x = X\n", "print(x)\n"]
    assert experts.split_turns("y = 1\n# %% turn\nprint(y)\n") == ["y = 1\n", "print(y)\n"]
    assert experts.split_turns("# only a comment\nprint(1)\n") == ["# only a comment\nprint(1)\n"]


def test_expert_turns_prepends_helpers_and_parameters() -> None:
    turns = experts.expert_turns("image", "counting", helpers=("blob_tools",), COLOUR="red", SHAPE="circle")
    assert len(turns) == 2
    assert "def describe_blobs(" in turns[0] and "COLOUR = 'red'\nSHAPE = 'circle'\n" in turns[0]
    assert turns[0].index("def describe_blobs(") < turns[0].index("COLOUR = 'red'") < turns[0].index("collections")
    assert "def describe_blobs(" not in turns[1]
    with pytest.raises(ValueError, match="UPPER_CASE"):
        experts.expert_turns("image", "counting", colour="red")
