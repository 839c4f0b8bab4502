"""The OS layer on its own: what the sandbox contains even if the language layer were bypassed.

These tests run *unrestricted* Python inside the same bubblewrap command, rlimits and seccomp
filter the runtime uses, and check that the host's files, environment and network stay out
of reach and that processes cannot be started.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pyvision_gym import isolation

SCRIPT = r"""
import json, os, socket, subprocess, sys, resource
import importlib.util as u
pkg = sys.argv[1]
s = u.spec_from_file_location('pvg_sandbox', pkg + '/__init__.py', submodule_search_locations=[pkg])
m = u.module_from_spec(s); sys.modules['pvg_sandbox'] = m; s.loader.exec_module(m)
from pvg_sandbox import limits
res = {}
def attempt(name, fn):
    try:
        res[name] = ['ok', repr(fn())[:200]]
    except BaseException as e:
        res[name] = ['refused', type(e).__name__ + ': ' + str(e)[:200]]
secret, target, port = sys.argv[2], sys.argv[3], int(sys.argv[4])
attempt('read_secret', lambda: open(secret).read())
attempt('read_repo', lambda: open(sys.argv[5]).read())
attempt('env_secret', lambda: os.environ['PYVISION_TEST_SECRET'])
attempt('write_host_path', lambda: open(target, 'w').write('pwned'))
attempt('write_usr', lambda: open('/usr/pwned', 'w').write('x'))
attempt('tcp_connect', lambda: socket.create_connection(('127.0.0.1', port), timeout=2).close())
attempt('list_home', lambda: os.listdir('/root') + os.listdir('/home'))
attempt('write_scratch', lambda: open('/tmp/ok.txt', 'w').write('fine'))
failed = limits.apply_rlimits({'cpu_seconds': 30, 'memory_mb': 512, 'max_file_mb': 1, 'max_open_files': 64, 'max_processes': 64})
err = limits.apply_seccomp()
res['layers'] = [failed, err]
attempt('fork', lambda: os.fork())
attempt('subprocess', lambda: subprocess.run(['/bin/true']).returncode)
attempt('inet_socket', lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt('kill_pid1', lambda: os.kill(1, 9))
attempt('raise_rlimit', lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 40, 1 << 40)))
attempt('big_file', lambda: open('/tmp/big', 'wb').write(b'x' * (2 << 20)))
attempt('thread', lambda: __import__('threading').Thread(target=lambda: None).start())
print(json.dumps(res))
"""


@pytest.fixture(scope="module")
def bwrap() -> str:
    path, why = isolation.bubblewrap_status()
    if path is None:
        pytest.skip(f"bubblewrap unavailable on this machine: {why}")
    return path


def test_sandbox_contains_unrestricted_code(bwrap, tmp_path: Path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN-5f1c9e")
    target = tmp_path / "written.txt"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    env = isolation.worker_environment(isolation.SCRATCH_IN_SANDBOX)
    cmd = isolation.bwrap_command(bwrap, 16, env)
    readme = Path(__file__).resolve().parents[1] / "pyproject.toml"
    python = os.path.realpath(sys.executable)
    paths = isolation.worker_sys_path()
    script = f"import sys; sys.path[:0] = {paths!r}\n" + textwrap.dedent(SCRIPT)
    proc = subprocess.run(
        [*cmd, python, "-I", "-S", "-c", script, isolation.MOUNT_PKG, str(secret), str(target), str(port), str(readme)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYVISION_TEST_SECRET": "TOKEN-env"},
    )
    listener.close()
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "TOKEN" not in proc.stdout
    for name in ("read_secret", "read_repo", "env_secret", "write_host_path", "write_usr", "tcp_connect"):
        assert res[name][0] == "refused", (name, res[name])
    assert not target.exists()
    assert res["write_scratch"][0] == "ok"  # the private tmpfs is the one writable place
    assert res["layers"] == [[], None]
    for name in ("fork", "subprocess", "inet_socket", "kill_pid1", "raise_rlimit", "big_file"):
        assert res[name][0] == "refused", (name, res[name])
    assert "File too large" in res["big_file"][1]
    assert res["thread"][0] == "ok"  # threads stay available to numpy and the video decoder
