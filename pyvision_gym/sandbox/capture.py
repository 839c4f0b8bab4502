"""What agent code prints and shows: a bounded stdout and the collector of displayed images.

Heavy libraries are imported inside the methods on purpose: this module is imported by the
zygote before it preloads them, and only the episode process ever draws.
"""

from __future__ import annotations

import io
from typing import Any


class BoundedWriter(io.TextIOBase):
    """A text sink that keeps the first ``limit`` characters and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        if not isinstance(s, str):
            raise TypeError(f"write() argument must be str, not {type(s).__name__}")
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(s[:room])
            self.kept += min(room, len(s))
        self.dropped += max(0, len(s) - max(room, 0))
        return len(s)

    def getvalue(self) -> str:
        return "".join(self.parts)


# ============================================================================================
# images shown by agent code
# ============================================================================================
class Display:
    """Collects the images a call shows: ``plt.show()``, ``fig.show()``, ``display(x)``."""

    def __init__(self, max_images: int, max_pixels: int) -> None:
        self.max_images = max_images
        self.max_pixels = max_pixels
        self.images: list[Any] = []
        self.notes: list[str] = []
        self.skipped = 0

    def reset(self) -> None:
        self.images, self.notes, self.skipped = [], [], 0

    def emit(self, arr: Any) -> None:
        import numpy as np
        from PIL import Image

        if len(self.images) >= self.max_images:
            self.skipped += 1
            return
        h, w = arr.shape[:2]
        if h * w > self.max_pixels:
            scale = (self.max_pixels / (h * w)) ** 0.5
            nw, nh = max(1, int(w * scale)), max(1, int(h * scale))
            arr = np.asarray(Image.fromarray(arr).resize((nw, nh), Image.Resampling.BILINEAR))
            self.notes.append(f"[an image of {w}x{h} was shown downscaled to {nw}x{nh}]")
        self.images.append(np.ascontiguousarray(arr, dtype=np.uint8))

    def figure(self, fig: Any) -> None:
        import numpy as np
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        canvas.draw()
        self.emit(np.asarray(canvas.buffer_rgba())[..., :3].copy())

    def __call__(self, *objs: Any) -> None:
        for obj in objs:
            self.show_object(obj)

    def show_object(self, obj: Any) -> None:
        import numpy as np
        from matplotlib.axes import Axes
        from matplotlib.figure import Figure
        from PIL import Image

        if isinstance(obj, Image.Image):
            self.emit(np.asarray(obj.convert("RGB")))
        elif isinstance(obj, Figure):
            self.figure(obj)
            import matplotlib.pyplot as plt

            plt.close(obj)
        elif isinstance(obj, Axes):
            self.show_object(obj.figure)
        elif isinstance(obj, np.ndarray):
            for frame in _as_rgb_frames(obj):
                self.emit(frame)
        elif isinstance(obj, (list, tuple)):
            for item in obj:
                self.show_object(item)
        else:
            print(repr(obj))

    def plt_show(self, *args: Any, **kwargs: Any) -> None:
        import matplotlib.pyplot as plt

        for num in plt.get_fignums():
            self.figure(plt.figure(num))
        plt.close("all")


def _as_rgb_frames(arr: Any) -> list[Any]:
    """Turn an array the agent displays into H×W×3 uint8 frames (4-D arrays are frame stacks)."""
    import numpy as np

    a = np.asarray(arr)
    if a.ndim == 4:
        return [f for frame in a for f in _as_rgb_frames(frame)]
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        a = np.stack([a] * 3, axis=-1)
    if a.ndim != 3 or a.shape[-1] not in (3, 4) or 0 in a.shape:
        raise ValueError(f"display() needs an H×W, H×W×3 or H×W×4 image array, got shape {a.shape}")
    a = a[..., :3]
    if a.dtype == np.uint8:
        return [a]
    if a.dtype == bool:
        return [a.astype(np.uint8) * 255]
    if np.issubdtype(a.dtype, np.floating):
        finite = np.nan_to_num(a.astype(np.float64))
        if finite.max(initial=0) <= 1.0:
            finite = finite * 255.0
        return [np.clip(finite, 0, 255).astype(np.uint8)]
    return [np.clip(a, 0, 255).astype(np.uint8)]
