"""Frozen suites: contents, stable hashes, tamper detection, dataset suites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from pyvision_gym.agents.baselines import ExpertAgent
from pyvision_gym.cli import app
from pyvision_gym.datasets import load_dataset, row_to_task
from pyvision_gym.env import SPLIT_OFFSETS
from pyvision_gym.envs import families_for
from pyvision_gym.evaluation.runner import run_eval
from pyvision_gym.evaluation.suites import (
    SuiteError,
    SuiteMismatchError,
    compute_suite_hash,
    freeze_dataset,
    load_suite,
    suite_tasks,
    verify_suite,
)
from pyvision_gym.rollout.agent import Episode, Observation


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.mark.parametrize(
    ("name", "difficulties", "seeds"),
    [("pvbench-image-v0", (0, 1, 2), 4), ("pvbench-video-v0", (0, 1, 2), 4), ("demo-image-v0", (0,), 1), ("demo-video-v0", (0,), 1)],
)
def test_builtin_suites(name: str, difficulties: tuple[int, ...], seeds: int) -> None:
    s = load_suite(name)  # also checks the file against its own hash
    fams = families_for(s.modality)
    assert s.name == name and s.split == "test" and s.env_kwargs["max_turns"] >= 4
    assert len(s.tasks) == len(fams) * len(difficulties) * seeds
    assert {(t["family"], t["difficulty"]) for t in s.tasks} == {(f, d) for f in fams for d in difficulties}
    for t in s.tasks:
        assert t["task_id"] == f"{t['family']}-d{t['difficulty']}-s{SPLIT_OFFSETS['test'] + t['seed']}"
        assert len(t["hash"]) == 64


def test_pvbench_and_demo_are_disjoint() -> None:
    for m in ("image", "video"):
        a = {t["task_id"] for t in load_suite(f"pvbench-{m}-v0").tasks}
        assert not a & {t["task_id"] for t in load_suite(f"demo-{m}-v0").tasks}


@pytest.mark.parametrize("name", ["demo-image-v0", "demo-video-v0"])
def test_hash_is_stable(name: str, cache: Path) -> None:
    s = load_suite(name)
    assert verify_suite(s, cache) == s.hash
    assert compute_suite_hash(s, cache) == s.hash  # again, from the cached media
    tasks = suite_tasks(s, cache)
    assert [t.task_id for t in tasks] == [t["task_id"] for t in s.tasks]


def _tampered(tmp_path: Path, name: str, edit) -> Path:
    data = json.loads(load_suite(name).path.read_text())
    edit(data)
    p = tmp_path / f"{name}.json"
    p.write_text(json.dumps(data))
    return p


def test_edited_file_is_detected_on_load(tmp_path: Path) -> None:
    p = _tampered(tmp_path, "demo-image-v0", lambda d: d["env_kwargs"].update(max_turns=50))
    with pytest.raises(SuiteMismatchError, match="edited after freezing"):
        load_suite(p)
    p = _tampered(tmp_path, "demo-image-v0", lambda d: d["tasks"][0].update(hash="0" * 64))
    with pytest.raises(SuiteMismatchError, match="edited after freezing"):
        load_suite(p)


def test_tampered_task_is_detected_by_verify(tmp_path: Path, cache: Path) -> None:
    def edit(d: dict) -> None:
        d["tasks"][2]["seed"] += 1  # keeps the frozen id and hash: only regeneration can tell

    p = _tampered(tmp_path, "demo-image-v0", edit)
    s = load_suite(p)
    with pytest.raises(SuiteMismatchError) as err:
        verify_suite(s, cache)
    msg = str(err.value)
    assert "1 of 8 tasks differ" in msg and s.tasks[2]["task_id"] in msg and "not comparable" in msg


def test_unknown_suite() -> None:
    with pytest.raises(SuiteError, match="demo-image-v0"):
        load_suite("no-such-suite")


def test_dataset_suite(tmp_path: Path, cache: Path) -> None:
    rng = np.random.default_rng(0)
    ds = tmp_path / "data" / "toy.json"  # the suite file refers to it relative to itself
    ds.parent.mkdir()
    rows = []
    for i in range(3):
        Image.fromarray(rng.integers(0, 255, (40, 60, 3), dtype=np.uint8)).save(ds.parent / f"im{i}.png")
        rows.append({"id": f"q{i}", "question": f"What is {i}? (A) x (B) y", "answer": "A", "image_path": f"im{i}.png", "data_source": "toy"})
    ds.write_text(json.dumps(rows))
    out = tmp_path / "suites" / "toy-v0.json"
    assert "wrote 3 tasks" in freeze_dataset("toy-v0", ds, "image", out)
    s = load_suite(out)
    assert s.dataset == "../data/toy.json" and s.dataset_path == ds.resolve()
    assert [t["index"] for t in s.tasks] == [0, 1, 2] and s.families == ["toy"]
    assert verify_suite(s, cache) == s.hash
    assert "unchanged" in freeze_dataset("toy-v0", ds, "image", out)
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(ds.parent / "im1.png")  # the data changed
    with pytest.raises(SuiteMismatchError, match="q1"):
        verify_suite(s, cache)
    with pytest.raises(SuiteError, match="never rewritten"):
        freeze_dataset("toy-v0", ds, "image", out)


def test_eval_on_dataset_suite(tmp_path: Path, cache: Path) -> None:
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(tmp_path / "im.png")
    ds = tmp_path / "toy.json"
    ds.write_text(json.dumps([{"id": f"q{i}", "question": "Pick one. (A) x (B) y", "answer": "AB"[i], "image_path": "im.png"} for i in range(2)]))
    out = tmp_path / "toy-v0.json"
    freeze_dataset("toy-v0", ds, "image", out)
    s = run_eval("direct", str(out), tmp_path / "run", progress=False, cache_dir=cache, batch_size=2)
    assert s["accuracy"]["n"] == 2 and s["accuracy"]["correct"] == 1
    task = row_to_task(load_dataset(ds)[0], 0)
    with pytest.raises(ValueError, match="exists only for the built-in families"):
        ExpertAgent().act([Episode("q0", "image", Observation("x"), task=task)])


def test_cli_list() -> None:
    res = CliRunner().invoke(app, ["suites", "list"])
    assert res.exit_code == 0, res.output
    assert "pvbench-image-v0" in res.output and "demo-video-v0" in res.output
