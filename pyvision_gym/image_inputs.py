"""How an episode's input images reach the sandbox: raw pixels in a sealed memfd.

The host writes each image's raw pixels once into an anonymous memory file (``memfd``), seals
it against writing and passes its descriptor to the episode process, which maps it read-only
and builds the PIL image from the mapping: no socket copy, nothing re-sent when a worker is
replaced (the same sealed file is passed again). Where ``memfd_create`` is missing (macOS)
or ``RuntimeConfig(input_transport="socket")`` asks for it, the pixels travel as message
blobs instead (the previous design, kept for comparison in ``benchmarks/``).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .runtime_config import RuntimeInputError

MEMFD_AVAILABLE = hasattr(os, "memfd_create") and hasattr(fcntl, "F_ADD_SEALS")
_SIZE_SEALS = getattr(fcntl, "F_SEAL_SHRINK", 0) | getattr(fcntl, "F_SEAL_GROW", 0)
_SEAL_WRITE = getattr(fcntl, "F_SEAL_WRITE", 0)
_SEAL_FUTURE_WRITE = getattr(fcntl, "F_SEAL_FUTURE_WRITE", 0x0010)  # Linux >= 5.1; not in 3.11's fcntl
_SEAL_SEAL = getattr(fcntl, "F_SEAL_SEAL", 0)
_WRITE_SEAL_TRIES = (0.0, 0.005, 0.05)  # seconds to wait before each F_SEAL_WRITE attempt


@dataclass
class ImageInput:
    """One input image as raw pixels: in a sealed memfd (``fd``) or in memory (``data``)."""

    name: str
    mode: str
    size: tuple[int, int]
    fd: int | None = None
    data: Any = None  # bytes or a byte memoryview (socket transport)

    def spec(self, fd_index: int | None) -> dict[str, Any]:
        """The image's entry in the episode's ``init`` message."""
        entry: dict[str, Any] = {"name": self.name, "mode": self.mode, "size": list(self.size)}
        if fd_index is not None:
            entry["fd"] = fd_index
        return entry

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def raw_pixels(name: str, im: Image.Image | np.ndarray) -> tuple[str, tuple[int, int], Any]:
    """(mode, (width, height), raw pixel bytes) of a PIL image or an H×W[×3|4] uint8 array;
    a C-contiguous array is used as it is (a byte view, no copy)."""
    if isinstance(im, np.ndarray):
        if im.dtype != np.uint8 or im.ndim not in (2, 3) or (im.ndim == 3 and im.shape[2] not in (3, 4)):
            raise RuntimeInputError(f"image '{name}': arrays must be H×W or H×W×3/4 uint8, got {im.dtype} {im.shape}")
        mode = "L" if im.ndim == 2 else ("RGB" if im.shape[2] == 3 else "RGBA")
        return mode, (int(im.shape[1]), int(im.shape[0])), memoryview(np.ascontiguousarray(im)).cast("B")
    if not isinstance(im, Image.Image):
        raise RuntimeInputError(f"image '{name}': expected a PIL image or a numpy array, got {type(im).__name__}")
    if im.mode not in ("RGB", "RGBA", "L"):
        im = im.convert("RGB")
    return im.mode, im.size, im.tobytes()


def _seal(fd: int) -> None:
    """Seal ``fd`` against resizing and writing, then against further seals.

    ``F_SEAL_WRITE`` makes the kernel wait for transient references to the file's pages (a
    page just written may still sit in another CPU's LRU batch) and fail with ``EBUSY`` when
    they outlast its short wait: seen once in CI under load. We retry, and if the pages are
    still held we add ``F_SEAL_FUTURE_WRITE`` instead: it forbids every later ``write`` and
    writable mapping, and no writable mapping of this fresh file exists, so the sandbox sees
    the same read-only file.
    """
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SIZE_SEALS)
    for delay in _WRITE_SEAL_TRIES:
        time.sleep(delay)
        try:
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEAL_WRITE)
            break
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
    else:
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEAL_FUTURE_WRITE)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEAL_SEAL)


def _sealed_memfd(name: str, data: Any) -> int:
    view = memoryview(data)
    fd = os.memfd_create(f"pyvision-{name}", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        written = 0
        while written < len(view):
            written += os.write(fd, view[written:])
        _seal(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def prepare_images(images: dict[str, Image.Image | np.ndarray], transport: str) -> list[ImageInput]:
    """The episode's input images, ready to send with ``transport`` ("memfd" or "socket")."""
    out: list[ImageInput] = []
    try:
        for name, im in images.items():
            mode, size, data = raw_pixels(name, im)
            if transport == "memfd" and MEMFD_AVAILABLE:
                out.append(ImageInput(name, mode, size, fd=_sealed_memfd(name, data)))
            else:
                out.append(ImageInput(name, mode, size, data=data))
    except BaseException:
        for item in out:
            item.close()
        raise
    return out
