"""Shared pieces of the synthetic video families: palette, sprites, frame drawing, H.264 encoding.

Frames are plain ``H×W×3`` uint8 numpy arrays drawn with vectorised slicing; videos are
written with PyAV/libx264 (single-threaded, so the bytes are reproducible) to a temporary
name and moved into place atomically, so concurrent generators never see a partial file.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

# Bump when any generator changes what it draws or asks: cached files carry it in their name.
GENERATOR_VERSION = 1

FRAME_W, FRAME_H = 256, 192

# Saturated, hue-separated colours (hue in degrees: 0, 31, 54, 128, 185, 228, 302) that
# survive yuv420 chroma subsampling; no two are closer than ~23 degrees of hue.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (230, 30, 30),
    "orange": (245, 135, 20),
    "yellow": (240, 220, 30),
    "green": (40, 185, 60),
    "cyan": (30, 200, 215),
    "blue": (40, 80, 235),
    "magenta": (215, 40, 210),
}
COLOR_NAMES: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("square", "circle", "triangle")

# (fps choices, duration range in seconds) per difficulty.
TIMING: dict[int, tuple[tuple[int, ...], tuple[float, float]]] = {
    0: ((8, 10, 12), (6.0, 14.0)),
    1: ((5, 6), (32.0, 58.0)),
    2: ((4,), (125.0, 235.0)),
}

Item = tuple[str, int, tuple[int, int, int], int, int]  # (shape, size, rgb, x0, y0)


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


@lru_cache(maxsize=None)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``size×size`` mask of a square, disc, upward triangle or ring (lamp outline)."""
    c = (size - 1) / 2.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    if shape == "square":
        mask = np.ones((size, size), dtype=bool)
    elif shape == "circle":
        mask = (xx - c) ** 2 + (yy - c) ** 2 <= (size / 2.0) ** 2
    elif shape == "triangle":
        mask = np.abs(xx - c) <= (yy + 1.0) / size * (size / 2.0)
    elif shape == "ring":
        r2 = (xx - c) ** 2 + (yy - c) ** 2
        mask = (r2 <= (size / 2.0) ** 2) & (r2 >= (size / 2.0 - 2.0) ** 2)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    mask.setflags(write=False)
    return mask


def paste(frame: np.ndarray, mask: np.ndarray, color: Sequence[int], x0: int, y0: int) -> None:
    """Paint ``color`` where ``mask`` is set, mask's top-left corner at (x0, y0); clipped."""
    h, w = mask.shape
    fh, fw = frame.shape[:2]
    ax0, ay0, ax1, ay1 = max(x0, 0), max(y0, 0), min(x0 + w, fw), min(y0 + h, fh)
    if ax0 >= ax1 or ay0 >= ay1:
        return
    sub = mask[ay0 - y0 : ay1 - y0, ax0 - x0 : ax1 - x0]
    frame[ay0:ay1, ax0:ax1][sub] = color


def fill_rect(frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Sequence[int]) -> None:
    """Fill the half-open box [x0, x1) × [y0, y1), clipped to the frame."""
    fh, fw = frame.shape[:2]
    frame[max(y0, 0) : min(y1, fh), max(x0, 0) : min(x1, fw)] = color


def outline_rect(
    frame: np.ndarray, x0: int, y0: int, x1: int, y1: int, color: Sequence[int], width: int = 2
) -> None:
    """A ``width``-pixel outline drawn just outside the half-open box [x0, x1) × [y0, y1)."""
    fill_rect(frame, x0 - width, y0 - width, x1 + width, y0, color)
    fill_rect(frame, x0 - width, y1, x1 + width, y1 + width, color)
    fill_rect(frame, x0 - width, y0, x0, y1, color)
    fill_rect(frame, x1, y0, x1 + width, y1, color)


def render_items(
    num_frames: int, base: np.ndarray, items_at: Callable[[int], Sequence[Item]]
) -> Iterator[np.ndarray]:
    """Frames drawn from a per-frame list of items over ``base``.

    A frame whose item list equals the previous one is yielded as the *same* array, which
    lets :func:`write_mp4` skip redrawing and colour conversion; callers must not modify
    yielded arrays.
    """
    prev_key: tuple[Item, ...] | None = None
    frame = base
    for i in range(num_frames):
        key = tuple(items_at(i))
        if key != prev_key:
            frame = base.copy()
            for shape, size, rgb, x0, y0 in key:
                paste(frame, shape_mask(shape, size), rgb, x0, y0)
            prev_key = key
        yield frame


def video_file(cache_dir: Path, family: str, seed: int, difficulty: int) -> Path:
    """Cache location of one task's video; the name pins family, version, difficulty, seed."""
    return Path(cache_dir) / "video" / family / f"{family}-g{GENERATOR_VERSION}-d{difficulty}-s{seed}.mp4"


def write_mp4(
    path: Path, frames: Iterable[np.ndarray], fps: int, *, crf: int = 20, gop: int = 12
) -> int:
    """Encode RGB frames to an H.264 mp4 at ``path`` (atomically); returns the frame count.

    Single-threaded libx264 without B-frames and with a short GOP: byte-reproducible output
    and cheap random access. Consecutive frames that are the same array object are colour
    converted once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    count = 0
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=Fraction(fps))
            stream.pix_fmt = "yuv420p"
            stream.codec_context.thread_count = 1
            stream.options = {
                "crf": str(crf),
                "g": str(gop),
                "keyint_min": str(gop),
                "bf": "0",
                "preset": "veryfast",
                "threads": "1",
            }
            last_array: np.ndarray | None = None
            last_frame: av.VideoFrame | None = None
            for array in frames:
                if array is not last_array or last_frame is None:
                    if count == 0:
                        stream.height, stream.width = array.shape[:2]
                    rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")
                    last_frame = rgb.reformat(format="yuv420p")
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


# ---------------------------------------------------------------------------------------
# Expert code shared by the families (it runs in the restricted sandbox: no underscores).
# ---------------------------------------------------------------------------------------

EXPERT_PRELUDE = '''import numpy as np
from scipy import ndimage

# Hue (degrees) of the named colours; saturated pixels get the nearest one.
HUES = {"red": 0, "orange": 31, "yellow": 55, "green": 128, "cyan": 186, "blue": 228, "magenta": 302}
NAMES = list(HUES)
CENTRES = np.array([HUES[n] for n in NAMES], dtype=np.float32)


def color_labels(img, min_sat=70):
    """Index into NAMES of the nearest hue for saturated pixels, -1 elsewhere (frames or batches)."""
    f = np.asarray(img, dtype=np.float32)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    mx = f.max(axis=-1)
    sat = mx - f.min(axis=-1)
    d = np.maximum(sat, 1.0)
    hue = np.where(mx == r, ((g - b) / d) % 6.0, np.where(mx == g, (b - r) / d + 2.0, (r - g) / d + 4.0)) * 60.0
    dist = np.abs((hue[..., None] - CENTRES + 180.0) % 360.0 - 180.0)
    return np.where(sat >= min_sat, dist.argmin(axis=-1), -1)


def shape_of(mask):
    """Square, circle or upward triangle from a blob's cropped boolean mask."""
    h, w = mask.shape
    q = max(1, h // 4)
    top = mask[:q].sum(axis=1).mean()
    bottom = max(mask[-q:].sum(axis=1).mean(), 1.0)
    if top < 0.6 * bottom:
        return "triangle"
    k = max(2, min(h, w) // 6)
    corners = (mask[:k, :k].mean() + mask[:k, -k:].mean() + mask[-k:, :k].mean() + mask[-k:, -k:].mean()) / 4
    return "square" if corners > 0.5 else "circle"


def find_blobs(img, min_area=40):
    """Saturated connected regions: colour, shape, centre x/y, box (x0, y0, x1, y1), area."""
    lab = color_labels(img)
    found = []
    for k in np.unique(lab):
        if k < 0:
            continue
        clean = ndimage.binary_opening(lab == k, structure=np.ones((3, 3), dtype=bool))
        comp, n = ndimage.label(clean)
        boxes = ndimage.find_objects(comp)
        for j in range(n):
            ys, xs = boxes[j]
            mask = comp[ys, xs] == j + 1
            area = int(mask.sum())
            if area < min_area:
                continue
            found.append({
                "color": NAMES[int(k)], "shape": shape_of(mask),
                "x": (xs.start + xs.stop - 1) / 2, "y": (ys.start + ys.stop - 1) / 2,
                "box": (xs.start, ys.start, xs.stop, ys.stop), "area": area,
            })
    return found

'''
