"""The OS layer: how the worker process is started and what contains it.

With bubblewrap (Debian package ``bubblewrap``) and unprivileged user namespaces, the worker
runs in new user / pid / net / ipc / uts namespaces with a read-only view of the Python
installation only, no network, a cleared environment and a size-limited tmpfs as the only
writable place. Inside, each episode process also gets rlimits and a seccomp filter
(``pyvision_gym.sandbox.limits``). What the machine allows is detected at run time; a missing
layer triggers an ``IsolationWarning`` (or an error with ``isolation="strict"``).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SANDBOX_PKG = Path(__file__).resolve().parent / "sandbox"
MOUNT_PKG = "/opt/pyvision_gym/pvg_sandbox"
SCRATCH_IN_SANDBOX = "/tmp/scratch"

# Libraries the worker imports; their install locations are mounted read-only.
WORKER_LIBRARIES = ("numpy", "PIL", "matplotlib", "RestrictedPython", "decord", "scipy", "skimage", "pyseccomp")


class IsolationWarning(RuntimeWarning):
    """A layer of the runtime's isolation is not available on this machine."""


class IsolationError(RuntimeError):
    """``isolation="strict"`` was requested but a layer is not available."""


@dataclass
class IsolationReport:
    """Which layers contain the worker (filled in once the worker has started)."""

    namespaces: bool = False
    network_isolated: bool = False
    filesystem_isolated: bool = False
    seccomp: bool = False
    rlimits: bool = False
    method: str = "none"
    problems: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.namespaces and self.seccomp and self.rlimits and not self.problems

    def describe(self) -> str:
        layers = [
            ("namespaces (bubblewrap)", self.namespaces),
            ("no network", self.network_isolated),
            ("private filesystem", self.filesystem_isolated),
            ("seccomp", self.seccomp),
            ("rlimits", self.rlimits),
        ]
        return ", ".join(f"{name}: {'yes' if ok else 'NO'}" for name, ok in layers)


@functools.lru_cache(maxsize=1)
def bubblewrap_status() -> tuple[str | None, str]:
    """(path to a working bwrap, or None; the reason when None)."""
    path = shutil.which("bwrap")
    if path is None:
        return None, "bubblewrap (bwrap) is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = subprocess.run(
            [path, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "true"],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"bubblewrap could not run: {exc}"
    if probe.returncode != 0:
        err = probe.stderr.decode(errors="replace").strip().splitlines()
        return None, f"bubblewrap cannot create namespaces here ({err[-1] if err else probe.returncode}); unprivileged user namespaces may be disabled"
    return path, ""


def _library_roots() -> list[str]:
    roots: set[str] = set()
    for name in WORKER_LIBRARIES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin:
            continue
        pkg_dir = Path(spec.origin).resolve().parent
        roots.add(str(pkg_dir.parent if spec.submodule_search_locations else pkg_dir))
        # packages shipping native libraries beside them (e.g. ``scipy.libs``, ``pillow.libs``)
        for sib in pkg_dir.parent.glob(f"{name.lower()}*.libs"):
            roots.add(str(sib.parent))
    return sorted(roots)


def worker_sys_path() -> list[str]:
    paths = [sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib")]
    dynload = Path(sysconfig.get_paths()["platstdlib"]) / "lib-dynload"
    paths.append(str(dynload))
    for root in _library_roots():
        if root not in paths:
            paths.append(root)
    return paths


def _read_only_roots() -> list[str]:
    """Directories the sandbox must see: the interpreter and the libraries, nothing else."""
    wanted = {
        os.path.realpath(sys.base_prefix),
        os.path.realpath(sys.prefix),
        os.path.dirname(os.path.realpath(sys.executable)),
        *[os.path.realpath(p) for p in worker_sys_path()],
    }
    system = ("/usr", "/lib", "/lib64", "/bin")
    roots: list[str] = []
    for p in sorted(wanted, key=len):
        if any(p == s or p.startswith(s + "/") for s in system):
            continue
        if not any(p == r or p.startswith(r + "/") for r in roots):
            roots.append(p)
    return roots


def bwrap_command(bwrap: str, scratch_mb: int, env: dict[str, str]) -> list[str]:
    cmd = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--clearenv"]
    # The private tmpfs first: the read-only binds below may live under /tmp (a checkout or a
    # virtual environment there) and must stay visible on top of it.
    cmd += ["--size", str(scratch_mb << 20), "--tmpfs", "/tmp"]
    for d in ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"):
        if os.path.exists(d):
            cmd += ["--ro-bind", d, d]
    for f in ("/etc/ld.so.cache", "/etc/localtime"):
        if os.path.exists(f):
            cmd += ["--ro-bind", f, f]
    for root in _read_only_roots():
        cmd += ["--ro-bind", root, root]
    cmd += ["--ro-bind", str(SANDBOX_PKG), MOUNT_PKG]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    cmd += ["--chdir", "/tmp"]
    for k, v in env.items():
        cmd += ["--setenv", k, v]
    return cmd


def worker_environment(scratch_root: str) -> dict[str, str]:
    """The worker's entire environment: nothing of the user's is passed on."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": scratch_root,
        "LANG": "C.UTF-8",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": os.path.join(scratch_root, ".matplotlib"),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYVISION_SCRATCH_ROOT": scratch_root,
        # Each episode is a fresh process: keep glibc from returning (and re-faulting) the
        # tens of MB an image turn allocates on every call.
        "MALLOC_MMAP_THRESHOLD_": str(32 << 20),
        "MALLOC_TRIM_THRESHOLD_": str(256 << 20),
    }


def warn_missing(report: IsolationReport, strict: bool) -> None:
    if not report.problems:
        return
    msg = "pyvision-gym runtime isolation is incomplete: " + "; ".join(report.problems) + f" [{report.describe()}]"
    if strict:
        raise IsolationError(msg)
    warnings.warn(msg, IsolationWarning, stacklevel=4)


_SPAWNER: tuple[int, ThreadPoolExecutor] | None = None
_SPAWNER_LOCK = threading.Lock()


def spawn(cmd: list[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` run on one long-lived thread of this process.

    Linux sends the parent-death signal (bubblewrap's ``--die-with-parent``, the zygote's
    ``PR_SET_PDEATHSIG``) when the *thread* that forked the child exits, not the process: a
    runtime started in a short-lived thread (a thread pool, a Ray actor call) would lose its
    sandbox when that thread ended. Forking from one thread that lives as long as the
    interpreter keeps the sandbox usable from any thread, and it still dies with the host.
    """
    global _SPAWNER
    with _SPAWNER_LOCK:
        if _SPAWNER is None or _SPAWNER[0] != os.getpid():  # a forked child has no such thread
            _SPAWNER = (os.getpid(), ThreadPoolExecutor(1, thread_name_prefix="pyvision-spawner"))
        executor = _SPAWNER[1]
    return executor.submit(subprocess.Popen, cmd, **popen_kwargs).result()
