"""Drawing and encoding for the synthetic video families, and the video task assembly.

Scenes are described in RGB, but frames are drawn straight into yuv420p planes
(:class:`YuvImage`): sprites sit on even coordinates so their chroma lines up with the 2×2
subsampling grid, and no per-frame colour conversion is needed. Videos are written with
PyAV/libx264 (single-threaded, no B-frames, 12-frame GOP: byte-reproducible and cheap to
seek) to a temporary name and moved into place atomically, so concurrent generators never
see a partial file. :func:`video_task` writes a task's mp4 (unless cached) and builds its
``Task`` through :meth:`TaskFamily.make_task`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from ..base import AnswerType, Task, TaskFamily

# Bump when any generator changes what it draws or asks: cached files carry it in their name.
GENERATOR_VERSION = 1

FRAME_W, FRAME_H = 256, 192
RGB = tuple[int, int, int]

# Saturated, hue-separated colours (hue in degrees: 0, 31, 54, 128, 185, 228, 302) that
# survive yuv420 chroma subsampling; no two are closer than ~23 degrees of hue. The values
# pin the pixels of every video (and so the frozen suites).
VIDEO_PALETTE: dict[str, RGB] = {
    "red": (230, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 185, 60),
    "cyan": (30, 200, 215),
    "blue": (40, 80, 235),
    "magenta": (215, 40, 210),
}
VIDEO_COLOURS: tuple[str, ...] = tuple(VIDEO_PALETTE)
VIDEO_SHAPES: tuple[str, ...] = ("square", "circle", "triangle")
WHITE: RGB = (235, 235, 235)

# (fps choices, duration range in seconds) per difficulty.
TIMING: dict[int, tuple[tuple[int, ...], tuple[float, float]]] = {
    0: ((8, 10, 12), (6.0, 14.0)),
    1: ((4, 5), (32.0, 58.0)),
    2: ((3,), (122.0, 220.0)),
}

Item = tuple[str, int, int, tuple[int, int, int], int, int]  # (shape, w, h, rgb, x0, y0)


# -- scene layout ---------------------------------------------------------------------------
def pick_timing(rng: np.random.Generator, difficulty: int) -> tuple[int, int]:
    """(fps, number of frames) for a video at this difficulty."""
    fps_choices, (lo, hi) = TIMING[difficulty]
    fps = int(rng.choice(fps_choices))
    return fps, int(round(rng.uniform(lo, hi) * fps))


def background(rng: np.random.Generator, w: int = FRAME_W, h: int = FRAME_H) -> np.ndarray:
    """A dark, nearly grey backdrop (saturation well below any palette colour)."""
    level = int(rng.integers(30, 60))
    tint = rng.integers(-4, 5, size=3)
    frame = np.empty((h, w, 3), dtype=np.uint8)
    frame[:] = np.clip(level + tint, 0, 255).astype(np.uint8)
    return frame


def even(x: float) -> int:
    """Nearest even integer (sprites sit on the 2×2 chroma grid of yuv420)."""
    return int(2 * round(x / 2.0))


def item(shape: str, size: int, colour: str, x0: int, y0: int) -> Item:
    """A square-box sprite of one palette colour."""
    return (shape, size, size, VIDEO_PALETTE[colour], int(x0), int(y0))


def cell_origin(rng: np.random.Generator, cell: int, size: int) -> tuple[int, int]:
    """Top-left corner for a ``size`` sprite inside one of the 4×3 cells (64 px) of a frame."""
    col, row = cell % 4, cell // 4
    lo, hi = 4, 64 - size - 4
    return col * 64 + even(rng.uniform(lo, hi)), row * 64 + even(rng.uniform(lo, hi))


def intervals_mask(n: int, intervals: Iterable[tuple[int, int]]) -> np.ndarray:
    """Boolean per-frame mask from half-open frame intervals."""
    mask = np.zeros(n, dtype=bool)
    for a, b in intervals:
        mask[max(a, 0) : max(min(b, n), 0)] = True
    return mask


def bounce_path(
    rng: np.random.Generator,
    n: int,
    speed: float,
    lo: tuple[float, float],
    hi: tuple[float, float],
    start: tuple[float, float] | None = None,
) -> np.ndarray:
    """``n×2`` float positions of a point moving at ``speed`` px/frame, bouncing inside a box."""
    p = np.array(
        start if start is not None else (rng.uniform(lo[0], hi[0]), rng.uniform(lo[1], hi[1]))
    )
    ang = rng.uniform(0, 2 * math.pi)
    v = speed * np.array([math.cos(ang), math.sin(ang)])
    out = np.empty((n, 2))
    for i in range(n):
        out[i] = p
        q = p + v
        for a in range(2):
            if q[a] < lo[a] or q[a] > hi[a]:
                v[a] = -v[a]
        p = np.clip(p + v, lo, hi)
    return out


# -- pixels ---------------------------------------------------------------------------------
@cache
def shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    """Boolean ``h×w`` mask: square/rect, circle (ellipse), upward triangle, lamp ring, 2 px outline."""
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    if shape in ("square", "rect"):
        mask = np.ones((h, w), dtype=bool)
    elif shape == "circle":
        mask = ((xx - cx) / (w / 2.0)) ** 2 + ((yy - cy) / (h / 2.0)) ** 2 <= 1.0
    elif shape == "triangle":
        mask = np.abs(xx - cx) <= (yy + 1.0) / h * (w / 2.0)
    elif shape == "ring":
        r2 = (xx - cx) ** 2 + (yy - cy) ** 2
        mask = (r2 <= (w / 2.0) ** 2) & (r2 >= (w / 2.0 - 3.0) ** 2)
    elif shape == "outline":
        mask = np.ones((h, w), dtype=bool)
        mask[2:-2, 2:-2] = False
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask.setflags(write=False)
    return mask


def paste(frame: np.ndarray, mask: np.ndarray, colour: Sequence[int], x0: int, y0: int) -> None:
    """Paint ``colour`` where ``mask`` is set, mask's top-left corner at (x0, y0); clipped."""
    h, w = mask.shape
    fh, fw = frame.shape[:2]
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + w, fw), min(y0 + h, fh)
    if ax0 >= ax1 or ay0 >= ay1:
        return
    sub = mask[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
    frame[ay0:ay1, ax0:ax1][sub] = colour


def rgb_to_yuv(rgb: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BT.601 limited-range Y, U (Cb), V (Cr) as floats: the conversion decoders undo."""
    f = np.asarray(rgb, dtype=np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0
    u = 128.0 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255.0
    v = 128.0 + (112.0 * r - 93.786 * g - 18.214 * b) / 255.0
    return y, u, v


def _to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@cache
def yuv_of(colour: tuple[int, ...]) -> tuple[int, int, int]:
    """Rounded BT.601 limited-range (Y, U, V) of one RGB colour."""
    y, u, v = rgb_to_yuv(colour)
    return int(round(float(y))), int(round(float(u))), int(round(float(v)))


@lru_cache(maxsize=4096)
def block_counts(shape: str, w: int, h: int, px: int, py: int) -> np.ndarray:
    """Pixels of the sprite in each 2×2 chroma block when its corner has parity (px, py)."""
    grid = np.zeros((h + py + (h + py) % 2, w + px + (w + px) % 2), dtype=np.int16)
    grid[py : py + h, px : px + w] = shape_mask(shape, w, h)
    counts = grid.reshape(grid.shape[0] // 2, 2, grid.shape[1] // 2, 2).sum(axis=(1, 3))
    counts.setflags(write=False)
    return counts


class YuvImage:
    """A yuv420p picture (full-resolution luma, 2×2-subsampled chroma) drawn on directly.

    Drawing in YUV skips a colour conversion per frame: sprites write their luma exactly and
    blend their chroma into each 2×2 block by the fraction of the block they cover (what an
    area-averaging RGB->yuv420 conversion would give). Width and height must be even.
    """

    def __init__(self, y: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
        self.y, self.u, self.v = y, u, v

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> YuvImage:
        h, w = rgb.shape[:2]
        if h % 2 or w % 2:
            raise ValueError("yuv420 needs an even width and height")
        y, u, v = rgb_to_yuv(rgb)
        u = u.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        v = v.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        return cls(_to_u8(y), _to_u8(u), _to_u8(v))

    def copy(self) -> YuvImage:
        return YuvImage(self.y.copy(), self.u.copy(), self.v.copy())

    def crop(self, x0: int, y0: int, w: int, h: int) -> YuvImage:
        """A view of the box at (x0, y0) (even) of size w×h."""
        if x0 % 2 or y0 % 2:
            raise ValueError("yuv420 crops must start on even coordinates")
        cx, cy = x0 // 2, y0 // 2
        return YuvImage(
            self.y[y0 : y0 + h, x0 : x0 + w],
            self.u[cy : cy + h // 2, cx : cx + w // 2],
            self.v[cy : cy + h // 2, cx : cx + w // 2],
        )

    def paste(self, mask: np.ndarray, colour: Sequence[int], x0: int, y0: int) -> None:
        """Paint ``colour`` where ``mask`` is set, mask's top-left at (x0, y0); clipped."""
        fh, fw = self.y.shape
        h, w = mask.shape
        ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + w, fw), min(y0 + h, fh)
        if ax0 >= ax1 or ay0 >= ay1:
            return
        sub = mask[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
        grid = np.zeros((ay1 - ay0 + (ay0 & 1) + 1, ax1 - ax0 + (ax0 & 1) + 1), dtype=np.int16)
        grid[ay0 & 1 : (ay0 & 1) + ay1 - ay0, ax0 & 1 : (ax0 & 1) + ax1 - ax0] = sub
        hb, wb = grid.shape[0] // 2, grid.shape[1] // 2
        counts = grid[: 2 * hb, : 2 * wb].reshape(hb, 2, wb, 2).sum(axis=(1, 3))
        self._paint(sub, counts, colour, ax0, ay0)

    def paste_sprite(
        self, shape: str, w: int, h: int, colour: Sequence[int], x0: int, y0: int
    ) -> None:
        """:meth:`paste` of ``shape_mask(shape, w, h)``, with cached chroma coverage when unclipped."""
        fh, fw = self.y.shape
        if x0 < 0 or y0 < 0 or x0 + w > fw or y0 + h > fh:
            self.paste(shape_mask(shape, w, h), colour, x0, y0)
            return
        self._paint(
            shape_mask(shape, w, h), block_counts(shape, w, h, x0 & 1, y0 & 1), colour, x0, y0
        )

    def _paint(
        self, mask: np.ndarray, counts: np.ndarray, colour: Sequence[int], x0: int, y0: int
    ) -> None:
        yc, uc, vc = yuv_of(tuple(int(c) for c in colour))
        h, w = mask.shape
        self.y[y0 : y0 + h, x0 : x0 + w][mask] = yc
        bx0, by0 = x0 // 2, y0 // 2
        k = counts[: self.u.shape[0] - by0, : self.u.shape[1] - bx0]
        for plane, c in ((self.u, uc), (self.v, vc)):
            region = plane[by0 : by0 + k.shape[0], bx0 : bx0 + k.shape[1]]
            region[:] = (region * (4 - k) + c * k + 2) // 4  # blend by covered pixels per block

    def packed(self) -> np.ndarray:
        """The ``(h * 3 / 2) × w`` uint8 layout of ``av.VideoFrame.from_ndarray(..., "yuv420p")``."""
        h, w = self.y.shape
        return np.concatenate([self.y.ravel(), self.u.ravel(), self.v.ravel()]).reshape(
            h * 3 // 2, w
        )


def render_items(
    num_frames: int, base: np.ndarray, items_at: Callable[[int], Sequence[Item]]
) -> Iterator[np.ndarray]:
    """Packed yuv420p frames drawn from a per-frame list of items over the RGB ``base``.

    A frame whose item list equals the previous one is yielded as the *same* array, which
    lets :func:`write_mp4` skip redrawing and conversion; callers must not modify yielded
    arrays.
    """
    canvas = YuvImage.from_rgb(base)
    prev_key: tuple[Item, ...] | None = None
    frame = canvas.packed()
    for i in range(num_frames):
        key = tuple(items_at(i))
        if key != prev_key:
            img = canvas.copy()
            for shape, w, h, rgb, x0, y0 in key:
                img.paste_sprite(shape, w, h, rgb, x0, y0)
            frame = img.packed()
            prev_key = key
        yield frame


# -- mp4 files ------------------------------------------------------------------------------
def video_file(cache_dir: Path, family: str, seed: int, difficulty: int, spec: str = "") -> Path:
    """Cache location of one task's video.

    The name pins family, generator version, difficulty and seed, plus a digest of ``spec``
    (the question, answer and metadata), so a stale file from a changed generator is never
    mistaken for this task's video.
    """
    digest = hashlib.sha1(spec.encode()).hexdigest()[:10]
    name = f"{family}-g{GENERATOR_VERSION}-d{difficulty}-s{seed}-{digest}.mp4"
    return Path(cache_dir) / "video" / family / name


def _open_stream(container: Any, fps: int, crf: int, gop: int) -> Any:
    stream = container.add_stream("libx264", rate=Fraction(fps))
    stream.pix_fmt = "yuv420p"
    stream.codec_context.thread_count = 1
    stream.options = {
        "crf": str(crf),
        "g": str(gop),
        "keyint_min": str(gop),
        "bf": "0",
        "preset": "ultrafast",
        "threads": "1",
    }
    return stream


def write_mp4(
    path: Path, frames: Iterable[np.ndarray], fps: int, *, crf: int = 20, gop: int = 12
) -> int:
    """Encode frames to an H.264 mp4 at ``path`` (atomically); returns the frame count.

    Frames are ``H×W×3`` RGB arrays or packed yuv420p arrays (``YuvImage.packed``).
    Single-threaded libx264 without B-frames and with a short GOP: byte-reproducible output
    and cheap random access. Consecutive frames that are the same array object are
    converted once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    count = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = _open_stream(container, fps, crf, gop)
            reformatter = VideoReformatter()  # keeps its swscale context between frames
            last_array: np.ndarray | None = None
            last_frame: av.VideoFrame | None = None
            for array in frames:
                if array is not last_array or last_frame is None:
                    packed = array.ndim == 2
                    if count == 0:
                        stream.width = array.shape[1]
                        stream.height = array.shape[0] * 2 // 3 if packed else array.shape[0]
                    data = np.ascontiguousarray(array)
                    if packed:
                        last_frame = av.VideoFrame.from_ndarray(data, format="yuv420p")
                    else:
                        rgb = av.VideoFrame.from_ndarray(data, format="rgb24")
                        last_frame = reformatter.reformat(rgb, format="yuv420p")
                    last_array = array
                last_frame.pts = count
                for packet in stream.encode(last_frame):
                    container.mux(packet)
                count += 1
            if count == 0:
                raise ValueError("no frames to encode")
            for packet in stream.encode(None):
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return count


def video_task(
    family: TaskFamily,
    seed: int,
    difficulty: int,
    cache_dir: Path,
    *,
    question: str,
    answer: str,
    answer_type: AnswerType,
    fps: int,
    num_frames: int,
    frames: Callable[[], Iterable[np.ndarray]],
    options: list[str] | None = None,
    tolerance: float = 0.0,
    metadata: dict[str, Any] | None = None,
    size: tuple[int, int] = (FRAME_W, FRAME_H),
) -> Task:
    """Write the video unless this exact task is cached, and build the family's ``Task``.

    ``frames()`` is called only when the file is missing; the metadata gains fps,
    num_frames, duration, width, height and generator_version (before the family's keys).
    """
    spec = json.dumps(
        [question, answer, options, metadata, fps, num_frames], sort_keys=True, default=str
    )
    path = video_file(Path(cache_dir), family.name, seed, difficulty, spec)
    if not path.exists():
        written = write_mp4(path, frames(), fps)
        if written != num_frames:
            raise RuntimeError(f"{family.name}: wrote {written} frames, expected {num_frames}")
    meta = {
        "fps": fps,
        "num_frames": num_frames,
        "duration": num_frames / fps,
        "width": size[0],
        "height": size[1],
        "generator_version": GENERATOR_VERSION,
        **(metadata or {}),
    }
    return family.make_task(
        seed, difficulty, question=question, answer=answer, answer_type=answer_type,
        options=options, tolerance=tolerance, video_path=str(path), metadata=meta,
    )
