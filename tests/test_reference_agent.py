"""The shipped reference agent (agents/checkpoints/reference): it loads by spec, asks for the
settings it was trained with, and on held-out tasks of its trained families uses its tools and
answers right where the direct baseline cannot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pyvision_gym.agents.reference import REFERENCE_MODEL
from pyvision_gym.agents.registry import make_agent
from pyvision_gym.evaluation.leaderboard import build_leaderboard
from pyvision_gym.evaluation.runner import run_eval

TRAINED = ("counting", "text_reading", "real_photo_search")  # the model card's task mix


def test_reference_folder_is_small_and_carries_its_settings() -> None:
    weights = REFERENCE_MODEL / "model.safetensors"
    assert weights.is_file() and weights.stat().st_size < 8_000_000
    card = (REFERENCE_MODEL / "README.md").read_text()
    for needed in ("pyvision-gym train --config reference", "pyvision-gym export", "pvbench-image-v0", *TRAINED):
        assert needed in card, needed
    settings = json.loads((REFERENCE_MODEL / "pyvision_agent.json").read_text())
    assert settings == {"max_new_tokens": 512, "env_overrides": {"toolbox": True}}
    exported = json.loads((REFERENCE_MODEL / "exported_from.json").read_text())
    assert exported["config"] == "reference" and exported["step"] > 0


def test_reference_and_vlm_hf_specs_load_the_same_agent() -> None:
    ref = make_agent("reference")
    same = make_agent(f"vlm:hf:{REFERENCE_MODEL}")
    try:
        assert ref.spec == "reference"
        for agent in (ref, same):
            assert agent.env_overrides == {"toolbox": True}
            assert agent.sampling.max_new_tokens == 512 and agent.sampling.temperature == 0.0
        assert ref.describe()["env_overrides"] == {"toolbox": True}
    finally:
        ref.close()
        same.close()


@pytest.mark.slow
def test_reference_uses_its_tools_and_beats_direct_on_its_families(tmp_path: Path) -> None:
    """The demo suite's tasks (test split, never trained on) of the trained families."""
    cache = tmp_path / "media"
    runs = {}
    for spec in ("reference", "direct"):
        runs[spec] = tmp_path / spec
        run_eval(spec, "demo-image-v0", runs[spec], progress=False, batch_size=8, cache_dir=cache)
    rows = {spec: {r["family"]: r for r in map(json.loads, (d / "episodes.jsonl").read_text().splitlines())}
            for spec, d in runs.items()}
    ref, direct = rows["reference"], rows["direct"]
    trained = [ref[f] for f in TRAINED]
    assert all(r["tool_calls"] >= 1 for r in trained), [(r["family"], r["tool_calls"]) for r in trained]
    assert sum(r["correct"] for r in trained) >= 2 > sum(direct[f]["correct"] for f in TRAINED)
    run_info = json.loads((runs["reference"] / "run.json").read_text())
    assert run_info["agent"]["env_overrides"] == {"toolbox": True}
    board = build_leaderboard(list(runs.values()), tmp_path / "board")
    assert "reference: ran with environment settings of its own over the suite's (toolbox=True)" in board.markdown
