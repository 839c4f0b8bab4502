"""The command line as a user types it: eval → leaderboard → view, and the refusal of a wrong suite hash."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from pyvision_gym.cli import app

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
