"""The three designs the runtime benchmark times side by side (see ``runtime_bench``).

``FloorDesign`` runs code in this process, ``RuntimeDesign`` in the sandboxed runtime and
``NaiveDesign`` in a fresh interpreter per call.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
import pickle
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

from pyvision_gym.runtime import Runtime
from pyvision_gym.sandbox.video import VideoHandle

IMAGE_SIZE = (2000, 1500)  # (width, height) of the scenario-(b) input image
FIGURE_SIZE = (640, 480)  # matplotlib's default 6.4x4.8 in at 100 dpi: what plt.show() renders
VIDEO_FRAMES, VIDEO_SIZE, VIDEO_FPS, VIDEO_GOP = 300, (320, 240), 30, 12

CROP_ZOOM_SHOW = (
    "crop = image.crop((800, 600, 1200, 900)); zoom = crop.resize((800, 600)); "
    "plt.imshow(zoom); plt.axis('off'); plt.show()"
)


class BenchError(RuntimeError):
    """A design returned something other than what the scenario must produce."""


@dataclass(frozen=True)
class Target:
    """A performance target on the runtime design of one scenario."""

    text: str
    metric: Literal["runtime_median_ms", "runtime_over_floor_median"]
    threshold: float


@dataclass(frozen=True)
class Scenario:
    """One thing an environment asks of its runtime, and what it must return."""

    key: str
    label: str
    kind: Literal["exec", "reset"]
    inputs: Literal["none", "image", "video"]
    code: Callable[[int], str] | None = None  # call index -> source (exec scenarios)
    output: str | None = None  # expected stdout, when checked
    image_sizes: tuple[tuple[int, int], ...] = ()  # expected (width, height) of each shown image
    target: Target | None = None


@dataclass
class Inputs:
    """The scenario inputs, in memory and on disk (the naive design loads the files)."""

    image: Image.Image
    image_npy: Path
    video: Path


# ============================================================================================
# designs
# ============================================================================================
@dataclass
class Outcome:
    """What one call returned, checked after timing."""

    output: str = ""
    images: list[np.ndarray] = field(default_factory=list)
    names: list[str] | None = None  # names in a fresh namespace (reset scenarios)
    error: str | None = None
    detail: str = ""  # diagnostics shown if the check fails (the naive process's stderr)


class Design(Protocol):
    name: str

    def prepare(self, sc: Scenario) -> None: ...

    def call(self, sc: Scenario, i: int) -> Outcome: ...

    def close(self) -> None: ...


class Capture:
    """Image capture of the floor and naive designs: ``plt.show()`` and ``display(x)`` to RGB arrays.

    The naive design runs this class's source (``inspect.getsource``) in its fresh process, so
    both capture exactly alike; it mirrors what the runtime worker's ``Display`` does.
    """

    def __init__(self) -> None:
        self.images: list[np.ndarray] = []

    def show(self, *args: object, **kwargs: object) -> None:
        for num in plt.get_fignums():
            fig = plt.figure(num)
            canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
            canvas.draw()
            self.images.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
        plt.close("all")

    def display(self, *objs: object) -> None:
        for obj in objs:
            if isinstance(obj, Image.Image):
                self.images.append(np.asarray(obj.convert("RGB")))
            else:
                self.images.append(np.ascontiguousarray(np.asarray(obj)[..., :3], dtype=np.uint8))

    def namespace(self) -> dict[str, object]:
        plt.show = self.show
        return {"np": np, "plt": plt, "Image": Image, "display": self.display}


def _public(ns: dict[str, Any]) -> list[str]:
    return sorted(n for n in ns if not n.startswith("_"))


class FloorDesign:
    """Plain in-process ``compile`` + ``exec``: the cost of the work itself."""

    name = "floor"

    def __init__(self, inputs: Inputs) -> None:
        plt.switch_backend("Agg")
        self.inputs = inputs
        self._video_cls = VideoHandle
        self._saved_show = plt.show
        self.cap = Capture()
        self.ns: dict[str, Any] = {}

    def _fresh(self, inputs: str) -> dict[str, Any]:
        self.cap = Capture()
        ns = self.cap.namespace()
        if inputs == "image":
            ns["image"] = self.inputs.image
        elif inputs == "video":
            ns["video"] = self._video_cls(str(self.inputs.video))
        return ns

    def prepare(self, sc: Scenario) -> None:
        self.ns = self._fresh(sc.inputs)

    def call(self, sc: Scenario, i: int) -> Outcome:
        if sc.kind == "reset":
            self.ns = self._fresh(sc.inputs)
            return Outcome(names=_public(self.ns))
        assert sc.code is not None
        self.cap.images = []
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(sc.code(i), f"<call {i}>", "exec"), self.ns)
        return Outcome(out.getvalue(), self.cap.images)

    def close(self) -> None:
        plt.show = self._saved_show
        plt.close("all")


class RuntimeDesign:
    """``pyvision_gym.runtime.Runtime``: one persistent sandboxed worker for the whole run."""

    name = "runtime"

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.rt = Runtime()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            self.rt.reset()
        self.cold_start_ms = (time.perf_counter() - t0) * 1e3
        self.warnings = [str(w.message) for w in caught]

    def _reset(self, inputs: str) -> None:
        if inputs == "image":
            self.rt.reset(images={"image": self.inputs.image})
        elif inputs == "video":
            self.rt.reset(videos={"video": self.inputs.video})
        else:
            self.rt.reset()

    def prepare(self, sc: Scenario) -> None:
        self._reset(sc.inputs)

    def call(self, sc: Scenario, i: int) -> Outcome:
        if sc.kind == "reset":
            self._reset(sc.inputs)
            return Outcome()
        assert sc.code is not None
        r = self.rt.run(sc.code(i))
        return Outcome(r.output, r.images, error=r.error)

    def verify_reset(self, sc: Scenario) -> None:
        """Check, untimed, that the episode started last holds exactly the scenario's inputs."""
        r = self.rt.run("print(image.size)")
        if sc.inputs == "image" and r.output != f"{IMAGE_SIZE}\n":
            raise BenchError(f"{sc.key} / runtime: the new episode has no image of size {IMAGE_SIZE}: {r.text()}")
        if sc.inputs == "none" and r.error_type != "NameError":
            raise BenchError(f"{sc.key} / runtime: the new episode is not empty: {r.text()}")

    def close(self) -> None:
        self.rt.close()


_NAIVE_HEAD = """\
from __future__ import annotations
import contextlib, io, os, pickle, sys
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
plt.switch_backend("Agg")  # resolve the backend before Capture replaces plt.show
from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image
"""

_NAIVE_MAIN = """
code, image_npy, video_path = sys.argv[1:4]
cap = Capture()
ns = cap.namespace()
if image_npy:
    ns["image"] = Image.fromarray(np.load(image_npy))
if video_path:
    from pyvision_gym.sandbox.video import VideoHandle
    ns["video"] = VideoHandle(video_path)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    exec(compile(code, "<call>", "exec"), ns)
names = sorted(n for n in ns if not n.startswith("_"))
sys.stdout.buffer.write(pickle.dumps({"output": out.getvalue(), "images": cap.images, "names": names}))
sys.stdout.buffer.flush()
os._exit(0)  # the caller has its result: skip interpreter teardown (naive stays a lower bound)
"""


class NaiveDesign:
    """A fresh Python process per call: interpreter start, imports, input loading, then the code."""

    name = "naive"

    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs
        self.script = _NAIVE_HEAD + inspect.getsource(Capture) + _NAIVE_MAIN
        # the same single-threaded math libraries as the runtime worker
        self.env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")

    def prepare(self, sc: Scenario) -> None:
        pass

    def call(self, sc: Scenario, i: int) -> Outcome:
        code = sc.code(i) if sc.code is not None else ""
        image = str(self.inputs.image_npy) if sc.inputs == "image" else ""
        video = str(self.inputs.video) if sc.inputs == "video" else ""
        proc = subprocess.run(
            [sys.executable, "-c", self.script, code, image, video],
            capture_output=True, env=self.env, check=False,
        )
        if proc.returncode != 0:
            return Outcome(error=f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
        res = pickle.loads(proc.stdout)  # our own child's output
        return Outcome(res["output"], res["images"], names=res["names"], detail=proc.stderr.decode(errors="replace")[-2000:])

    def close(self) -> None:
        pass


# ============================================================================================
# measuring
# ============================================================================================
