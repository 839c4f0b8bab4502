"""Shared fixtures: small real media made on the fly (no downloads)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from pyvision_gym.agents.tiny_model import build_tiny_qwen25vl


def write_test_video(path: Path, frames: int = 48, size: tuple[int, int] = (96, 64), fps: int = 12) -> Path:
    """A real H.264 mp4: frame i has red channel 5*i and a white bar at x = 2*i."""
    w, h = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"g": "8", "crf": "10"}
        for i in range(frames):
            a = np.zeros((h, w, 3), np.uint8)
            a[..., 0] = (5 * i) % 256
            a[h // 3 : 2 * h // 3, (2 * i) % (w - 6) : (2 * i) % (w - 6) + 6] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(a, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def test_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_video(tmp_path_factory.mktemp("media") / "clip.mp4")


@pytest.fixture(scope="session")
def big_image() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 255, size=(1500, 2000, 3), dtype=np.uint8))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny random-weight Qwen2.5-VL, built once per session (tests must not modify it)."""
    return build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny") / "tiny-qwen25vl", seed=0)
