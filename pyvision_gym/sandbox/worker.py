"""The sandboxed side of the runtime: a single-threaded zygote that forks one process per episode.

The zygote starts once per runtime (inside the OS sandbox when one is available), imports the
heavy libraries, and keeps one spare episode process forked ahead. A new episode takes the
spare (its socket is passed to the host with SCM_RIGHTS) and a new spare is forked. The
episode process applies rlimits and seccomp, builds a fresh restricted namespace and then
serves ``exec`` calls until the host closes it or the zygote kills it.
"""

from __future__ import annotations

import linecache
import mmap
import os
import shutil
import signal
import socket
import sys
import time
import traceback
import warnings
from typing import Any

from . import namespace, policy, wire
from .capture import BoundedWriter, Display
from .library_guards import patch_libraries
from .limits import apply_rlimits, apply_seccomp
from .video import VideoHandle

SCRATCH_ROOT_ENV = "PYVISION_SCRATCH_ROOT"


# ============================================================================================
# running agent code
# ============================================================================================
class Interpreter:
    """One episode's restricted interpreter: namespace, compile cache, output and images."""

    def __init__(self, preload: dict[str, Any], limits: dict[str, Any]) -> None:
        self.policy = policy
        self.limits = limits
        self.display = Display(int(limits["max_images_per_call"]), int(limits["max_display_pixels"]))
        self.sources: dict[str, str] = {}
        self.compiled: dict[str, Any] = {}
        display = self.display

        def show(*objs: Any) -> None:
            """Show images: PIL images, arrays (H×W, H×W×3/4, or N×H×W×3), figures, or lists of them."""
            display(*objs)

        self.ns = namespace.make_namespace(show, preload)

    def compile(self, source: str) -> tuple[Any, str]:
        code = self.compiled.get(source)
        if code is None:
            name = f"<call {len(self.sources) + 1}>"
            code = self.policy.compile_agent_code(source, name)
            self.compiled[source] = code
            self.sources[name] = source
            linecache.cache[name] = (len(source), None, source.splitlines(True), name)
        return code, code.co_filename

    def run(self, source: str) -> dict[str, Any]:
        out = BoundedWriter(int(self.limits["max_output_chars"]))
        self.display.reset()
        namespace.PrintSink.stream = out
        error = error_type = None
        old_out, old_err = sys.stdout, sys.stderr
        sys.stdout = sys.stderr = out
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("default")
                try:
                    code, filename = self.compile(source)
                except SyntaxError as exc:
                    error, error_type = _format_syntax_error(exc), "SyntaxError"
                except (RecursionError, MemoryError, ValueError) as exc:  # e.g. absurdly nested code
                    error, error_type = f"SyntaxError: the code could not be compiled ({type(exc).__name__}: {exc})", "SyntaxError"
                else:
                    try:
                        exec(code, self.ns)
                    except BaseException as exc:  # noqa: BLE001 - every failure becomes a message
                        error, error_type = self._format_exception(exc, filename)
        finally:
            sys.stdout, sys.stderr = old_out, old_err
        notes = list(self.display.notes)
        if self.display.skipped:
            notes.append(f"[{self.display.skipped} more image(s) were not shown: at most {self.display.max_images} per call]")
        return {
            "output": _utf8_safe(out.getvalue()),
            "dropped": out.dropped,
            # bounded here, whatever produced it: a reply larger than the host accepts would
            # read as a dead worker and cost the episode its state
            "error": None if error is None else _utf8_safe(_clip(error, int(self.limits["max_error_chars"]))),
            "error_type": error_type,
            "notes": notes,
        }

    def _format_exception(self, exc: BaseException, current: str) -> tuple[str, str]:
        kind = type(exc).__name__
        if isinstance(exc, SystemExit):
            msg = "SystemExit: the code tried to exit the interpreter; that is not allowed (the runtime keeps its state)."
        elif isinstance(exc, KeyboardInterrupt):
            msg = "KeyboardInterrupt: the code raised KeyboardInterrupt; the call was stopped (the runtime keeps its state)."
        elif isinstance(exc, MemoryError):
            msg = f"MemoryError: the code ran out of memory (limit: {self.limits['memory_mb']} MB for this episode)."
        else:
            msg = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            if isinstance(exc, self.policy.PolicyViolation):
                kind = "PolicyViolation"
        frames = _agent_frames(exc, self.sources)
        lines = ["Traceback (most recent call last):"] if frames else []
        lines += _format_frames(frames, self.sources, current)
        lines.append(msg)
        return _clip("\n".join(lines), int(self.limits["max_error_chars"])), kind


def _utf8_safe(text: str) -> str:
    """Lone surrogates cannot be encoded as UTF-8: escape them instead of failing the reply."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _agent_frames(exc: BaseException, sources: dict[str, str]) -> list[traceback.FrameSummary]:
    try:
        summary = traceback.extract_tb(exc.__traceback__, limit=None)
    except RecursionError:  # pragma: no cover - extremely deep tracebacks
        return []
    return [f for f in summary if f.filename in sources]


def _format_frames(frames: list[traceback.FrameSummary], sources: dict[str, str], current: str) -> list[str]:
    out: list[str] = []
    last: tuple[str, int | None, str] | None = None
    repeats = 0

    def flush() -> None:
        if repeats > 3:
            out.append(f"  [previous line repeated {repeats - 3} more times]")

    for f in frames:
        key = (f.filename, f.lineno, f.name)
        if key == last:
            repeats += 1
            if repeats > 3:
                continue
        else:
            flush()
            last, repeats = key, 1
        where = f"  line {f.lineno}"
        if f.name != "<module>":
            where += f", in {f.name}"
        if f.filename != current:
            where += f" (code from {f.filename.strip('<>')})"
        out.append(where)
        text = sources[f.filename].splitlines()[f.lineno - 1].strip() if f.lineno else ""
        if text:
            out.append(f"    {text if len(text) <= 200 else text[:200] + ' ...'}")
    flush()
    return out


def _format_syntax_error(exc: SyntaxError) -> str:
    msg = exc.msg if exc.msg else str(exc)
    if exc.lineno:
        text = (exc.text or "").rstrip("\n")
        indent = len(text) - len(text.lstrip())
        pointer = "\n    " + " " * max(0, exc.offset - 1 - indent) + "^" if text and exc.offset else ""
        if len(text) > 200:
            text, pointer = text[:200] + " ...", ""
        return f"  line {exc.lineno}\n    {text.strip()}{pointer}\nSyntaxError: {msg}"
    # RestrictedPython reports policy violations as one SyntaxError listing "Line N: ..." items.
    items = exc.args[0] if exc.args and isinstance(exc.args[0], (tuple, list)) else [msg]
    listed = "\n".join(f"  {item}" for item in items)
    return f"SyntaxError: the code was rejected by the runtime's policy:\n{listed}"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    head = text[: limit // 2]
    tail = text[-limit // 2 :]
    return f"{head}\n[... {len(text) - len(head) - len(tail)} characters of the error dropped ...]\n{tail}"


# ============================================================================================
# the episode process
# ============================================================================================
def _image_from_fd(fd: int, mode: str, size: tuple[int, int]) -> Any:
    """A PIL image of the raw pixels in memfd ``fd`` (mapped read-only; the fd is closed)."""
    from PIL import Image

    length = size[0] * size[1] * len(mode)
    try:
        with mmap.mmap(fd, length, prot=mmap.PROT_READ) as mapped:
            return Image.frombytes(mode, size, mapped)
    finally:
        os.close(fd)


def _preload(images: list[dict[str, Any]], blobs: list[bytearray], videos: list[dict[str, Any]], fds: list[int]) -> tuple[dict[str, Any], dict[str, Any]]:
    import matplotlib.pyplot as plt
    import numpy as np
    from PIL import Image

    ns: dict[str, Any] = {"np": np, "plt": plt, "Image": Image}
    info: dict[str, Any] = {}
    in_blobs = iter(blobs)
    for spec in images:
        if "fd" in spec:  # raw pixels in a sealed memfd from the host: map it, build the image
            ns[spec["name"]] = _image_from_fd(fds[spec["fd"]], spec["mode"], tuple(spec["size"]))
        else:
            ns[spec["name"]] = Image.frombytes(spec["mode"], tuple(spec["size"]), next(in_blobs))
    for spec in videos:
        fd = fds[spec["fd"]]
        handle = VideoHandle(f"/proc/self/fd/{fd}")
        try:
            info[spec["name"]] = {"frames": len(handle), "fps": handle.fps}
        except ValueError as exc:
            info[spec["name"]] = {"error": str(exc)}
        ns[spec["name"]] = handle
    VideoHandle.seal()
    return ns, info


def episode_main(sock: socket.socket, limits: dict[str, Any], scratch: str) -> None:
    """Serve one episode on ``sock``; never returns normally."""
    os.makedirs(scratch, exist_ok=True)
    os.chdir(scratch)
    failed = apply_rlimits(limits)
    seccomp_error = apply_seccomp() if limits.get("seccomp", True) else "disabled by configuration"
    status = {"rlimits_failed": failed, "seccomp_error": seccomp_error, "pid": os.getpid()}
    # Wait for the episode's inputs, then serve calls.
    header, blobs, fds = wire.recv(sock, max_fds=64)
    if header.get("op") != "init":
        os._exit(2)
    try:
        preload, video_info = _preload(header.get("images", []), blobs, header.get("videos", []), fds)
    except Exception as exc:  # noqa: BLE001
        wire.send(sock, {"op": "ready", "error": f"{type(exc).__name__}: {exc}", **status})
        os._exit(3)
    interp = Interpreter(preload, limits)
    _DISPLAY_REF[0] = interp.display
    wire.send(sock, {"op": "ready", "videos": video_info, **status})
    while True:
        try:
            header, _blobs, _fds = wire.recv(sock)
        except (wire.WireError, OSError):
            os._exit(0)
        op = header.get("op")
        if op == "exec":
            t0 = time.perf_counter()
            result = interp.run(str(header.get("code", "")))
            images = interp.display.images
            result["images"] = [list(a.shape[:2]) for a in images]
            result["seconds"] = time.perf_counter() - t0
            wire.send(sock, dict(result, op="result"), [memoryview(a).cast("B") for a in images])
            interp.display.reset()
        elif op == "ping":
            wire.send(sock, {"op": "pong", "pid": os.getpid()})
        else:
            os._exit(0)


# ============================================================================================
# the zygote
# ============================================================================================
_DISPLAY_REF: list[Display | None] = [None]


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


class Zygote:
    def __init__(self, ctrl: socket.socket, limits: dict[str, Any]) -> None:
        self.ctrl = ctrl
        self.limits = limits
        self.scratch_root = os.environ.get(SCRATCH_ROOT_ENV, "/tmp/scratch")
        self.children: dict[int, str] = {}
        self.spare: tuple[int, socket.socket] | None = None
        self.dying: set[int] = set()
        self.counter = 0

    def fork_episode(self) -> tuple[int, socket.socket]:
        if _thread_count() != 1:
            raise RuntimeError(f"the zygote has {_thread_count()} threads; refusing to fork")
        self.counter += 1
        scratch = os.path.join(self.scratch_root, f"episode-{self.counter}")
        parent_end, child_end = socket.socketpair()
        pid = os.fork()
        if pid == 0:  # the episode process
            code = 1
            try:
                self.ctrl.close()
                parent_end.close()
                if self.spare is not None:
                    self.spare[1].close()
                _die_with_parent()
                episode_main(child_end, self.limits, scratch)
            except BaseException:  # noqa: BLE001
                code = 1
            finally:
                os._exit(code)
        child_end.close()
        self.children[pid] = scratch
        return pid, parent_end

    def reap(self, pid: int, kill: bool) -> str:
        if kill:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:
            status = None
        scratch = self.children.pop(pid, None)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        return _describe_status(status)

    def kill_later(self, pid: int) -> None:
        if pid in self.children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.dying.add(pid)

    def collect_dying(self) -> None:
        for pid in list(self.dying):
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                self.dying.discard(pid)
                scratch = self.children.pop(pid, None)
                if scratch:
                    shutil.rmtree(scratch, ignore_errors=True)

    def serve(self) -> None:
        self.spare = self.fork_episode()
        wire.send(self.ctrl, {"op": "hello", "pid": os.getpid(), "threads": _thread_count()})
        while True:
            if self.dying:
                self.collect_dying()
            try:
                header, _b, _f = wire.recv(self.ctrl)
            except (wire.WireError, OSError):
                break
            op = header.get("op")
            if op == "spawn":
                pid, sock = self.spare if self.spare is not None else self.fork_episode()
                self.spare = None
                wire.send(self.ctrl, {"op": "spawned", "pid": pid}, fds=[sock.fileno()])
                sock.close()
                self.spare = self.fork_episode()
            elif op == "reap":
                pid = int(header["pid"])
                if not header.get("reply", True):
                    # Fast path for a new episode: kill now, collect the process later.
                    self.kill_later(pid)
                    continue
                status = self.reap(pid, kill=True) if pid in self.children else "unknown process"
                wire.send(self.ctrl, {"op": "reaped", "pid": pid, "status": status})
            elif op == "ping":
                wire.send(self.ctrl, {"op": "pong", "threads": _thread_count(), "children": len(self.children)})
            else:
                break
        for pid in list(self.children):
            self.reap(pid, kill=True)


def _describe_status(status: int | None) -> str:
    if status is None:
        return "already reaped"
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        why = {
            "SIGXCPU": "its CPU-time limit was exceeded",
            "SIGKILL": "it was killed",
            "SIGSEGV": "it crashed (segmentation fault)",
            "SIGABRT": "it aborted",
            "SIGSYS": "it made a forbidden system call",
        }.get(name, "it received a signal")
        return f"{why} ({name})"
    if os.WIFEXITED(status):
        return f"it exited with status {os.WEXITSTATUS(status)}"
    return f"status {status}"


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux prctl)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass


def zygote_main(fd: int, limits: dict[str, Any], preload_modules: list[str]) -> None:
    """Entry point of the sandboxed zygote process (fd: the control socket)."""
    _die_with_parent()
    ctrl = socket.socket(fileno=fd)
    sys.setrecursionlimit(1000)
    import importlib

    for name in preload_modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - a missing optional library only slows episodes down
            pass
    patch_libraries(_DISPLAY_REF)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    Zygote(ctrl, limits).serve()
