"""The video handle that agent code sees as ``video``: lazy, read-only frame access via decord."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


class Frame(np.ndarray):
    """An H×W×3 uint8 frame. ``asnumpy()`` is kept for code written against decord's NDArray."""

    def asnumpy(self) -> np.ndarray:
        return np.asarray(self)


# Kept outside the class so no attribute path from agent code can reach it.
_SEALED = [False]


class VideoHandle:
    """Read-only access to one video file.

    Nothing is decoded until code asks for a frame. The handle exposes no path and no
    way to open another file: the reader is created from the file it was given once.
    """

    @staticmethod
    def seal() -> None:
        """Refuse to create further handles in this process (called before agent code runs)."""
        _SEALED[0] = True

    def __init__(self, source: str, num_threads: int = 1) -> None:
        if _SEALED[0]:
            raise PermissionError("video handles cannot be created by code in the runtime")
        self.__source = source
        self.__threads = num_threads
        self.__reader = None
        self.__frame_shape: tuple[int, int, int] | None = None

    def __reader_(self):
        if self.__reader is None:
            import decord

            try:
                self.__reader = decord.VideoReader(self.__source, ctx=decord.cpu(0), num_threads=self.__threads)
            except Exception as exc:  # decord raises its own DECORDError with a long C++ trace
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ValueError(f"the video could not be decoded: {first}") from None
        return self.__reader

    # -- metadata ---------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.__reader_())

    @property
    def num_frames(self) -> int:
        return len(self)

    @property
    def fps(self) -> float:
        return float(self.__reader_().get_avg_fps())

    def get_avg_fps(self) -> float:
        return self.fps

    @property
    def height(self) -> int:
        return int(self.__shape()[0])

    @property
    def width(self) -> int:
        return int(self.__shape()[1])

    @property
    def frame_size(self) -> tuple[int, int]:
        """(width, height) in pixels, like ``PIL.Image.size``."""
        return (self.width, self.height)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(frames, height, width, 3)."""
        h, w, c = self.__shape()
        return (len(self), int(h), int(w), int(c))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        fps = self.fps
        return len(self) / fps if fps > 0 else 0.0

    def __shape(self) -> tuple[int, int, int]:
        if self.__frame_shape is None:
            reader = self.__reader_()
            self.__frame_shape = tuple(int(d) for d in reader[0].shape)
            reader.seek(0)
        return self.__frame_shape

    # -- frames -----------------------------------------------------------------------------
    def __index(self, i) -> int:
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"frame index must be an integer, got {type(i).__name__}")
        n = len(self)
        j = int(i) + n if i < 0 else int(i)
        if not 0 <= j < n:
            raise IndexError(f"frame index {int(i)} out of range for a video of {n} frames")
        return j

    def __getitem__(self, i):
        if isinstance(i, slice):
            return self.get_batch(range(*i.indices(len(self))))
        frame = self.__reader_()[self.__index(i)].asnumpy()
        return frame.view(Frame)

    def get_batch(self, indices: Iterable[int]) -> Frame:
        """Frames at ``indices`` as an N×H×W×3 uint8 array (decoded in sorted order)."""
        idx = [self.__index(i) for i in indices]
        if not idx:
            h, w, c = self.__shape()
            return np.zeros((0, h, w, c), dtype=np.uint8).view(Frame)
        order = sorted(set(idx))
        batch = self.__reader_().get_batch(order).asnumpy()
        pos = {j: k for k, j in enumerate(order)}
        return batch[[pos[j] for j in idx]].view(Frame)

    def get_frame_timestamp(self, i: int) -> float:
        """Start time in seconds of frame ``i``."""
        return float(self.__reader_().get_frame_timestamp(self.__index(i))[0])

    def __iter__(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        try:
            return (
                f"<video: {len(self)} frames, {self.fps:.2f} fps, {self.duration:.1f} s, "
                f"{self.width}x{self.height}>"
            )
        except Exception:
            return "<video: unreadable>"
