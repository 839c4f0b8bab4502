"""Datasets from disk: every bad file, row, field and medium is a DatasetError naming where (issue 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

import pyvision_gym  # noqa: F401 - registers the environments
from pyvision_gym.datasets import DatasetError, load_dataset
from pyvision_gym.envs import get_family


def write(folder: Path, rows: list, name: str = "data.json") -> Path:
    path = folder / name
    path.write_text(json.dumps(rows))
    return path


def png(folder: Path, name: str = "ok.png", size: tuple[int, int] = (64, 48)) -> str:
    Image.fromarray(np.full((size[1], size[0], 3), 200, np.uint8)).save(folder / name)
    return name


def row(i: int, media: str, key: str = "image_path", **extra) -> dict:
    return {"id": f"r{i}", "question": "What?", "answer": "A", key: media, **extra}


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    cache = tmp_path_factory.mktemp("vid")
    task = get_family("event_counting").generate(0, 0, cache)
    return Path(task.video_path)


def test_non_utf8_file_names_the_file(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes(json.dumps([row(0, png(tmp_path))]).encode().replace(b"What", b"Wh\xe9t"))
    with pytest.raises(DatasetError, match=r"latin1\.json: not UTF-8"):
        load_dataset(path)


@pytest.mark.parametrize("field", ["answer", "question"])
@pytest.mark.parametrize("value", [["A", "B"], {"a": 1}])
def test_structured_answer_or_question_is_refused(tmp_path, field, value):
    path = write(tmp_path, [row(0, png(tmp_path)), {**row(1, png(tmp_path)), field: value}])
    with pytest.raises(DatasetError, match=rf"row 1 .*field '{field}' must be a string"):
        load_dataset(path)


def test_media_path_must_stay_inside_the_dataset_folder(tmp_path):
    inner = tmp_path / "ds"
    inner.mkdir()
    png(tmp_path, "outside.png")
    path = write(inner, [row(0, "../outside.png")])
    with pytest.raises(DatasetError, match=r"row 0 .*'image_path'.*outside the dataset's folder"):
        load_dataset(path)
    assert load_dataset(path, allow_outside_paths=True)[0].media_path == (tmp_path / "outside.png").resolve()
    with pytest.raises(DatasetError, match="outside"):
        load_dataset(write(inner, [row(0, "../../../../etc/passwd")]))


def test_image_over_the_pixel_bound_is_refused_before_decoding(tmp_path):
    Image.new("L", (20000, 20000)).save(tmp_path / "bomb.png", optimize=True)
    path = write(tmp_path, [row(0, png(tmp_path)), row(1, "bomb.png")])
    with pytest.raises(DatasetError, match=r"row 1 .*'image_path'.*too large.*400000000 pixels.*the limit is 50,000,000"):
        load_dataset(path)
    with pytest.raises(DatasetError, match=r"64x48 = 3,072 pixels; the limit is 1,000"):
        load_dataset(write(tmp_path, [row(0, png(tmp_path))]), max_image_pixels=1000)


def test_truncated_image_fails_at_load_and_can_be_skipped(tmp_path):
    data = (tmp_path / png(tmp_path, "full.png", (300, 200))).read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    path = write(tmp_path, [row(0, "cut.png"), row(1, "full.png")])
    with pytest.raises(DatasetError, match=r"row 0 .*'image_path'.*cannot read image"):
        load_dataset(path)
    with pytest.warns(UserWarning, match="skipped 1 bad row"):
        rows = load_dataset(path, on_error="skip")
    assert [r.task_id for r in rows] == ["r1"] and "row 0" in rows.skipped[0]


@pytest.mark.parametrize("kind", ["empty", "garbage", "text", "truncated"])
def test_undecodable_video_names_row_and_field(tmp_path, video, kind):
    target = tmp_path / "clip.mp4"
    data = video.read_bytes()
    content = {"empty": b"", "garbage": bytes(range(256)) * 40, "text": b"just some text\n" * 50,
               "truncated": data[: len(data) * 2 // 3]}[kind]
    target.write_bytes(content)
    shutil.copy(video, tmp_path / "good.mp4")
    path = write(tmp_path, [row(0, "good.mp4", "video_path"), row(1, "clip.mp4", "video_path")])
    with pytest.raises(DatasetError, match=r"row 1 \(id='r1'\): field 'video_path'"):
        load_dataset(path)


def test_a_bad_row_cannot_leave_the_env_unusable(tmp_path):
    rows = [row(i, png(tmp_path, f"im{i}.png")) for i in range(2)]
    path = write(tmp_path, rows)
    env = gym.make("PyVisionImage-v0", dataset=path)
    try:
        # the file breaks after loading: reset names the row, and the env still works after it
        (tmp_path / "im0.png").write_bytes(b"not a png")
        with pytest.raises(DatasetError, match="row 0"):
            env.reset(seed=0)
        with pytest.raises(RuntimeError, match="reset"):
            env.step("<answer>A</answer>")
        env.reset(seed=1)
        obs, reward, terminated, truncated, info = env.step("<code>\n```python\nprint(image.size)\n```\n</code>")
        assert obs["text"].strip() == "(64, 48)"
        obs, reward, terminated, truncated, info = env.step("<answer>\\boxed{A}</answer>")
        assert terminated and info["correct"] is True
    finally:
        env.close()
