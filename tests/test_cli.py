"""The command line as a user types it: eval → leaderboard → view, and the refusal of a wrong suite hash."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from typer.testing import CliRunner

from pyvision_gym.cli import app
from pyvision_gym.rollout.agent import Agent, Episode

runner = CliRunner()


def test_eval_leaderboard_view(tmp_path: Path) -> None:
    runs = []
    for agent in ("expert", "direct"):
        out = tmp_path / agent
        res = runner.invoke(app, ["eval", "--agent", agent, "--suite", "demo-image-v0", "--episodes", "2", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert "accuracy" in res.output and (out / "viewer.html").is_file()
        summary = json.loads((out / "summary.json").read_text())
        assert summary["accuracy"]["n"] == 2
        runs.append(out)
    res = runner.invoke(app, ["leaderboard", *map(str, runs), "--out", str(tmp_path / "board")])
    assert res.exit_code == 0, res.output
    assert "| 1 | expert" in res.output and (tmp_path / "board" / "leaderboard.html").is_file()
    res = runner.invoke(app, ["view", str(runs[0]), "--out", str(tmp_path / "v.html")])
    assert res.exit_code == 0 and "<html" in (tmp_path / "v.html").read_text().lower()


def test_leaderboard_refuses_other_suite_hash(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert runner.invoke(app, ["eval", "--agent", "direct", "--suite", "demo-image-v0", "--episodes", "1", "--out", str(out), "--no-view"]).exit_code == 0
    summary_path = out / "summary.json"
    summary = json.loads(summary_path.read_text())
    summary["suite"]["hash"] = "0" * 64
    summary_path.write_text(json.dumps(summary))
    res = runner.invoke(app, ["leaderboard", str(out), "--out", str(tmp_path / "board")])
    assert res.exit_code == 2
    assert "hash" in res.output and "0000000000" in res.output


class RaisingAgent(Agent):
    """An agent whose backend is gone: every call fails."""

    spec = "raising"

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        raise ConnectionError("endpoint http://127.0.0.1:9/v1 refused the connection")


class OptionsAgent(Agent):
    """Answers at once and reports the options it was built with."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.spec = "options"

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, **self.options}

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        return ["<answer>\\boxed{A}</answer>" for _ in episodes]


def test_eval_fails_loudly_when_episodes_error(tmp_path: Path) -> None:
    args = ["eval", "--agent", "test_cli:RaisingAgent", "--suite", "demo-image-v0", "--episodes", "3", "--no-view"]
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code == 1, res.output
    assert "3 of 3 episodes ended in errors" in res.output and "refused the connection" in res.output
    res = runner.invoke(app, [*args, "--out", str(tmp_path / "b"), "--max-error-share", "1.0"])
    assert res.exit_code == 0, res.output
    assert "warning: 3 of 3" in res.output


def test_eval_passes_agent_options(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = runner.invoke(app, ["eval", "--agent", "test_cli:OptionsAgent", "--suite", "demo-image-v0", "--episodes", "1",
                              "--temperature", "0.7", "--max-new-tokens", "64", "--top-p", "0.9", "--seed", "3",
                              "--no-view", "--out", str(out)])
    assert res.exit_code == 0, res.output
    agent = json.loads((out / "summary.json").read_text())["agent"]
    assert agent == {"spec": "options", "temperature": 0.7, "max_new_tokens": 64, "top_p": 0.9, "seed": 3}
    res = runner.invoke(app, ["eval", "--agent", "no_such_module_xyz:Agent", "--suite", "demo-image-v0", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "no_such_module_xyz" in res.output


def test_eval_on_a_dataset_file_and_freeze_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:
    Image.new("RGB", (40, 30), (200, 10, 10)).save(tmp_path / "im.png")
    rows = [{"id": f"q{i}", "question": "Which? (A) x (B) y", "answer": "AB"[i], "image_path": "im.png"} for i in range(2)]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    out = tmp_path / "run"
    res = runner.invoke(app, ["eval", "--agent", "direct", "--suite", str(tmp_path / "data.json"), "--no-view", "--out", str(out)])
    assert res.exit_code == 0, res.output
    suite = json.loads((out / "summary.json").read_text())["suite"]
    assert suite["name"] == "data" and len(suite["hash"]) == 64 and suite["hash"][:16] in res.output
    monkeypatch.chdir(tmp_path)
    res = runner.invoke(app, ["suites", "freeze", "toy", "--dataset", "data.json"])
    assert res.exit_code == 0, res.output
    frozen = json.loads((tmp_path / "toy.json").read_text())
    assert frozen["hash"] == suite["hash"] and frozen["dataset"] == "data.json"
