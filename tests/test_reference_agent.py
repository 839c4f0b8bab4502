"""The ``reference`` agent spec: a model folder with the settings its policy was trained with.

Most tests put an exported-style folder (the tiny model plus ``pyvision_agent.json``) where the
spec looks, and check that the spec loads it with its settings, that an evaluation applies and
records the environment settings, and that the leaderboard says so. The last one plays the
checkpoint shipped in ``agents/checkpoints/reference`` against the direct baseline.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pyvision_gym.agents import reference
from pyvision_gym.agents.registry import AgentSpecError, make_agent
from pyvision_gym.evaluation.leaderboard import build_leaderboard
from pyvision_gym.evaluation.runner import run_eval

SETTINGS = {"max_new_tokens": 24, "env_overrides": {"toolbox": True, "show_image": False}}


@pytest.fixture
def reference_folder(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "reference"
    shutil.copytree(tiny_model, folder)
    (folder / "pyvision_agent.json").write_text(json.dumps(SETTINGS))
    monkeypatch.setattr(reference, "REFERENCE_MODEL", folder)
    return folder


def test_missing_checkpoint_names_the_commands_that_make_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reference, "REFERENCE_MODEL", tmp_path / "nothing-here")
    with pytest.raises(AgentSpecError, match=r"pyvision-gym train --config reference`, then `pyvision-gym export"):
        make_agent("reference")


def test_reference_and_vlm_hf_specs_load_the_folder_with_its_settings(reference_folder: Path) -> None:
    ref = make_agent("reference")
    same = make_agent(f"vlm:hf:{reference_folder}", max_new_tokens=7)  # given options win over the folder's
    try:
        assert ref.spec == "reference" and same.spec == f"vlm:hf:{reference_folder}"
        assert ref.sampling.max_new_tokens == 24 and same.sampling.max_new_tokens == 7
        for agent in (ref, same):
            assert agent.env_overrides == SETTINGS["env_overrides"] and agent.sampling.temperature == 0.0
        assert ref.describe()["env_overrides"] == SETTINGS["env_overrides"]
    finally:
        ref.close()
        same.close()


def test_bad_agent_settings_file_is_named(reference_folder: Path) -> None:
    (reference_folder / "pyvision_agent.json").write_text(json.dumps({"max_new_token": 5}))
    with pytest.raises(ValueError, match=r"pyvision_agent.json: unknown agent settings \['max_new_token'\]"):
        make_agent("reference")


def test_eval_applies_and_records_the_settings_and_the_board_notes_them(reference_folder: Path, tmp_path: Path) -> None:
    runs = {spec: tmp_path / spec for spec in ("reference", "direct")}
    for spec, out in runs.items():
        run_eval(spec, "demo-image-v0", out, episodes=2, progress=False, batch_size=2, cache_dir=tmp_path / "media")
    rows = [json.loads(x) for x in (runs["reference"] / "episodes.jsonl").read_text().splitlines()]
    first = rows[0]["transcript"][0]["observation"]
    assert "These helper functions are already defined:" in first and "The image is NOT attached" in first
    assert all(r["visual_tokens"] == 0 for r in rows)  # no image in the prompt, none shown
    direct = json.loads((runs["direct"] / "episodes.jsonl").read_text().splitlines()[0])["transcript"][0]["observation"]
    assert "These helper functions" not in direct and "The image is also attached" in direct
    assert json.loads((runs["reference"] / "summary.json").read_text())["agent"]["env_overrides"] == SETTINGS["env_overrides"]
    board = build_leaderboard(list(runs.values()), tmp_path / "board")
    assert "reference: ran with environment settings of its own over the suite's (show_image=False, toolbox=True)" in board.markdown
    assert "direct: ran with environment settings" not in board.markdown


def test_exported_authors_format_settings_load_as_that_prompt_style(reference_folder: Path) -> None:
    """A run in the authors' format exports ``prompt_style`` as an agent setting; the agent
    then asks the evaluation for that style itself."""
    from pyvision_gym.train.config import load_config
    from pyvision_gym.train.export import agent_settings

    cfg = load_config("tiny-cpu", ["env.kwargs.prompt_style=pyvision", "env.kwargs.toolbox=false"])
    settings = agent_settings(cfg)
    assert settings == {"max_new_tokens": 256, "prompt_style": "pyvision", "env_overrides": {"toolbox": False, "show_image": False}}
    (reference_folder / "pyvision_agent.json").write_text(json.dumps(settings))
    agent = make_agent("reference")
    try:
        assert agent.prompt_style == "pyvision"
        assert agent.env_overrides == {"toolbox": False, "show_image": False, "prompt_style": "pyvision"}
    finally:
        agent.close()


SHIPPED = Path(reference.__file__).resolve().parent / "checkpoints" / "reference"


@pytest.mark.slow
def test_the_shipped_checkpoint_uses_its_tools_and_beats_direct_on_held_out_tasks(tmp_path: Path) -> None:
    """The checkpoint in the repository, greedy, on the first 16 tasks of pvbench-image-v0 (each
    image family at difficulties 0 and 1, test-split seeds the training never drew), against the
    direct baseline on the same tasks (measured: 9 of 16 against 1)."""
    assert (SHIPPED / "config.json").is_file() and (SHIPPED / "README.md").is_file()
    settings = json.loads((SHIPPED / "pyvision_agent.json").read_text())
    assert settings["env_overrides"] == {"toolbox": True, "question_reader": True, "show_image": False}
    summaries = {
        spec: run_eval(spec, "pvbench-image-v0", tmp_path / spec, episodes=16, progress=False, batch_size=8,
                       cache_dir=tmp_path / "media")
        for spec in ("reference", "direct")
    }
    ref, direct = summaries["reference"], summaries["direct"]
    assert ref["completed"] == 16 and ref["mean_tool_calls"] >= 1.0
    assert ref["accuracy"]["correct"] >= direct["accuracy"]["correct"] + 5, (ref["accuracy"], direct["accuracy"])
    trained = ("counting", "real_photo_search", "spatial_relation", "visual_search_attribute", "visual_search_relative_position")
    assert all(ref["per_family"][f]["mean_tool_calls"] >= 1.0 for f in trained)
