"""Per-episode process limits applied inside the worker before any agent code runs.

rlimits bound CPU time, address space, file size, open files and processes; a seccomp
filter (libseccomp through ``pyseccomp``) refuses new processes, program execution,
network sockets, tracing and namespace / mount / kernel-interface system calls.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
from typing import Any

_CLONE_THREAD = 0x00010000
_AF_UNIX = 1

# Refused outright (EPERM): these have no use in vision code and are the usual escape or
# privilege paths once native code is reachable.
_DENIED_SYSCALLS = (
    "fork", "vfork", "tkill", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev",
    "connect", "bind", "listen", "accept", "accept4", "mount", "umount2", "pivot_root", "chroot",
    "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open",
    "init_module", "finit_module", "delete_module", "kexec_load", "reboot", "swapon", "swapoff",
    "syslog", "acct", "userfaultfd", "open_by_handle_at", "name_to_handle_at", "io_uring_setup",
    "setrlimit", "prlimit64", "setuid", "setgid", "setreuid", "setregid", "setresuid",
    "setresgid", "setgroups", "mknod", "mknodat", "personality",
)


def _vm_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


def apply_rlimits(limits: dict[str, Any]) -> list[str]:
    """Apply the configured rlimits; return the names of those that could not be set."""
    failed: list[str] = []
    mb = 1 << 20
    cpu = int(limits["cpu_seconds"])
    wanted = {
        "RLIMIT_CPU": (cpu, cpu + 1),
        "RLIMIT_AS": (_vm_bytes() + int(limits["memory_mb"]) * mb,) * 2,
        "RLIMIT_FSIZE": (int(limits["max_file_mb"]) * mb,) * 2,
        "RLIMIT_NOFILE": (int(limits["max_open_files"]),) * 2,
        "RLIMIT_NPROC": (int(limits["max_processes"]),) * 2,
        "RLIMIT_CORE": (0, 0),
    }
    for name, value in wanted.items():
        try:
            resource.setrlimit(getattr(resource, name), value)
        except (ValueError, OSError):
            failed.append(name)
    # A too-large write should fail with an error the agent sees, not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return failed


def seccomp_available() -> bool:
    try:
        import pyseccomp  # noqa: F401
    except (ImportError, OSError):
        return False
    return True


def apply_seccomp() -> str | None:
    """Install the filter; return None on success or the reason it is not in force."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:
        return f"libseccomp unavailable ({exc})"
    try:
        f = sc.SyscallFilter(sc.ALLOW)
        deny = sc.ERRNO(errno.EPERM)
        for name in _DENIED_SYSCALLS:
            try:
                f.add_rule(deny, name)
            except (OSError, ValueError, RuntimeError):
                pass  # not a syscall on this architecture
        # clone: threads are fine (numpy, decoders), new processes are not.
        f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, _CLONE_THREAD, 0))
        # clone3 hides its flags in memory the filter cannot read: make libc fall back to clone.
        f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
        f.add_rule(sc.ERRNO(errno.EAFNOSUPPORT), "socket", sc.Arg(0, sc.NE, _AF_UNIX))
        me = os.getpid()
        f.add_rule(deny, "kill", sc.Arg(0, sc.NE, me))
        f.add_rule(deny, "tgkill", sc.Arg(0, sc.NE, me))
        f.load()
    except Exception as exc:  # libseccomp reports failures as OSError / RuntimeError
        return f"seccomp filter could not be installed ({exc})"
    return None
