"""The runtime: a persistent, restricted, isolated Python interpreter for model-written code.

>>> from pyvision_gym.runtime import Runtime
>>> with Runtime(timeout=10) as rt:
...     rt.reset(images={"image": pil_image})
...     r = rt.run("crop = image.crop((0, 0, 64, 64)); display(crop); print(crop.size)")
...     r.output, r.images[0].shape

One ``Runtime`` serves one environment: ``reset()`` starts a new episode with a clean
namespace holding the given images and video handles; ``run(code)`` executes one turn and
returns its text output, a trimmed traceback on error, and the images the code showed.
State persists across ``run`` calls until the next ``reset``. A ``Runtime`` is not
thread-safe; use one per thread / environment.
"""

from __future__ import annotations

import atexit
import keyword
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from . import isolation
from .image_inputs import ImageInput, prepare_images
from .isolation import spawn
from .runtime_config import (
    ExecResult,
    RuntimeConfig,
    RuntimeInputError,
    RuntimeStartError,
)
from .sandbox import wire

RESERVED_NAMES = frozenset({"np", "plt", "Image", "display"})


_LIVE: weakref.WeakSet[Runtime] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for rt in list(_LIVE):
        rt.close()


class Runtime:
    """A restricted interpreter in an isolated worker process (see module docstring)."""

    def __init__(self, config: RuntimeConfig | None = None, **overrides: Any) -> None:
        self.config = RuntimeConfig(**{**asdict(config or RuntimeConfig()), **overrides})
        self.report = isolation.IsolationReport()
        self._proc: subprocess.Popen[bytes] | None = None
        self._ctrl: socket.socket | None = None
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        self._host_tmp: tempfile.TemporaryDirectory[str] | None = None
        self._images: list[ImageInput] = []
        self._ready_pending = False
        self._videos: list[tuple[str, str]] = []
        self._video_info: dict[str, Any] = {}
        self._warned = False
        self._stderr: Any = None
        _LIVE.add(self)

    # ------------------------------------------------------------------ public API
    def reset(
        self,
        images: Mapping[str, Image.Image | np.ndarray] | None = None,
        videos: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> dict[str, Any]:
        """Start a new episode with a clean namespace holding ``images`` and ``videos``.

        Returns per-video metadata ``{name: {"frames": n, "fps": f}}``. Raises
        ``RuntimeInputError`` for a bad name, a missing file or a video decord cannot open.
        """
        for n in images or {}:
            self._check_name(n)
        vids = []
        for n, p in (videos or {}).items():
            path = os.fspath(p)
            if not os.path.isfile(path):
                raise RuntimeInputError(f"video '{n}': file not found: {path}")
            vids.append((self._check_name(n), path))
        names = list(images or {}) + [n for n, _ in vids]
        if len(set(names)) != len(names):
            raise RuntimeInputError(f"input names must be distinct, got {names}")
        imgs = prepare_images(dict(images or {}), self.config.input_transport)
        self._end_episode()
        self._release_images()
        self._images, self._videos = imgs, vids
        # Image-only episodes with memfd inputs do not wait for the worker to load them: it
        # builds its images while the host (and the agent) carry on; the first run waits.
        self._start_episode(wait=bool(vids) or not imgs or any(im.fd is None for im in imgs))
        bad = {n: v["error"] for n, v in self._video_info.items() if "error" in v}
        if bad:
            self._end_episode()
            raise RuntimeInputError("; ".join(f"video '{n}' ({dict(vids)[n]}): {e}" for n, e in bad.items()))
        return dict(self._video_info)

    def run(self, code: str, timeout: float | None = None) -> ExecResult:
        """Execute one turn of code in the current episode."""
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, got {type(code).__name__}")
        if self._sock is None:
            raise RuntimeError("no episode is active: call reset() first")
        limit = self.config.timeout if timeout is None else float(timeout)
        t0 = time.perf_counter()
        self._await_ready()
        if self._proc is None or self._proc.poll() is not None:
            status = self._replace_worker(limit)
            return self._restarted("WorkerDied", f"RuntimeError: the runtime's sandbox process had exited ({status}).", t0)
        try:
            wire.send(self._sock, {"op": "exec", "code": code})
            header, blobs, _ = wire.recv(self._sock, timeout=limit, max_header=self._max_header(code), max_blobs=self._max_blob_bytes())
        except wire.WireTimeout:
            self._replace_worker(limit)
            return self._restarted("Timeout", f"TimeoutError: the code did not finish within {limit:g} s and was stopped.", t0)
        except (wire.WireError, OSError):
            status = self._replace_worker(limit)
            return self._restarted("WorkerDied", f"RuntimeError: the runtime process died while running this code ({status}).", t0)
        return self._result(header, blobs, time.perf_counter() - t0)

    def _restarted(self, error_type: str, what: str, t0: float) -> ExecResult:
        """The result of a call whose worker was replaced: what happened, and that state is lost."""
        return ExecResult(
            error=f"{what} The runtime was restarted: variables, imports and figures from earlier calls are "
                  f"lost; {self._inputs_phrase()}.",
            error_type=error_type, state_lost=True, seconds=time.perf_counter() - t0,
        )

    def close(self) -> None:
        """Stop the worker and free everything the runtime holds."""
        self._stop_processes()
        self._release_images()

    def _stop_processes(self) -> None:
        """Stop the zygote and the episode process (the episode's inputs are kept)."""
        self._ready_pending = False
        for s in (self._sock, self._ctrl):
            if s is not None:
                s.close()
        self._sock = self._ctrl = None
        if self._proc is not None:
            _kill_group(self._proc)
            self._proc = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._host_tmp is not None:
            _remove_scratch(self._host_tmp)
            self._host_tmp = None

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass

    @property
    def video_info(self) -> dict[str, Any]:
        return dict(self._video_info)

    # ------------------------------------------------------------------ worker lifecycle
    def _start_zygote(self) -> None:
        cfg = self.config
        limits = {
            "cpu_seconds": cfg.cpu_seconds,
            "memory_mb": cfg.memory_mb,
            "max_file_mb": cfg.max_file_mb,
            "max_open_files": cfg.max_open_files,
            "max_processes": cfg.max_processes,
            "max_output_chars": cfg.max_output_chars,
            "max_error_chars": cfg.max_error_chars,
            "max_images_per_call": cfg.max_images_per_call,
            "max_display_pixels": cfg.max_display_pixels,
            "seccomp": cfg.seccomp,
        }
        report = isolation.IsolationReport()
        bwrap = None
        if cfg.isolation != "none":
            bwrap, why = isolation.bubblewrap_status()
            if bwrap is None:
                report.problems.append(why)
        else:
            report.problems.append("OS isolation disabled by configuration (isolation='none')")
        ctrl, theirs = socket.socketpair()
        python = os.path.realpath(sys.executable)
        if bwrap:
            pkg, scratch_root = isolation.MOUNT_PKG, isolation.SCRATCH_IN_SANDBOX
            env = isolation.worker_environment(scratch_root)
            cmd = isolation.bwrap_command(bwrap, cfg.scratch_mb, env)
            popen_env: dict[str, str] | None = {"PATH": "/usr/bin:/bin"}
            cwd = None
            report.method = "bubblewrap"
            report.namespaces = report.network_isolated = report.filesystem_isolated = True
        else:
            self._host_tmp = tempfile.TemporaryDirectory(prefix="pyvision-runtime-")
            pkg, scratch_root = str(isolation.SANDBOX_PKG), os.path.join(self._host_tmp.name, "scratch")
            os.makedirs(scratch_root)
            popen_env = isolation.worker_environment(scratch_root)
            cmd, cwd = [], scratch_root
            report.method = "process"
        boot = (
            f"import sys; sys.path[:0] = {isolation.worker_sys_path()!r}; import importlib.util as u; "
            f"s = u.spec_from_file_location('pvg_sandbox', {pkg + '/__init__.py'!r}, submodule_search_locations=[{pkg!r}]); "
            f"m = u.module_from_spec(s); sys.modules['pvg_sandbox'] = m; s.loader.exec_module(m); "
            f"from pvg_sandbox.worker import zygote_main; zygote_main({theirs.fileno()}, {limits!r}, {list(cfg.preload)!r})"
        )
        cmd = [*cmd, python, "-I", "-S", "-c", boot]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = spawn(
                cmd, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=self._stderr, env=popen_env, cwd=cwd, start_new_session=True,
            )
        finally:
            theirs.close()
        self._ctrl = ctrl
        try:
            hello, _, _ = wire.recv(ctrl, timeout=cfg.start_timeout)
        except (wire.WireError, wire.WireTimeout, OSError) as exc:
            detail = self._stderr_tail()
            self._stop_processes()
            raise RuntimeStartError(f"the runtime worker did not start ({type(exc).__name__}): {detail}") from None
        if hello.get("threads", 1) != 1:
            report.problems.append(f"the worker zygote runs {hello['threads']} threads")
        self.report = report

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:].strip() or "(no output)"

    def _ensure_zygote(self) -> None:
        if self._proc is None or self._proc.poll() is not None or self._ctrl is None:
            self._stop_processes()
            self._start_zygote()

    def _zygote_call(self, header: dict[str, Any], max_fds: int = 0, timeout: float | None = None) -> tuple[dict[str, Any], list[int]]:
        assert self._ctrl is not None
        wire.send(self._ctrl, header)
        reply, _, fds = wire.recv(self._ctrl, timeout=timeout or self.config.start_timeout, max_fds=max_fds)
        return reply, fds

    def _start_episode(self, zygote_timeout: float | None = None, wait: bool = True) -> None:
        """Take the zygote's spare process for a new episode and send it the inputs.

        ``zygote_timeout`` bounds the wait for a running zygote (a step passes its own timeout:
        a stopped zygote must not hold it for ``start_timeout``); a zygote that does not answer
        is replaced by a fresh one. Without ``wait`` the worker's "ready" is read by the next
        :meth:`run` (:meth:`_await_ready`).
        """
        for attempt in range(2):
            self._ensure_zygote()
            try:
                limit = zygote_timeout if attempt == 0 else None
                reply, fds = self._zygote_call({"op": "spawn"}, max_fds=1, timeout=limit)
                if len(fds) != 1:
                    raise wire.WireError("the zygote sent no episode socket")
                self._pid = int(reply["pid"])
                self._sock = socket.socket(fileno=fds[0])
                self._send_inputs()
                ready = wire.recv(self._sock, timeout=self.config.start_timeout)[0] if wait else None
                break
            except (wire.WireError, wire.WireTimeout, OSError):
                self._stop_processes()  # the zygote or the new process died: start over once
                if attempt:
                    raise RuntimeStartError(f"could not start an episode: {self._stderr_tail()}") from None
        self._ready_pending = ready is None
        if ready is not None:
            self._on_ready(ready)

    def _await_ready(self) -> None:
        """Read the "ready" of an episode started without waiting (a dead one is started again)."""
        if not self._ready_pending or self._sock is None:
            return
        self._ready_pending = False
        try:
            ready, _, _ = wire.recv(self._sock, timeout=self.config.start_timeout)
        except (wire.WireError, wire.WireTimeout, OSError):
            self._end_episode()
            self._start_episode()
            return
        self._on_ready(ready)

    def _on_ready(self, ready: dict[str, Any]) -> None:
        if ready.get("error"):
            raise RuntimeInputError(f"the episode inputs could not be loaded: {ready['error']}")
        self._video_info = ready.get("videos", {})
        self._note_layers(ready)

    def _send_inputs(self) -> None:
        assert self._sock is not None
        video_fds: list[int] = []
        try:
            for _, path in self._videos:
                video_fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            image_fds = [im.fd for im in self._images if im.fd is not None]
            specs, slot = [], 0
            for im in self._images:
                specs.append(im.spec(slot if im.fd is not None else None))
                slot += im.fd is not None
            header = {
                "op": "init",
                "images": specs,
                "videos": [{"name": n, "fd": len(image_fds) + i} for i, (n, _) in enumerate(self._videos)],
            }
            blobs = [im.data for im in self._images if im.fd is None]
            wire.send(self._sock, header, blobs, image_fds + video_fds)
        finally:
            for fd in video_fds:
                os.close(fd)

    def _release_images(self) -> None:
        for im in self._images:
            im.close()
        self._images = []

    def _note_layers(self, ready: dict[str, Any]) -> None:
        r = self.report
        seccomp_error = ready.get("seccomp_error")
        failed = ready.get("rlimits_failed") or []
        r.seccomp = seccomp_error is None
        r.rlimits = not failed
        if seccomp_error and not any(p.startswith("seccomp") for p in r.problems):
            r.problems.append(f"seccomp: {seccomp_error}")
        if failed and not any(p.startswith("rlimits") for p in r.problems):
            r.problems.append(f"rlimits not set: {', '.join(failed)}")
        if not self._warned:
            self._warned = True
            isolation.warn_missing(r, strict=self.config.isolation == "strict")

    def _end_episode(self, want_status: bool = False) -> str:
        """Kill the current episode process; with ``want_status``, wait and say how it ended."""
        status = "no episode"
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pid is not None and self._ctrl is not None:
            try:
                if want_status:
                    reply, _ = self._zygote_call({"op": "reap", "pid": self._pid})
                    status = str(reply.get("status"))
                else:
                    wire.send(self._ctrl, {"op": "reap", "pid": self._pid, "reply": False})
            except (wire.WireError, wire.WireTimeout, OSError):
                status = "the worker zygote is gone"
                self._stop_processes()
        self._pid = None
        return status

    def _replace_worker(self, zygote_timeout: float | None = None) -> str:
        status = self._end_episode(want_status=True)
        self._start_episode(zygote_timeout)
        return status

    # ------------------------------------------------------------------ helpers
    def _check_name(self, name: str) -> str:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
            raise RuntimeInputError(f"input name {name!r} is not a valid public Python identifier")
        if name in RESERVED_NAMES:
            raise RuntimeInputError(f"input name {name!r} is reserved (preloaded: {sorted(RESERVED_NAMES)})")
        return name

    def _inputs_phrase(self) -> str:
        names = [im.name for im in self._images] + [n for n, _ in self._videos]
        if not names:
            return "the namespace is fresh"
        return "the preloaded inputs (" + ", ".join(f"`{n}`" for n in names) + ") are available again"

    def _max_header(self, code: str) -> int:
        c = self.config
        # UTF-8 JSON: at most 6 bytes per character (control characters become \uXXXX).
        return 6 * (c.max_output_chars + 2 * c.max_error_chars) + 64 * 1024

    def _max_blob_bytes(self) -> int:
        c = self.config
        return c.max_images_per_call * c.max_display_pixels * 3

    def _result(self, header: dict[str, Any], blobs: list[bytearray], seconds: float) -> ExecResult:
        shapes = header.get("images", [])
        if not isinstance(shapes, list) or len(shapes) != len(blobs) or len(blobs) > self.config.max_images_per_call:
            self._replace_worker(self.config.timeout)
            return ExecResult(error="RuntimeError: the worker sent a malformed reply and was replaced.", error_type="WorkerDied", state_lost=True)
        images = []
        for shape, blob in zip(shapes, blobs, strict=True):
            h, w = (int(v) for v in shape)
            if h <= 0 or w <= 0 or h * w * 3 != len(blob):
                self._replace_worker(self.config.timeout)
                return ExecResult(error="RuntimeError: the worker sent a malformed image and was replaced.", error_type="WorkerDied", state_lost=True)
            images.append(np.frombuffer(blob, dtype=np.uint8).reshape(h, w, 3))
        output = str(header.get("output", ""))[: self.config.max_output_chars]
        dropped = int(header.get("dropped", 0))
        if dropped:
            output += f"\n[... output truncated: {dropped} more characters were dropped ...]\n"
        notes = [str(n) for n in header.get("notes", [])]
        if notes:
            output = output + ("\n" if output and not output.endswith("\n") else "") + "\n".join(notes) + "\n"
        error = header.get("error")
        return ExecResult(
            output=output,
            error=None if error is None else str(error)[: 2 * self.config.max_error_chars],
            error_type=None if error is None else str(header.get("error_type")),
            images=images,
            seconds=seconds,
        )


def sandbox_package_path() -> Path:
    """Where the sandboxed worker code lives (for diagnostics)."""
    return isolation.SANDBOX_PKG


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the zygote and every process it forked (they share its session's process group).

    The episode processes would die with the zygote anyway (parent-death signal), but that
    happens after the zygote is reaped; killing the group first means none of them is still
    writing into the scratch folder when it is removed.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass
    deadline = time.monotonic() + 2.0  # SIGKILL is asynchronous: wait until the group has exited
    while group_members_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)


def group_members_alive(pgid: int) -> list[int]:
    """Pids of group ``pgid`` that have not exited yet (Linux ``/proc``; zombies count as exited,
    since an init that does not reap would keep them forever)."""
    alive = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:  # it exited while we looked
            continue
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            alive.append(int(entry.name))
    return alive


def _remove_scratch(tmp: tempfile.TemporaryDirectory, tries: int = 5) -> None:
    """Remove the host scratch folder, retrying while a dying sandbox process still writes to it."""
    for attempt in range(tries):
        try:
            tmp.cleanup()
            return
        except OSError:
            time.sleep(0.02 * (attempt + 1))
    shutil.rmtree(tmp.name, ignore_errors=True)  # a leftover temp folder must not fail close()
