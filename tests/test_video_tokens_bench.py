"""The on-demand video benchmark (benchmarks/video_tokens.py) on two tasks of the frozen video
suite: its JSON must agree with the episodes' own records, the runtime's frames and the counter."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image

from pyvision_gym.benchmarks import video_tokens as vt
from pyvision_gym.env import SPLIT_OFFSETS
from pyvision_gym.envs import get_family
from pyvision_gym.evaluation.run_folder import read_rows
from pyvision_gym.evaluation.statistics import wilson_interval
from pyvision_gym.evaluation.suites import load_suite
from pyvision_gym.visual_tokens import VisualTokenCounter, smart_nframes

SUITE = "pvbench-video-v0"
EPISODES = 2
AGENTS = ("expert", "full-video")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the command: the expert and the full-video baseline on the suite's first two tasks."""
    root = tmp_path_factory.mktemp("video_tokens")
    out = root / "video_tokens.json"
    argv = ["--suite", SUITE, "--episodes", str(EPISODES), "--runs-dir", str(root / "runs"), "--out", str(out),
            "--cache-dir", str(root / "cache"), "--no-progress"]
    for a in AGENTS:
        argv += ["--agent", a]
    assert vt.main(argv) == 0
    return {"root": root, "result": json.loads(out.read_text()), "png": out.with_suffix(".png")}


def _rows(bench: dict[str, Any], spec: str) -> list[dict[str, Any]]:
    run_dir = Path(bench["result"]["agents"][spec]["run_dir"])
    return read_rows(run_dir / "episodes.jsonl")


def _av_facts(path: str) -> tuple[int, float, int, int]:
    """Frame count (every frame decoded), average fps and size, read with PyAV (not decord)."""
    with av.open(path) as c:
        stream = c.streams.video[0]
        fps = float(Fraction(stream.average_rate))
        frames = sum(1 for _ in c.decode(stream))
        return frames, fps, stream.codec_context.width, stream.codec_context.height


@pytest.mark.slow
def test_on_demand_tokens_are_the_frames_shown(bench: dict[str, Any]) -> None:
    counter = VisualTokenCounter()
    for spec in AGENTS:
        run_dir = Path(bench["result"]["agents"][spec]["run_dir"])
        rows = _rows(bench, spec)
        assert len(rows) == EPISODES
        by_id = {c["task_id"]: c for c in bench["result"]["agents"][spec]["episodes"]}
        for row in rows:
            refs = [ref for t in row["transcript"] for ref in t["images"]]
            assert len(refs) == row["images_shown"] == by_id[row["task_id"]]["frames_shown"]
            priced = 0
            for ref in refs:
                with Image.open(run_dir / ref) as im:
                    priced += counter.image(*im.size)
            assert row["visual_tokens"] == priced == by_id[row["task_id"]]["tokens"]
        overall = bench["result"]["agents"][spec]["overall"]
        assert overall["tokens_per_episode"] == pytest.approx(sum(r["visual_tokens"] for r in rows) / EPISODES)
    # tool output read back: the baseline's one code turn; its answer's reply is never read
    for row in _rows(bench, "full-video"):
        ep = {c["task_id"]: c for c in bench["result"]["agents"]["full-video"]["episodes"]}[row["task_id"]]
        assert [t["action"] is not None for t in row["transcript"]] == [False, True, True]
        assert ep["tool_output_chars"] == len(row["transcript"][1]["observation"]) > 0
    # the full-video baseline really shows frames; the expert shows none (it reads pixels in code)
    assert bench["result"]["agents"]["full-video"]["overall"]["frames_shown_per_episode"] > 0
    assert bench["result"]["agents"]["expert"]["overall"]["tokens_per_episode"] == 0


@pytest.mark.slow
def test_full_video_cost_is_the_counters_cost_of_the_video(bench: dict[str, Any]) -> None:
    counter = VisualTokenCounter()
    suite = load_suite(SUITE)
    tasks = [get_family(e["family"]).generate(SPLIT_OFFSETS[suite.split] + e["seed"], e["difficulty"], bench["root"] / "cache")
             for e in suite.tasks[:EPISODES]]
    fv_rows = {r["task_id"]: r for r in _rows(bench, "full-video")}
    for entry, task in zip(suite.tasks[:EPISODES], tasks, strict=True):
        frames, fps, w, h = _av_facts(task.video_path)
        want = counter.video(frames, fps, w, h)
        for spec in AGENTS:
            row = {r["task_id"]: r for r in _rows(bench, spec)}[entry["task_id"]]
            assert row["visual_tokens_full_video"] == want.tokens
        # the baseline samples exactly the frames the counter prices (2 fps, even count)
        assert fv_rows[entry["task_id"]]["images_shown"] == want.sampled_frames == smart_nframes(frames, fps)
        tiny = vt.TINY_COUNTER
        ep = {c["task_id"]: c for c in bench["result"]["agents"]["full-video"]["episodes"]}[entry["task_id"]]
        assert ep["tiny_full_video_tokens"] == want.sampled_frames * tiny.image(w, h)
        assert ep["tiny_tokens"] == ep["tiny_full_video_tokens"]  # the same frames, shown as images


@pytest.mark.slow
def test_ratio_and_accuracy_follow_from_the_records(bench: dict[str, Any]) -> None:
    for spec in AGENTS:
        rows = _rows(bench, spec)
        block = bench["result"]["agents"][spec]["overall"]
        tokens = sum(r["visual_tokens"] for r in rows)
        full = sum(r["visual_tokens_full_video"] for r in rows)
        assert block["ratio_to_full_video"] == pytest.approx(tokens / full)
        assert block["full_video_tokens_per_episode"] == pytest.approx(full / EPISODES)
        correct = sum(bool(r["correct"]) for r in rows)
        assert block["correct"] == correct and block["episodes"] == EPISODES
        assert block["ci95"] == pytest.approx(list(wilson_interval(sum(r["accuracy"] for r in rows), EPISODES)))
        fams = bench["result"]["agents"][spec]["per_family"]
        assert sum(b["episodes"] for b in fams.values()) == EPISODES
        assert sum(b["correct"] for b in fams.values()) == correct
    assert bench["result"]["agents"]["expert"]["overall"]["accuracy"] == 1.0  # the scripted expert solves them
    table = bench["result"]["markdown"]
    assert "`expert`" in table and "`full-video`" in table
    with Image.open(bench["png"]) as im:
        assert im.size[0] > 400 and im.size[1] > 300


def test_bad_input_is_refused_before_running(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video suite"):
        vt.measure(["direct"], "pvbench-image-v0", tmp_path)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        vt.measure(["direct"], SUITE, tmp_path, episodes=0)
    with pytest.raises(ValueError, match="repeat"):
        vt.measure(["direct", "direct"], SUITE, tmp_path)
    assert not any(tmp_path.iterdir())
