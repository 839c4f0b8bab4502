"""The eval runner: output files and fields, summary statistics, failures, resume, workers, Ray."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from pyvision_gym.agents.baselines import DirectAgent
from pyvision_gym.evaluation.runner import ROW_FIELDS, run_eval
from pyvision_gym.evaluation.statistics import summarize, wilson_interval
from pyvision_gym.evaluation.suites import Suite, SuiteMismatchError, load_suite
from pyvision_gym.rollout.agent import Agent, Episode

SUMMARY_KEYS = {
    "suite", "agent", "episodes", "completed", "missing", "unfinished", "accuracy", "per_family",
    "per_difficulty", "mean_reward", "mean_turns", "mean_tool_calls", "mean_tool_errors",
    "zero_tool_call_share", "visual_tokens", "end_reasons", "wall_s", "versions", "run",
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="module")
def expert_image(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> tuple[Path, dict, dict]:
    """Expert on demo-image-v0, interrupted after 2 episodes and resumed."""
    out = tmp_path_factory.mktemp("expert-image")
    partial = run_eval("expert", "demo-image-v0", out, episodes=2, progress=False, batch_size=2, cache_dir=cache)
    full = run_eval("expert", "demo-image-v0", out, progress=False, batch_size=2, cache_dir=cache)
    return out, partial, full


def _rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]


def _comparable(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


def test_files_and_fields(expert_image: tuple[Path, dict, dict]) -> None:
    out, _, summary = expert_image
    suite = load_suite("demo-image-v0")
    rows = _rows(out)
    assert [r["task_id"] for r in rows] == [t["task_id"] for t in suite.tasks]
    for r in rows:
        assert set(ROW_FIELDS) <= set(r)
        assert r["correct"] and r["end_reason"] == "DONE" and r["answer"] and r["ground_truth"]
        assert r["tool_calls"] >= 1 and r["turns"] == len(r["transcript"]) - 1
        assert r["task_hash"] == suite.tasks[r["index"]]["hash"]
        assert r["transcript"][0]["action"] is None and r["transcript"][0]["images"]  # the attached image
        for t in r["transcript"]:
            assert set(t) == {"turn", "action", "observation", "images"}
            for rel in t["images"]:
                with Image.open(out / rel) as im:
                    assert max(im.size) <= 768
    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    assert SUMMARY_KEYS <= set(summary)
    assert summary["suite"] == {"name": "demo-image-v0", "version": 0, "modality": "image", "hash": suite.hash, "tasks_in_suite": 8}
    assert summary["agent"]["spec"] == "expert"
    acc = summary["accuracy"]
    assert acc["n"] == 8 and acc["correct"] == 8 and acc["accuracy"] == 1.0
    assert acc["ci95"] == pytest.approx(list(wilson_interval(8, 8)))
    assert set(summary["per_family"]) == set(suite.families)
    assert all(b["n"] == 1 and b["accuracy"] == 1.0 for b in summary["per_family"].values())
    assert summary["zero_tool_call_share"] == 0.0 and summary["end_reasons"] == {"DONE": 8}
    assert summary["visual_tokens"]["total"] == sum(r["visual_tokens"] for r in rows)
    assert set(summary["versions"]) >= {"pyvision_gym", "python", "gymnasium", "numpy", "git_commit"}


def test_wilson_interval() -> None:
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_resume_skips_finished(expert_image: tuple[Path, dict, dict]) -> None:
    out, partial, full = expert_image
    assert partial["episodes"] == 2 and partial["accuracy"]["n"] == 2 and partial["run"]["ran"] == 2
    assert full["run"]["ran"] == 6 and full["completed"] == 8
    runs = json.loads((out / "run.json").read_text())
    assert runs["agent_spec"] == "expert" and [r["to_run"] for r in runs["runs"]] == [2, 6]
    assert len(_rows(out)) == 8
    again = run_eval("expert", "demo-image-v0", out, progress=False)  # nothing left: no worker starts
    assert again["run"]["ran"] == 0 and again["accuracy"] == full["accuracy"]
    with pytest.raises(ValueError, match="use another output directory"):
        run_eval("direct", "demo-image-v0", out, progress=False)


def test_workers_equal_local(expert_image: tuple[Path, dict, dict], tmp_path: Path, cache: Path) -> None:
    out, _, full = expert_image
    s2 = run_eval("expert", "demo-image-v0", tmp_path, workers=2, progress=False, batch_size=2, cache_dir=cache)
    assert _comparable(_rows(tmp_path)) == _comparable(_rows(out))
    assert s2["accuracy"] == full["accuracy"] and s2["run"]["backend"] == "processes"


class FlakyAgent(Agent):
    """Answers at once like DirectAgent, but raises on one task (and returns garbage on another)."""

    spec = "flaky"

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        if any(ep.episode_id.startswith("event_counting") for ep in episodes):
            raise RuntimeError("boom")
        return DirectAgent().act(episodes)


def test_agent_errors_count_as_wrong(tmp_path: Path, cache: Path) -> None:
    s = run_eval(FlakyAgent(), "demo-video-v0", tmp_path, episodes=4, progress=False, batch_size=4, cache_dir=cache)
    rows = {r["task_id"]: r for r in _rows(tmp_path)}
    bad = rows["event_counting-d0-s2000001000"]
    assert bad["end_reason"] == "AGENT_ERROR" and "boom" in bad["error"] and not bad["correct"]
    others = [r for k, r in rows.items() if k != bad["task_id"]]
    assert all(r["end_reason"] == "DONE" and r["tool_calls"] == 0 for r in others)  # isolated from the batch
    assert all(r["visual_tokens_full_video"] > 0 and r["visual_tokens"] == 0 for r in others)
    assert s["accuracy"]["n"] == 4 and s["unfinished"] == 1 and s["end_reasons"]["AGENT_ERROR"] == 1
    assert s["zero_tool_call_share"] == 1.0 and s["visual_tokens"]["full_video_mean"] > 0
    # a task without any row counts as wrong too: the denominator is every selected task
    suite = load_suite("demo-video-v0")
    part = summarize(list(rows.values())[:2], suite)
    assert part["episodes"] == 7 and part["accuracy"]["n"] == 7 and part["missing"] == 5
    assert part["accuracy"]["accuracy"] == sum(r["accuracy"] for r in list(rows.values())[:2]) / 7


def test_suite_mismatch_stops_the_run(tmp_path: Path, cache: Path) -> None:
    s = load_suite("demo-image-v0")
    tasks = [dict(t) for t in s.tasks[:1]]
    tasks[0]["seed"] += 1  # the frozen hash no longer matches what is generated
    forged = Suite(s.name, s.version, s.modality, tasks, s.env_kwargs, s.hash)
    with pytest.raises(SuiteMismatchError, match="would not be comparable"):
        run_eval("direct", forged, tmp_path, progress=False, cache_dir=cache)


@pytest.mark.slow
def test_ray_equals_local(expert_image: tuple[Path, dict, dict], tmp_path: Path, cache: Path) -> None:
    pytest.importorskip("ray")
    out, _, full = expert_image
    s = run_eval("expert", "demo-image-v0", tmp_path, workers=2, use_ray=True, progress=False, batch_size=2, cache_dir=cache)
    assert _comparable(_rows(tmp_path)) == _comparable(_rows(out))
    assert s["accuracy"] == full["accuracy"] and s["run"]["backend"] == "ray"
