"""Regression tests for bugs found by fuzzing and fault injection (issue 8)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gymnasium as gym
import pytest

import pyvision_gym  # noqa: F401 - registers the environments
from pyvision_gym import Runtime
from pyvision_gym.parsing import parse_action


def code(src: str) -> str:
    return f"<code>\n```python\n{src}\n```\n</code>"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    cache: Path = tmp_path_factory.mktemp("pvg-hardening")
    e = gym.make("PyVisionImage-Counting-v0", difficulty=0, max_turns=50, cache_dir=cache)
    yield e
    e.close()


def test_lone_surrogate_in_code_gives_an_observation(env):
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(code("print('\ud800')"))
    assert not (terminated or truncated)
    assert isinstance(obs["text"], str) and obs["text"]
    assert info["turn"] == 1 and len(env.unwrapped.transcript) == 1
    obs, *_ = env.step(code("print(40 + 2)"))
    assert obs["text"].strip() == "42"


def test_lone_surrogate_in_answer_scores(env):
    env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step("<answer>\\boxed{\udcff}</answer>")
    assert terminated and info["end_reason"] == "DONE" and info["correct"] is False


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("text", "kind", "answer"),
    [
        ("<answer>" + "\\boxed{" * 9000 + "</answer>", "answer", ""),
        ("<answer>" * 131072, "none", None),
        ("<code>" * 100_000, "none", None),
        ("```py" * 13_000, "none", None),
        ("<answer>\\boxed" + "{" * 65_000, "none", None),
    ],
)
def test_adversarial_turns_parse_in_linear_time(text, kind, answer):
    parsed = parse_action(text)
    assert parsed.kind == kind
    if answer is not None:
        # the innermost \boxed{ never closes; no complete box -> the text after the last \boxed{
        assert parsed.answer == answer


def test_over_long_action_is_refused_with_an_observation(env):
    env.reset(seed=0)
    limit = env.unwrapped.max_action_chars
    obs, reward, terminated, truncated, info = env.step("<answer>" * (limit // 8 + 1))
    assert not terminated and not truncated
    assert f"{limit:,}" in obs["text"] and "Nothing in it was run" in obs["text"]
    assert env.unwrapped.transcript[-1].error_type == "ActionTooLong" and info["turn"] == 1


def test_large_compile_error_keeps_the_episode_state(env):
    env.reset(seed=0)
    env.step(code("keep = 41"))
    obs, *_ = env.step(code("_a = 1\n" * 2500))
    assert "SyntaxError" in obs["text"] and "restarted" not in obs["text"]
    assert len(obs["text"]) < 10_000
    obs, *_ = env.step(code("print(keep + 1)"))
    assert obs["text"].strip() == "42"


def test_step_after_close_is_a_clear_error(tmp_path):
    e = gym.make("PyVisionImage-Counting-v0", difficulty=0, cache_dir=tmp_path)
    e.reset(seed=0)
    e.close()
    with pytest.raises(RuntimeError, match="closed"):
        e.step(code("print(1)"))
    obs, _ = e.reset(seed=1)  # reset after close starts a new runtime
    obs, *_ = e.step(code("print(1 + 1)"))
    assert obs["text"].strip() == "2"
    e.close()


def test_video_metadata_is_in_info(tmp_path):
    e = gym.make("PyVisionVideo-EventCounting-v0", difficulty=0, cache_dir=tmp_path)
    try:
        obs, info = e.reset(seed=0)
        meta = info["video"]
        assert set(meta) == {"frames", "fps", "duration", "width", "height"}
        assert meta["frames"] > 0 and meta["fps"] > 0
        assert meta["duration"] == pytest.approx(meta["frames"] / meta["fps"])
        assert f"{meta['frames']}" in obs["text"]
        _, _, _, _, info = e.step(code("print(len(video))"))
        assert info["video"] == meta
    finally:
        e.close()
    image_env = gym.make("PyVisionImage-Counting-v0", difficulty=0, cache_dir=tmp_path)
    _, info = image_env.reset(seed=0)
    assert "video" not in info
    image_env.close()


def test_env_reset_in_a_short_lived_thread_keeps_its_sandbox(tmp_path):
    e = gym.make("PyVisionImage-Counting-v0", difficulty=0, cache_dir=tmp_path)
    try:
        worker = threading.Thread(target=lambda: (e.reset(seed=0), e.step(code("keep = 41"))))
        worker.start()
        worker.join()
        time.sleep(0.5)  # a parent-death signal tied to the thread would have fired by now
        obs, *_ = e.step(code("print(keep + 1)"))
        assert obs["text"].strip() == "42"
        with ThreadPoolExecutor(2) as pool:  # and from other threads again, including a restart
            pool.submit(e.reset, seed=1).result()
            obs = pool.submit(e.step, code("print(6 * 7)")).result()[0]
        assert obs["text"].strip() == "42"
    finally:
        e.close()


HOST_SCRIPT = """
import os, signal, sys, threading
import gymnasium as gym, pyvision_gym
env = gym.make("PyVisionImage-Counting-v0", difficulty=0, cache_dir=sys.argv[1])
t = threading.Thread(target=env.reset, kwargs={"seed": 0}); t.start(); t.join()
print(env.unwrapped._runtime._proc.pid, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_sandbox_dies_with_a_killed_host(tmp_path):
    proc = subprocess.run([sys.executable, "-c", HOST_SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(pid)


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                kids = []
            out.extend(kids)
            todo.extend(kids)
    return out


def test_stopped_zygote_costs_a_step_its_own_timeout_only():
    with Runtime(timeout=2) as rt:
        rt.reset()
        zygote = next(p for p in [rt._proc.pid, *_descendants(rt._proc.pid)]
                      if "zygote_main" in Path(f"/proc/{p}/cmdline").read_text())
        os.kill(zygote, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            result = rt.run("while True:\n    pass")
            elapsed = time.monotonic() - t0
            assert result.error_type == "Timeout"
            assert elapsed < 30, elapsed  # was 2 s + start_timeout (120 s) before the fix
            assert rt.run("print(1 + 1)").output.strip() == "2"
        finally:
            os.kill(zygote, signal.SIGKILL)
