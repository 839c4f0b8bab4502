"""Unit tests of the runtime: persistence, the language policy, limits, errors, inputs, outputs."""

from __future__ import annotations

import errno
import fcntl
import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyvision_gym import isolation
from pyvision_gym import runtime as runtime_mod
from pyvision_gym.runtime import Runtime
from pyvision_gym.runtime_config import RuntimeInputError


@pytest.fixture(scope="module")
def rt():
    with Runtime(timeout=5) as runtime:
        runtime.reset()
        yield runtime


def run_ok(rt: Runtime, code: str) -> str:
    r = rt.run(code)
    assert r.ok, r.error
    return r.output


# ----------------------------------------------------------------------------- persistence
def test_state_persists_across_calls(rt):
    rt.reset()
    run_ok(rt, "import math\nx = 41\ndef inc(v):\n    return v + 1\nclass Box:\n    def __init__(self, v):\n        self.v = v")
    assert run_ok(rt, "print(inc(x), math.sqrt(16), Box(3).v)").strip() == "42 4.0 3"
    # a figure drawn in one call is shown in the next
    run_ok(rt, "plt.plot([0, 1], [1, 0])")
    assert rt.run("plt.show()").image_sizes == [(640, 480)]


def test_new_episode_has_clean_namespace(rt):
    rt.reset()
    run_ok(rt, "secret = 123\nplt.plot([1, 2])")
    rt.reset()
    r = rt.run("print(secret)")
    assert r.error_type == "NameError" and "secret" in r.error
    assert rt.run("plt.show()").images == []  # figures do not leak into the next episode


def test_ordinary_vision_code_runs(rt):
    rt.reset()
    code = """
import numpy as np
from collections import Counter
a = np.zeros((6, 6), dtype=np.int64)
a[1:3, ::2] = 5
a[0] += 1
a[4:, 4:] *= 3
d = {}
for k in ['r', 'g', 'r']:
    d[k] = d.get(k, 0)
    d[k] += 1
class Acc:
    def __init__(self):
        self.total = 0
    def add(self, v):
        self.total += v
        return self
acc = Acc().add(2).add(3)
pairs = sorted(zip([3, 1, 2], 'abc'))
idx = [i for i, v in enumerate([4, 9, 2]) if v > 3]
squares = list(map(lambda v: v * v, range(4)))
print(a.sum(), d, acc.total, pairs, idx, min(squares), max(squares), sum(squares))
print(f"{acc.total:>4}|{3.14159:.2f}", "{0}-{k}".format(1, k='z'), "{a[0]}".format(a=[7]))
print(Counter('aab').most_common(1), any([0, 1]), all([1, 1]), abs(-2), round(2.567, 1))
"""
    out = run_ok(rt, code).splitlines()
    assert out[0] == "36 {'r': 2, 'g': 1} 5 [(1, 'b'), (2, 'c'), (3, 'a')] [0, 1] 0 9 14"
    assert out[1] == "   5|3.14 1-z 7"
    assert out[2] == "[('a', 2)] True True 2 2.6"


# ----------------------------------------------------------------------------- language policy
@pytest.mark.parametrize(
    "code",
    ["import numpy.linalg\nprint(numpy.linalg.norm([3, 4]))", "from PIL import Image, ImageDraw, ImageFilter\nprint('ok')",
     "import matplotlib.pyplot as plt2\nprint('ok')", "from scipy import ndimage\nprint(ndimage.label([[1, 0, 1]])[1])",
     "import numpy as np\nprint(np.random.default_rng(0).integers(10))", "import matplotlib\nmatplotlib.use('Agg')\nprint('ok')"],
)
def test_allowed_imports(rt, code):
    assert run_ok(rt, code).strip() != ""


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        ("import os", "import of 'os' is not allowed"),
        ("import subprocess", "import of 'subprocess' is not allowed"),
        ("from numpy import lib", "'from numpy import lib' is not allowed"),
        ("import numpy.lib.npyio", "import of 'numpy.lib.npyio' is not allowed"),
        ("from numpy import load", "'from numpy import load' is not allowed"),
        ("import numpy._core", "starting with \"_\""),
        ("from . import x", "Relative imports are not allowed"),
        ("from PIL import ImageShow", "module 'PIL.ImageShow'"),
        ("import PIL.Image as I\nI.os", "module 'os'"),
        ("import numpy as np\nnp.ctypeslib", "attribute 'ctypeslib' is not accessible"),
        ("import numpy as np\nnp.zeros(2).tofile('x')", "attribute 'tofile' is not accessible"),
        ("image2 = Image.new('RGB', (4, 4))\nimage2.save('x.png')", "attribute 'save' is not accessible"),
        ("plt.savefig('x.png')", "attribute 'savefig' is not accessible"),
        ("getattr(plt, 'imr' + 'ead')('/etc/passwd')", "attribute 'imread' is not accessible"),
        ("x = (i for i in [1])\nx.gi_frame", "gi_frame"),
        ("'{0.__class__}'.format(1)", "attribute '__class__' is not accessible"),
        ("str.format('{0.__class__}', 1)", "attribute '__class__' is not accessible"),
        ("'{x.__class__}'.format_map({'x': 1})", "attribute '__class__' is not accessible"),
        ("().__class__", "starts with \"_\""),
        ("type(1, (), {})", "positional argument"),
        ("matplotlib = __import__('matplotlib')", "starts with \"_\""),
        ("open('/etc/passwd')", "open() is not available"),
        ("import numpy as np\nnp.lib.npyio", "attribute 'lib' is not accessible"),
        ("import numpy as np\nnp.pi = 3", "modules cannot be modified"),
        ("import matplotlib\nmatplotlib.use('TkAgg')", "Agg backend only"),
        ("eval('1')", "Eval calls are not allowed"),
    ],
)
def test_policy_refuses(rt, code, needle):
    r = rt.run(code)
    assert not r.ok
    assert needle in r.error, r.error
    assert run_ok(rt, "print(1+1)").strip() == "2"


# ----------------------------------------------------------------------------- limits and errors
def test_timeout_kills_and_restarts(rt, big_image):
    rt.reset(images={"image": big_image})
    run_ok(rt, "kept = 1")
    r = rt.run("while True:\n    pass", timeout=1.5)
    assert r.error_type == "Timeout" and r.state_lost
    assert "1.5 s" in r.error and "lost" in r.error
    assert 1.4 < r.seconds < 5
    # the next call works, on a fresh namespace with the inputs loaded again
    assert rt.run("print(kept)").error_type == "NameError"
    assert run_ok(rt, "print(image.size)").strip() == "(2000, 1500)"


@pytest.mark.parametrize(
    ("code", "kind", "needle"),
    [
        ("raise SystemExit(3)", "SystemExit", "not allowed"),
        ("raise KeyboardInterrupt", "KeyboardInterrupt", "stopped"),
        ("x = bytearray(10**11)", "MemoryError", "ran out of memory"),
        ("def f(n):\n    return f(n + 1)\nf(0)", "RecursionError", "maximum recursion depth"),
    ],
)
def test_fatal_exceptions_become_errors_and_state_survives(rt, code, kind, needle):
    rt.reset()
    run_ok(rt, "survivor = 7")
    r = rt.run(code)
    assert r.error_type == kind and needle in r.error
    assert not r.state_lost
    assert run_ok(rt, "print(survivor)").strip() == "7"


def test_recursion_traceback_is_compressed(rt):
    r = rt.run("def f(n):\n    return f(n + 1)\nf(0)")
    assert "previous line repeated" in r.error
    assert len(r.error) < 2000


def test_dead_worker_cpu_limit():
    with Runtime(timeout=30, cpu_seconds=1) as rt:
        rt.reset()
        r = rt.run("n = 0\nwhile True:\n    n += 1")
        assert r.error_type == "WorkerDied" and r.state_lost
        assert "CPU-time limit" in r.error
        assert rt.run("print(1+1)").output.strip() == "2"


def test_dead_zygote_is_replaced():
    with Runtime(timeout=10) as rt:
        rt.reset()
        rt.run("a = 1")
        rt._proc.kill()  # the whole sandbox disappears under the runtime
        rt._proc.wait()
        r = rt.run("print(a)")
        assert r.error_type == "WorkerDied" and "restarted" in r.error and "lost" in r.error
        assert rt.run("print(1+1)").output.strip() == "2"


def test_output_truncated_with_marker():
    with Runtime(max_output_chars=100) as rt:
        rt.reset()
        r = rt.run("for i in range(1000):\n    print('x' * 9)")
        assert r.ok
        assert r.output.startswith("x" * 9 + "\n")
        assert "output truncated: 9900 more characters were dropped" in r.output
        assert len(r.output) < 200


def test_traceback_refers_to_agent_lines_only(rt):
    rt.reset()
    code = "a = 1\nb = 2\nimport numpy as np\nnp.zeros((2, 2)) @ np.zeros((3, 3))"
    r = rt.run(code)
    assert r.error_type == "ValueError"
    assert "line 4" in r.error and "np.zeros((2, 2)) @ np.zeros((3, 3))" in r.error
    for internal in ("pvg_sandbox", "worker.py", "policy.py", "site-packages", "RestrictedPython"):
        assert internal not in r.error
    # a function defined in an earlier call is named as such
    run_ok(rt, "def bad():\n    return 1 / 0")
    r = rt.run("bad()")
    assert "line 2, in bad (code from call" in r.error and "ZeroDivisionError" in r.error


def test_syntax_error_names_the_line(rt):
    r = rt.run("x = 1\ny = (2 +\n")
    assert r.error_type == "SyntaxError" and "line 2" in r.error


# ----------------------------------------------------------------------------- inputs
def test_named_images_and_video(rt, test_video: Path):
    red = Image.new("RGB", (30, 20), (255, 0, 0))
    gray = np.full((10, 12), 7, np.uint8)
    info = rt.reset(images={"image": red, "image_1": gray}, videos={"video": test_video})
    assert info == {"video": {"frames": 48, "fps": 12.0}}
    out = run_ok(rt, "print(image.size, image.getpixel((0, 0)), image_1.size, image_1.mode)")
    assert out.strip() == "(30, 20) (255, 0, 0) (12, 10) L"
    code = (
        "f = video[10]\n"
        "b = video.get_batch([20, 5, 20])\n"
        "print(len(video), video.fps, video.frame_size, video.duration, f.shape, f.dtype, b.shape)\n"
        "print(abs(int(f[0, 0, 0]) - 50) < 6, abs(int(b[1][0, 0, 0]) - 25) < 6, video[-1].asnumpy().shape)"
    )
    lines = run_ok(rt, code).splitlines()
    assert lines[0] == "48 12.0 (96, 64) 4.0 (64, 96, 3) uint8 (3, 64, 96, 3)"
    assert lines[1] == "True True (64, 96, 3)"


def test_video_handle_cannot_open_other_files(rt, test_video):
    rt.reset(videos={"video": test_video})
    for code, needle in [
        ("type(video)('/etc/passwd')", "cannot be created"),
        ("video.source", "has no attribute"),
        ("video._VideoHandle__reader", "starts with \"_\""),
        ("getattr(video, '_VideoHandle__source')", "not accessible"),
    ]:
        r = rt.run(code)
        assert not r.ok and needle in r.error, (code, r.error)
    r = rt.run("video[10**6]")
    assert r.error_type == "IndexError" and "out of range" in r.error


def test_bad_inputs_are_named(rt, tmp_path):
    with pytest.raises(RuntimeInputError, match="file not found"):
        rt.reset(videos={"video": tmp_path / "missing.mp4"})
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 100)
    with pytest.raises(RuntimeInputError, match="video 'video'.*could not be decoded"):
        rt.reset(videos={"video": broken})
    with pytest.raises(RuntimeInputError, match="not a valid public Python identifier"):
        rt.reset(images={"_hidden": Image.new("RGB", (2, 2))})
    with pytest.raises(RuntimeInputError, match="reserved"):
        rt.reset(images={"np": Image.new("RGB", (2, 2))})
    with pytest.raises(RuntimeInputError, match="uint8"):
        rt.reset(images={"image": np.zeros((4, 4), np.float32)})
    rt.reset()  # and the runtime still serves
    assert run_ok(rt, "print(1+1)").strip() == "2"


# ----------------------------------------------------------------------------- outputs
def test_shown_images_come_back_in_order(rt):
    rt.reset(images={"image": Image.new("RGB", (300, 200), (0, 0, 255))})
    code = (
        "display(image.crop((0, 0, 50, 40)))\n"
        "fig, ax = plt.subplots(figsize=(2, 1), dpi=100)\n"
        "ax.plot([0, 1])\n"
        "fig.show()\n"
        "display(np.zeros((8, 9), dtype=float))\n"
        "plt.figure(figsize=(3, 2), dpi=50); plt.imshow(np.asarray(image)); plt.show()\n"
        "image.resize((10, 10)).show()\n"
        "print('done')"
    )
    r = rt.run(code)
    assert r.ok, r.error
    assert r.image_sizes == [(50, 40), (200, 100), (9, 8), (150, 100), (10, 10)]
    first = r.images[0]
    assert first.dtype == np.uint8 and first.shape == (40, 50, 3) and tuple(first[0, 0]) == (0, 0, 255)
    assert r.output.strip() == "done"


def test_display_limits(rt):
    with Runtime(max_images_per_call=2, max_display_pixels=100 * 100) as small:
        small.reset()
        r = small.run("for i in range(4):\n    display(np.zeros((300, 300, 3), dtype=np.uint8))")
        assert r.ok and r.image_sizes == [(100, 100), (100, 100)]
        assert "2 more image(s) were not shown" in r.output and "downscaled" in r.output
    r = rt.run("display(np.zeros((2, 2, 7)))")
    assert r.error_type == "ValueError" and "display()" in r.error


# ----------------------------------------------------------------------------- isolation report
def test_missing_layer_warns(monkeypatch):
    monkeypatch.setattr(isolation, "bubblewrap_status", lambda: (None, "bubblewrap (bwrap) is not installed"))
    with pytest.warns(isolation.IsolationWarning, match="bubblewrap \\(bwrap\\) is not installed"):
        with Runtime() as rt:
            rt.reset()
            assert rt.report.method == "process" and not rt.report.namespaces
            assert rt.run("print(1+1)").output.strip() == "2"
    with pytest.raises(isolation.IsolationError):
        with Runtime(isolation="strict") as rt:
            rt.reset()


def test_close_without_bubblewrap_kills_every_sandbox_process_and_removes_scratch(monkeypatch):
    """The zygote's forked episode processes die with it, not after it, so none still
    writes into the host scratch folder when close() removes it (a CI failure: ENOTEMPTY)."""
    monkeypatch.setattr(isolation, "bubblewrap_status", lambda: (None, "bubblewrap (bwrap) is not installed"))
    with pytest.warns(isolation.IsolationWarning):
        rt = Runtime()
        rt.reset()
        assert rt.run("print(1)").ok
    pgid, scratch = rt._proc.pid, Path(rt._host_tmp.name)
    assert scratch.is_dir()
    rt.close()
    assert not scratch.exists()
    assert runtime_mod.group_members_alive(pgid) == []



def test_scratch_removal_retries_while_a_dying_process_still_writes(tmp_path, monkeypatch):
    import tempfile

    tmp = tempfile.TemporaryDirectory(dir=tmp_path)
    (Path(tmp.name) / "scratch").mkdir()
    real, calls = tmp.cleanup, []

    def busy_then_real() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise OSError(errno.ENOTEMPTY, "Directory not empty", "scratch")
        real()

    monkeypatch.setattr(tmp, "cleanup", busy_then_real)
    runtime_mod._remove_scratch(tmp)
    assert len(calls) == 3 and not Path(tmp.name).exists()


def test_full_isolation_when_available():
    bwrap, why = isolation.bubblewrap_status()
    if bwrap is None:
        pytest.skip(f"bubblewrap unavailable on this machine: {why}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", isolation.IsolationWarning)
        with Runtime(isolation="strict") as rt:
            rt.reset()
            assert rt.report.complete, rt.report.describe()


@pytest.mark.parametrize("transport", ["memfd", "socket"])
@pytest.mark.parametrize("kind", ["pil", "array", "gray", "rgba"])
def test_image_inputs_arrive_intact(transport, kind):
    rng = np.random.default_rng(5)
    arr = rng.integers(0, 256, size=(37, 53, 3), dtype=np.uint8)
    image = {"pil": Image.fromarray(arr), "array": arr, "gray": Image.fromarray(arr[..., 0]),
             "rgba": Image.fromarray(np.dstack([arr, arr[..., :1]]))}[kind]
    want = np.asarray(image) if kind != "array" else arr
    with Runtime(input_transport=transport, timeout=3) as rt:
        rt.reset(images={"image": image})
        r = rt.run("a = np.asarray(image); print(image.mode, a.shape, int(a.astype(np.int64).sum()))")
        mode = {"pil": "RGB", "array": "RGB", "gray": "L", "rgba": "RGBA"}[kind]
        assert r.output.split()[0] == mode and r.output.strip().endswith(str(int(want.astype(np.int64).sum())))
        # a restart re-sends the same inputs (for memfd: the same sealed file) intact
        assert rt.run("while True:\n    pass").error_type == "Timeout"
        assert rt.run("print(int(np.asarray(image).astype(np.int64).sum()))").output.strip() == str(int(want.astype(np.int64).sum()))


def test_memfd_inputs_are_sealed_against_the_worker():
    arr = np.full((8, 8, 3), 7, np.uint8)
    with Runtime() as rt:
        rt.reset(images={"image": arr})
        assert rt._images[0].fd is not None
        seals = fcntl.fcntl(rt._images[0].fd, fcntl.F_GET_SEALS)
        assert seals & fcntl.F_SEAL_WRITE and seals & fcntl.F_SEAL_SHRINK and seals & fcntl.F_SEAL_SEAL
        with pytest.raises(PermissionError):
            os.write(rt._images[0].fd, b"x")
        assert rt.run("print(np.asarray(image).max())").output.strip() == "7"


def test_memfd_seal_falls_back_to_future_write_when_pages_stay_busy(monkeypatch):
    """F_SEAL_WRITE can fail with EBUSY while the kernel still holds a page reference (seen in
    CI under load): after its retries the file is sealed with F_SEAL_FUTURE_WRITE and still
    refuses writes, and the episode runs."""
    from pyvision_gym import image_inputs

    real_fcntl, write_tries = fcntl.fcntl, []

    def busy_write_seal(fd, cmd, arg=0):
        if cmd == fcntl.F_ADD_SEALS and arg == fcntl.F_SEAL_WRITE:
            write_tries.append(fd)
            raise OSError(errno.EBUSY, "Device or resource busy")
        return real_fcntl(fd, cmd, arg)

    monkeypatch.setattr(image_inputs.fcntl, "fcntl", busy_write_seal)
    with Runtime() as rt:
        rt.reset(images={"image": np.full((8, 8, 3), 9, np.uint8)})
        fd = rt._images[0].fd
        seals = real_fcntl(fd, fcntl.F_GET_SEALS)
        assert len(write_tries) == len(image_inputs._WRITE_SEAL_TRIES)
        assert not seals & fcntl.F_SEAL_WRITE and seals & image_inputs._SEAL_FUTURE_WRITE
        assert seals & fcntl.F_SEAL_SEAL and seals & fcntl.F_SEAL_GROW
        with pytest.raises(PermissionError):
            os.write(fd, b"x")
        assert rt.run("print(np.asarray(image).max())").output.strip() == "9"
