"""How many visual tokens a Qwen2.5-VL-style model pays for an image or a whole video.

The rules follow ``qwen-vl-utils`` (``src/qwen_vl_utils/vision_process.py``), read in the
QwenLM/Qwen2-VL repository and in a Qwen2.5-VL-era copy of it (the 0.0.1x layout with
``smart_nframes``), and cross-checked against the QwenLM/Qwen3-VL copy; the constants below
are the Qwen2.5-VL values stated there:

- images: ``IMAGE_FACTOR = 28``, ``MIN_PIXELS = 4*28*28``, ``MAX_PIXELS = 16384*28*28``,
  ``MAX_RATIO = 200``;
- video: ``VIDEO_MIN_PIXELS = 128*28*28``, ``VIDEO_MAX_PIXELS = 768*28*28``,
  ``FRAME_FACTOR = 2``, ``FPS = 2.0``, ``FPS_MIN_FRAMES = 4``, ``FPS_MAX_FRAMES = 768``,
  ``VIDEO_TOTAL_PIXELS = int(128000*28*28*0.9)`` (overridable there by an environment
  variable; the oldest Qwen2-VL copy used ``24576*28*28``).

A token is one 28x28 cell: the vision encoder cuts 14x14 patches and merges 2x2 of them.
For video, two consecutive frames share one temporal patch, so a clip of ``n`` sampled
frames costs ``n/2 * (h/28) * (w/28)`` tokens.

The frame count uses the newer ``smart_nframes`` rule (clamp, then FLOOR to an even
number); the oldest Qwen2-VL copy rounded to the nearest even number instead. The two
differ only when ``duration * fps`` lands on an odd value. Python's ``round`` (half to
even) is used for ``round_by_factor``, as in the reference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "FPS",
    "FPS_MAX_FRAMES",
    "FPS_MIN_FRAMES",
    "FRAME_FACTOR",
    "IMAGE_FACTOR",
    "MAX_PIXELS",
    "MAX_RATIO",
    "MIN_PIXELS",
    "VIDEO_MAX_PIXELS",
    "VIDEO_MIN_PIXELS",
    "VIDEO_TOTAL_PIXELS",
    "VideoTokenEstimate",
    "VisualTokenCounter",
    "image_tokens",
    "smart_nframes",
    "smart_resize",
    "video_tokens",
]

IMAGE_FACTOR = 28
MIN_PIXELS = 4 * 28 * 28  # 3,136
MAX_PIXELS = 16384 * 28 * 28  # 12,845,056
MAX_RATIO = 200

VIDEO_MIN_PIXELS = 128 * 28 * 28  # 100,352
VIDEO_MAX_PIXELS = 768 * 28 * 28  # 602,112
VIDEO_TOTAL_PIXELS = int(128000 * 28 * 28 * 0.9)  # 90,316,800
FRAME_FACTOR = 2
FPS = 2.0
FPS_MIN_FRAMES = 4
FPS_MAX_FRAMES = 768


def _round_to(x: float, factor: int) -> int:
    return round(x / factor) * factor


def _ceil_to(x: float, factor: int) -> int:
    return math.ceil(x / factor) * factor


def _floor_to(x: float, factor: int) -> int:
    return math.floor(x / factor) * factor


def smart_resize(
    height: int,
    width: int,
    factor: int = IMAGE_FACTOR,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    max_ratio: float = MAX_RATIO,
) -> tuple[int, int]:
    """The (height, width) a Qwen2.5-VL processor resizes an image to.

    Each side is rounded to the nearest multiple of ``factor`` (at least ``factor``). If the
    area then exceeds ``max_pixels`` both sides are scaled by sqrt(h*w/max_pixels) and
    floored to multiples; if it is below ``min_pixels`` they are scaled up and ceiled.
    Raises ValueError for non-positive sizes or an aspect ratio above ``max_ratio``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels ({min_pixels}) > max_pixels ({max_pixels})")
    ratio = max(height, width) / min(height, width)
    if ratio > max_ratio:
        raise ValueError(f"aspect ratio must be at most {max_ratio}, got {ratio:.1f}")
    h = max(factor, _round_to(height, factor))
    w = max(factor, _round_to(width, factor))
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, _floor_to(height / beta, factor))
        w = max(factor, _floor_to(width / beta, factor))
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = _ceil_to(height * beta, factor)
        w = _ceil_to(width * beta, factor)
    return h, w


def image_tokens(
    width: int,
    height: int,
    *,
    min_pixels: int = MIN_PIXELS,
    max_pixels: int = MAX_PIXELS,
    factor: int = IMAGE_FACTOR,
) -> int:
    """Visual tokens for one image of ``width`` x ``height`` pixels: (h/28)*(w/28) after
    :func:`smart_resize` (a 640x480 image becomes 644x476, i.e. 23*17 = 391 tokens)."""
    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels)
    return (h // factor) * (w // factor)


def smart_nframes(
    num_frames: int,
    fps: float,
    *,
    sample_fps: float = FPS,
    min_frames: int = FPS_MIN_FRAMES,
    max_frames: int = FPS_MAX_FRAMES,
    frame_factor: int = FRAME_FACTOR,
) -> int:
    """Frames sampled from a ``num_frames``-frame video at ``fps`` when reading at ``sample_fps``.

    duration*sample_fps clamped to [min_frames (ceiled to even), min(max_frames,
    num_frames) (floored to even)] and to ``num_frames``, then floored to a multiple of
    ``frame_factor``. Raises ValueError when fewer than ``frame_factor`` frames result.
    """
    if num_frames <= 0 or fps <= 0:
        raise ValueError(f"need num_frames > 0 and fps > 0, got {num_frames}, {fps}")
    lo = _ceil_to(min_frames, frame_factor)
    hi = _floor_to(min(max_frames, num_frames), frame_factor)
    n = num_frames / fps * sample_fps
    n = min(max(n, lo), hi, num_frames)
    n = _floor_to(n, frame_factor)
    if not frame_factor <= n <= num_frames:
        raise ValueError(
            f"a {num_frames}-frame video gives {n} sampled frames; need at least {frame_factor}"
        )
    return int(n)


@dataclass(frozen=True)
class VideoTokenEstimate:
    """Cost of ingesting a whole video: frames sampled, per-frame resized size, tokens."""

    sampled_frames: int
    frame_height: int
    frame_width: int
    tokens: int


def video_tokens(
    num_frames: int,
    fps: float,
    width: int,
    height: int,
    *,
    sample_fps: float = FPS,
    min_frames: int = FPS_MIN_FRAMES,
    max_frames: int = FPS_MAX_FRAMES,
    min_pixels: int = VIDEO_MIN_PIXELS,
    max_pixels: int = VIDEO_MAX_PIXELS,
    total_pixels: int = VIDEO_TOTAL_PIXELS,
    factor: int = IMAGE_FACTOR,
    frame_factor: int = FRAME_FACTOR,
) -> VideoTokenEstimate:
    """Tokens a Qwen2.5-VL model pays to ingest a whole video the standard way.

    n = :func:`smart_nframes`; per-frame pixel budget
    ``max(min(max_pixels, total_pixels / n * frame_factor), int(min_pixels * 1.05))``;
    each frame is :func:`smart_resize`-d to that budget; tokens = n/frame_factor temporal
    patches x (h/28) x (w/28).
    """
    n = smart_nframes(
        num_frames,
        fps,
        sample_fps=sample_fps,
        min_frames=min_frames,
        max_frames=max_frames,
        frame_factor=frame_factor,
    )
    budget = max(min(max_pixels, total_pixels / n * frame_factor), int(min_pixels * 1.05))
    h, w = smart_resize(height, width, factor=factor, min_pixels=min_pixels, max_pixels=budget)
    tokens = (n // frame_factor) * (h // factor) * (w // factor)
    return VideoTokenEstimate(sampled_frames=n, frame_height=h, frame_width=w, tokens=tokens)


@dataclass(frozen=True)
class VisualTokenCounter:
    """Token-cost model for images and videos; the defaults are Qwen2.5-VL's.

    Environments take one of these so a caller can price another model (e.g. a larger
    ``max_pixels``, or ``factor=32`` for a 16-px-patch model).
    """

    factor: int = IMAGE_FACTOR
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    video_min_pixels: int = VIDEO_MIN_PIXELS
    video_max_pixels: int = VIDEO_MAX_PIXELS
    video_total_pixels: int = VIDEO_TOTAL_PIXELS
    frame_factor: int = FRAME_FACTOR
    sample_fps: float = FPS
    min_frames: int = FPS_MIN_FRAMES
    max_frames: int = FPS_MAX_FRAMES

    def resize(self, width: int, height: int) -> tuple[int, int]:
        """The (width, height) an image of this size is resized to."""
        h, w = smart_resize(
            height,
            width,
            factor=self.factor,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
        )
        return w, h

    def image(self, width: int, height: int) -> int:
        """Tokens for one image shown to the model."""
        return image_tokens(
            width,
            height,
            min_pixels=self.min_pixels,
            max_pixels=self.max_pixels,
            factor=self.factor,
        )

    def video(self, num_frames: int, fps: float, width: int, height: int) -> VideoTokenEstimate:
        """Cost of ingesting a whole ``num_frames``-frame video at ``fps``."""
        return video_tokens(
            num_frames,
            fps,
            width,
            height,
            sample_fps=self.sample_fps,
            min_frames=self.min_frames,
            max_frames=self.max_frames,
            min_pixels=self.video_min_pixels,
            max_pixels=self.video_max_pixels,
            total_pixels=self.video_total_pixels,
            factor=self.factor,
            frame_factor=self.frame_factor,
        )
