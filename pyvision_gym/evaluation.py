"""The evaluation runner behind ``pyvision-gym eval``: an agent on a frozen suite.

    summary = run_eval("expert", "demo-image-v0", "runs/expert-demo", workers=2)

Writes into ``out_dir``:

- ``run.json`` — what the directory holds: agent spec, suite name / version / hash; a
  later call with the same agent spec and suite hash resumes (finished tasks are skipped,
  new rows appended); anything else is refused.
- ``episodes.jsonl`` — one row per episode (fields: :data:`ROW_FIELDS`), with the
  transcript; rows are appended as episodes end and the file is rewritten in suite order
  (one row per task, the latest) when the run ends.
- ``images/<task_id>/tTT_KK.png`` — the images of turn TT (turn 0 is the first
  observation), downscaled to at most 768 px on the longest side.
- ``summary.json`` — :func:`summarize` over every row of the selected tasks.

Episodes run in lock-step batches: each worker keeps up to ``batch_size`` environments
busy and calls ``agent.act`` once per round with every episode that needs a turn.
``workers=K`` runs K spawned processes (``use_ray=True``: K Ray actors), each with its own
agent, environments and runtimes; per-episode results do not depend on the split for a
deterministic agent. An agent exception isolates the failing episode (the batch is
retried one episode at a time) and ends it as ``AGENT_ERROR``; an environment exception
ends it as ``ENV_ERROR``. Both count as wrong, and so does every task without a row: the
accuracy denominator is every selected task. On resume, ``AGENT_ERROR`` / ``ENV_ERROR``
rows are run again.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import multiprocessing
import os
import platform
import re
import subprocess
import time
import traceback
import warnings
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

__all__ = [
    "RETRY_END_REASONS",
    "ROW_FIELDS",
    "EvalWorker",
    "read_rows",
    "run_eval",
    "summarize",
    "task_content_hash",
    "wilson_interval",
]

RUN_FORMAT = "pyvision-gym-run/1"
RETRY_END_REASONS = ("AGENT_ERROR", "ENV_ERROR")
IMAGE_MAX_SIDE = 768
ROW_FIELDS = (
    "index", "task_id", "family", "modality", "difficulty", "seed", "question", "answer",
    "ground_truth", "answer_type", "correct", "accuracy", "reward", "reward_terms", "turns",
    "tool_calls", "tool_errors", "images_shown", "end_reason", "error", "visual_tokens",
    "visual_tokens_full_video", "wall_s", "task_hash", "transcript",
)
REPO_ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- hashing
def task_content_hash(task: Any) -> str:
    """sha256 over a task's id, question, answer (type, options, tolerance) and media bytes:
    each image's name, mode, size and pixels; the video file's bytes."""
    h = hashlib.sha256()
    meta = {
        "task_id": task.task_id, "question": task.question, "answer": task.answer,
        "answer_type": task.answer_type, "options": task.options, "tolerance": float(task.tolerance),
    }
    h.update(json.dumps(meta, sort_keys=True, ensure_ascii=False).encode())
    for name in sorted(task.images):
        im = task.images[name]
        h.update(json.dumps(["image", name, im.mode, list(im.size)]).encode())
        h.update(im.tobytes())
    if task.video_path:
        h.update(b'["video"]')
        with open(task.video_path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------- statistics
def wilson_interval(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95% Wilson score interval for a proportion (``successes`` may be fractional: MRA)."""
    if n <= 0:
        return (0.0, 1.0)
    p = min(max(successes / n, 0.0), 1.0)
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, round(centre - half, 12)), min(1.0, round(centre + half, 12)))


def _acc_block(rows: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Accuracy over ``rows`` where ``None`` is a task without a row (wrong)."""
    n = len(rows)
    acc = sum(float(r["accuracy"]) for r in rows if r)
    correct = sum(bool(r["correct"]) for r in rows if r)
    lo, hi = wilson_interval(acc, n)
    return {"n": n, "correct": correct, "accuracy": acc / n if n else 0.0, "ci95": [lo, hi]}


def _mean(xs: Sequence[float]) -> float | None:
    return float(sum(xs) / len(xs)) if xs else None


def versions() -> dict[str, Any]:
    """Package, interpreter and library versions, and the git commit when in a checkout."""
    import gymnasium

    from . import __version__

    out: dict[str, Any] = {
        "pyvision_gym": __version__, "python": platform.python_version(),
        "gymnasium": gymnasium.__version__, "numpy": np.__version__, "git_commit": None, "git_dirty": None,
    }
    if (REPO_ROOT / ".git").exists():
        try:
            run = lambda *a: subprocess.run(["git", "-C", str(REPO_ROOT), *a], capture_output=True, text=True, timeout=10)  # noqa: E731
            head = run("rev-parse", "HEAD")
            if head.returncode == 0:
                out["git_commit"] = head.stdout.strip()
                st = run("status", "--porcelain", "--untracked-files=no")
                out["git_dirty"] = bool(st.stdout.strip()) if st.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            pass
    return out


def summarize(
    rows: Iterable[dict[str, Any]],
    suite: Any,
    episodes: int | None = None,
    agent: dict[str, Any] | None = None,
    run: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of a run: accuracy (Wilson 95%) overall, per family and per difficulty,
    turns, tool use, visual tokens, end reasons, wall time, identity and versions.

    The denominator is every selected task of ``suite`` (the first ``episodes``); a task
    without a row counts as wrong, and rows of other tasks are ignored. Later rows of a
    task replace earlier ones. ``accuracy`` is the mean per-episode accuracy (partial
    credit for MRA-scored answers; the fraction correct otherwise).
    """
    tasks = _suite_tasks(suite)[: episodes if episodes is not None else None]
    latest: dict[str, dict[str, Any]] = {}
    for r in rows:
        latest[r["task_id"]] = r
    per_task = [latest.get(t["task_id"]) for t in tasks]
    done = [r for r in per_task if r is not None]

    def group(key: str) -> dict[str, Any]:
        out: dict[str, list[dict[str, Any] | None]] = {}
        for t, r in zip(tasks, per_task, strict=True):
            out.setdefault(str(t.get(key)), []).append(r)
        res = {}
        for k, rs in out.items():
            block = _acc_block(rs)
            got = [r for r in rs if r]
            block["mean_turns"] = _mean([r["turns"] for r in got])
            block["mean_tool_calls"] = _mean([r["tool_calls"] for r in got])
            block["mean_visual_tokens"] = _mean([r["visual_tokens"] for r in got])
            res[k] = block
        return res

    tokens = [int(r["visual_tokens"]) for r in done]
    full = [int(r["visual_tokens_full_video"]) for r in done if r.get("visual_tokens_full_video") is not None]
    vt: dict[str, Any] = {"mean": _mean(tokens), "total": sum(tokens)}
    if full:
        vt.update(full_video_mean=_mean(full), full_video_total=sum(full), ratio_to_full_video=(sum(tokens) / sum(full)) if sum(full) else None)
    name = _suite_attr(suite, "name")
    summary: dict[str, Any] = {
        "suite": {
            "name": name, "version": _suite_attr(suite, "version"), "modality": _suite_attr(suite, "modality"),
            "hash": _suite_attr(suite, "hash"), "tasks_in_suite": len(_suite_tasks(suite)),
        },
        "agent": agent,
        "episodes": len(tasks),
        "completed": len(done),
        "missing": len(tasks) - len(done),
        "unfinished": len(tasks) - len(done) + sum(r["end_reason"] in RETRY_END_REASONS for r in done),
        "accuracy": _acc_block(per_task),
        "per_family": group("family"),
        "per_difficulty": group("difficulty"),
        "mean_reward": _mean([float(r["reward"]) for r in done]),
        "mean_turns": _mean([r["turns"] for r in done]),
        "mean_tool_calls": _mean([r["tool_calls"] for r in done]),
        "mean_tool_errors": _mean([r["tool_errors"] for r in done]),
        "zero_tool_call_share": _mean([float(r["tool_calls"] == 0) for r in done]),
        "visual_tokens": vt,
        "end_reasons": dict(sorted(Counter(r["end_reason"] for r in done).items())),
        "wall_s": {
            "episodes_total": float(sum(float(r["wall_s"]) for r in done)),
            "episode_mean": _mean([float(r["wall_s"]) for r in done]),
        },
        "versions": versions(),
    }
    if run:
        summary["run"] = run
    return summary


def _suite_attr(suite: Any, key: str) -> Any:
    return suite.get(key) if isinstance(suite, dict) else getattr(suite, key, None)


def _suite_tasks(suite: Any) -> list[dict[str, Any]]:
    return list(_suite_attr(suite, "tasks") or [])


# ---------------------------------------------------------------------- the worker
def _safe_name(task_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:100]
    if safe != task_id:
        safe += "-" + hashlib.sha1(task_id.encode()).hexdigest()[:8]
    return safe


def _png(arr: np.ndarray) -> bytes:
    im = Image.fromarray(np.asarray(arr, dtype=np.uint8))
    if max(im.size) > IMAGE_MAX_SIDE:
        im.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _error_text(exc: BaseException) -> str:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    text = "".join(tb)
    return text[-4000:]


@dataclass
class _Slot:
    """One running episode inside a worker."""

    index: int
    spec: dict[str, Any]
    env: Any
    episode: Any
    task: Any
    t0: float
    task_hash: str
    transcript: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    reward: float = 0.0


class EvalWorker:
    """Runs suite tasks with one agent and a pool of environments (one process or actor).

    ``suite_cfg``: ``modality``, ``split``, ``env_kwargs``, ``families`` (generated suites)
    or ``dataset`` (absolute path), ``cache_dir``. ``agent``: a spec string or an agent.
    """

    def __init__(self, agent: Any, suite_cfg: dict[str, Any], batch_size: int = 4, save_images: bool = True) -> None:
        from pyvision_gym.agents.registry import make_agent

        self.agent = make_agent(agent) if isinstance(agent, str) else agent
        self.cfg = dict(suite_cfg)
        self.batch_size = max(1, int(batch_size))
        self.save_images = bool(save_images)
        self._envs: list[Any] = []  # idle environments
        self._pool: ThreadPoolExecutor | None = None

    def describe(self) -> dict[str, Any]:
        return self.agent.describe()

    # -------------------------------------------------------------- environments
    def _make_env(self) -> Any:
        from .env import PyVisionEnv
        from .runtime import RuntimeConfig

        kw = dict(self.cfg.get("env_kwargs") or {})
        kw.update(getattr(self.agent, "env_overrides", None) or {})
        rt_over = dict(getattr(self.agent, "runtime_overrides", None) or {})
        if rt_over:
            kw["runtime_config"] = RuntimeConfig(**rt_over)
        src: dict[str, Any] = {"dataset": self.cfg["dataset"]} if self.cfg.get("dataset") else {"families": list(self.cfg["families"])}
        return PyVisionEnv(
            modality=self.cfg["modality"], split=self.cfg.get("split", "test"), cache_dir=self.cfg.get("cache_dir"), **src, **kw
        )

    def _take_env(self) -> Any:
        return self._envs.pop() if self._envs else self._make_env()

    def _give_env(self, env: Any, broken: bool = False) -> None:
        if broken:
            try:
                env.close()
            except Exception:  # noqa: BLE001 - a broken env may fail to close
                pass
        else:
            self._envs.append(env)

    def close(self) -> None:
        """Close every environment (their runtimes) and the agent."""
        for env in self._envs:
            env.close()
        self._envs = []
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.agent.close()

    # -------------------------------------------------------------- one episode
    def _images(self, slot: _Slot, turn: int, images: Sequence[np.ndarray]) -> list[str]:
        if not self.save_images:
            return []
        paths = []
        for k, arr in enumerate(images):
            rel = f"images/{_safe_name(slot.spec['task_id'])}/t{turn:02d}_{k:02d}.png"
            slot.files[rel] = _png(arr)
            paths.append(rel)
        return paths

    def _start(self, index: int, spec: dict[str, Any], env: Any) -> _Slot | tuple[dict[str, Any], dict[str, bytes]]:
        """Reset ``env`` onto the task (thread-safe: touches only ``env`` and the new slot)."""
        from pyvision_gym.rollout.agent import Episode, Observation

        t0 = time.perf_counter()
        try:
            if self.cfg.get("dataset"):
                obs, info = env.reset(options={"index": int(spec["index"])})
            else:
                obs, info = env.reset(seed=int(spec["seed"]), options={"family": spec["family"], "difficulty": int(spec["difficulty"])})
            task = env.task
            thash = task_content_hash(task)
        except Exception as exc:  # noqa: BLE001 - a task that cannot start is an unfinished episode
            return self._error_row(index, spec, None, "ENV_ERROR", f"reset failed: {_error_text(exc)}", t0), {}
        ep = Episode(
            episode_id=str(spec["task_id"]), modality=self.cfg["modality"],
            first=Observation(obs["text"], tuple(obs["images"])),
            task=task if getattr(self.agent, "privileged", False) else None, info=dict(info),
        )
        slot = _Slot(index=index, spec=spec, env=env, episode=ep, task=task, t0=t0, task_hash=thash, info=dict(info))
        slot.transcript.append({"turn": 0, "action": None, "observation": obs["text"], "images": self._images(slot, 0, obs["images"])})
        return slot

    def _step(self, slot: _Slot, action: str) -> bool:
        """Apply one action; True when the episode ended."""
        from pyvision_gym.rollout.agent import Observation

        obs, reward, terminated, truncated, info = slot.env.step(action)
        turn = int(info["turn"])
        slot.transcript.append({"turn": turn, "action": action, "observation": obs["text"], "images": self._images(slot, turn, obs["images"])})
        slot.episode.turns.append((action, Observation(obs["text"], tuple(obs["images"]))))
        slot.episode.info = dict(info)
        slot.info, slot.reward = dict(info), float(reward)
        return bool(terminated or truncated)

    def _row(self, slot: _Slot, end_reason: str | None = None, error: str | None = None) -> dict[str, Any]:
        info, task = slot.info, slot.task
        ended = end_reason is None
        return {
            "index": slot.index,
            "task_id": task.task_id,
            "family": task.family,
            "modality": task.modality,
            "difficulty": slot.spec.get("difficulty", task.difficulty),
            "seed": slot.spec.get("seed"),
            "question": task.question,
            "answer": info.get("answer") if ended else None,
            "ground_truth": task.answer,
            "answer_type": task.answer_type,
            "correct": bool(info.get("correct", False)) if ended else False,
            "accuracy": float(info.get("accuracy", 0.0)) if ended else 0.0,
            "reward": slot.reward if ended else 0.0,
            "reward_terms": dict(info.get("reward_terms") or {}) if ended else {},
            "turns": int(info.get("turn", 0)),
            "tool_calls": int(info.get("tool_calls", 0)),
            "tool_errors": int(info.get("tool_errors", 0)),
            "images_shown": int(info.get("images_shown", 0)),
            "end_reason": info.get("end_reason") if ended else end_reason,
            "error": error,
            "visual_tokens": int(info.get("visual_tokens", 0)),
            "visual_tokens_full_video": info.get("visual_tokens_full_video"),
            "wall_s": round(time.perf_counter() - slot.t0, 4),
            "task_hash": slot.task_hash,
            "transcript": slot.transcript,
        }

    def _error_row(self, index: int, spec: dict[str, Any], task: Any, reason: str, error: str, t0: float) -> dict[str, Any]:
        return {
            "index": index, "task_id": spec["task_id"], "family": spec.get("family"), "modality": self.cfg["modality"],
            "difficulty": spec.get("difficulty"), "seed": spec.get("seed"), "question": None, "answer": None,
            "ground_truth": None, "answer_type": None, "correct": False, "accuracy": 0.0, "reward": 0.0,
            "reward_terms": {}, "turns": 0, "tool_calls": 0, "tool_errors": 0, "images_shown": 0,
            "end_reason": reason, "error": error, "visual_tokens": 0, "visual_tokens_full_video": None,
            "wall_s": round(time.perf_counter() - t0, 4), "task_hash": None, "transcript": [],
        }

    # -------------------------------------------------------------- the lock-step loop
    def _act(self, slots: Sequence[_Slot]) -> list[str | BaseException]:
        """``agent.act`` on the batch; on failure, one episode at a time to isolate the culprit."""
        eps = [s.episode for s in slots]
        try:
            out = self.agent.act(eps)
            if not isinstance(out, (list, tuple)) or len(out) != len(eps):
                raise TypeError(f"agent.act returned {type(out).__name__} of length {len(out) if hasattr(out, '__len__') else '?'} for {len(eps)} episodes")
            bad = [type(a).__name__ for a in out if not isinstance(a, str)]
            if bad:
                raise TypeError(f"agent.act must return strings, got {bad[0]}")
            return list(out)
        except Exception as exc:  # noqa: BLE001 - agent failures become AGENT_ERROR episodes
            if len(slots) == 1:
                return [exc]
            return [self._act([s])[0] for s in slots]

    def _map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        """``fn`` over ``items`` on the worker's threads (each item owns its environment)."""
        if len(items) <= 1:
            return [fn(x) for x in items]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.batch_size, thread_name_prefix="pvg-env")
        return list(self._pool.map(fn, items))

    def _apply(self, slot: _Slot, action: str | BaseException) -> tuple[str, str | None]:
        """Step one episode: ("running" | "ended" | "AGENT_ERROR" | "ENV_ERROR", error text)."""
        if isinstance(action, BaseException):
            return "AGENT_ERROR", f"agent failed: {_error_text(action)}"
        try:
            return ("ended" if self._step(slot, action) else "running"), None
        except Exception as exc:  # noqa: BLE001 - env failures become ENV_ERROR episodes
            return "ENV_ERROR", f"step failed: {_error_text(exc)}"

    def run(
        self, items: Sequence[tuple[int, dict[str, Any]]], on_row: Callable[[dict[str, Any], dict[str, bytes]], None] | None = None
    ) -> list[tuple[dict[str, Any], dict[str, bytes]]]:
        """Run ``(suite index, task entry)`` items; returns ``(row, files)`` in suite order."""
        pending = deque(items)
        active: list[_Slot] = []
        results: list[tuple[dict[str, Any], dict[str, bytes]]] = []

        def done(row: dict[str, Any], files: dict[str, bytes]) -> None:
            results.append((row, files))
            if on_row is not None:
                on_row(row, files)

        while pending or active:
            new = []
            while pending and len(active) + len(new) < self.batch_size:
                new.append((*pending.popleft(), self._take_env()))
            for started, (_, _, env) in zip(self._map(lambda a: self._start(*a), new), new, strict=True):
                if isinstance(started, _Slot):
                    active.append(started)
                else:
                    self._give_env(env, broken=True)
                    done(*started)
            if not active:
                continue
            actions = self._act(active)
            outcomes = self._map(lambda sa: self._apply(*sa), list(zip(active, actions, strict=True)))
            still: list[_Slot] = []
            for slot, (state, err) in zip(active, outcomes, strict=True):
                if state == "running":
                    still.append(slot)
                    continue
                self._give_env(slot.env, broken=state == "ENV_ERROR")
                done(self._row(slot, None if state == "ended" else state, err), slot.files)
            active = still
        results.sort(key=lambda rf: rf[0]["index"])
        return results


# ---------------------------------------------------------------------- process / Ray workers
_PROC_WORKER: EvalWorker | None = None


def _proc_init(agent: Any, suite_cfg: dict[str, Any], batch_size: int, save_images: bool) -> None:
    global _PROC_WORKER
    from multiprocessing import util

    _PROC_WORKER = EvalWorker(agent, suite_cfg, batch_size, save_images)
    util.Finalize(None, _PROC_WORKER.close, exitpriority=10)


def _proc_run(items: list[tuple[int, dict[str, Any]]]) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, bytes]]]]:
    assert _PROC_WORKER is not None
    return _PROC_WORKER.describe(), _PROC_WORKER.run(items)


def _ray_temp_dir() -> Path:
    base = REPO_ROOT / ".cache" if os.access(REPO_ROOT, os.W_OK) else Path(os.environ.get("PYVISION_GYM_CACHE", Path.home() / ".cache" / "pyvision-gym")).expanduser()
    return base / "ray"


def _ray_init(workers: int) -> bool:
    """Connect to Ray (``RAY_ADDRESS`` set: the cluster; else a local one). True when we started it."""
    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address="auto", log_to_driver=False)
    else:
        tmp = _ray_temp_dir()
        tmp.mkdir(parents=True, exist_ok=True)
        ray.init(num_cpus=max(1, workers), include_dashboard=False, _temp_dir=str(tmp), log_to_driver=False)
    return True


# ---------------------------------------------------------------------- the driver
def _suite_cfg(suite: Any, cache_dir: Path) -> dict[str, Any]:
    tasks = _suite_tasks(suite)
    dataset = _suite_attr(suite, "dataset_path")
    dataset = dataset() if callable(dataset) else dataset
    return {
        "modality": _suite_attr(suite, "modality"),
        "split": _suite_attr(suite, "split") or "test",
        "env_kwargs": dict(_suite_attr(suite, "env_kwargs") or {}),
        "families": sorted({t["family"] for t in tasks}) if not dataset else None,
        "dataset": str(dataset) if dataset else None,
        "cache_dir": str(cache_dir),
    }


def read_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Rows of an ``episodes.jsonl``; a torn last line (an interrupted write) is dropped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows, torn = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            torn = True
    if torn:
        _write_rows(path, rows)
    return rows


def _write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def _suites_module() -> Any:
    from pyvision_gym.benchmarks import suites

    return suites


def _load_suite(suite: Any) -> Any:
    """A suite name, file or parsed suite-file dict as a ``Suite``; other objects as given."""
    if isinstance(suite, (str, os.PathLike)):
        return _suites_module().load_suite(suite)
    if isinstance(suite, dict):
        mod = _suites_module()
        return mod.load_suite(mod._from_json(suite, None))
    return suite


class SuiteMismatchError(ValueError):
    """A generated task differs from the suite's frozen per-task hash."""


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def run_eval(
    agent_spec: Any,
    suite: Any,
    out_dir: str | os.PathLike[str],
    episodes: int | None = None,
    workers: int = 1,
    use_ray: bool = False,
    progress: bool = True,
    *,
    batch_size: int = 4,
    cache_dir: str | os.PathLike[str] | None = None,
    save_images: bool = True,
    check_hashes: bool = True,
    ray_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``agent_spec`` (a spec string, or an ``Agent`` for in-process / picklable use) on
    ``suite`` (name, file or loaded suite) into ``out_dir``; returns the summary.

    ``episodes``: only the first N tasks. ``workers``: processes (or Ray actors with
    ``use_ray``). ``batch_size``: concurrent episodes per worker (one environment and
    runtime each). ``cache_dir``: generated media (default: the environment's). With
    ``check_hashes`` every generated task is compared with the suite's frozen task hash
    and a mismatch stops the run (:class:`SuiteMismatchError`). ``ray_options``: resources
    of each Ray actor (default ``{"num_cpus": 1}``; e.g. ``{"num_gpus": 1}`` for a VLM).
    """
    from .env import default_cache_dir

    t_start = time.perf_counter()
    suite = _load_suite(suite)
    tasks = _suite_tasks(suite)
    if episodes is not None:
        if episodes < 0:
            raise ValueError(f"episodes must be >= 0, got {episodes}")
        tasks = tasks[:episodes]
    if workers < 1 or batch_size < 1:
        raise ValueError(f"workers and batch_size must be >= 1, got {workers} and {batch_size}")
    spec = agent_spec if isinstance(agent_spec, str) else (getattr(agent_spec, "spec", "") or type(agent_spec).__name__)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    suite_name, suite_hash = _suite_attr(suite, "name"), _suite_attr(suite, "hash")

    run_path, rows_path = out / "run.json", out / "episodes.jsonl"
    run_info: dict[str, Any] = {
        "format": RUN_FORMAT, "agent_spec": spec, "agent": None, "suite": suite_name,
        "suite_version": _suite_attr(suite, "version"), "suite_hash": suite_hash, "created": _now(), "runs": [],
    }
    if run_path.is_file():
        old = json.loads(run_path.read_text())
        if old.get("agent_spec") != spec or old.get("suite_hash") != suite_hash:
            raise ValueError(
                f"{out} holds a run of agent {old.get('agent_spec')!r} on suite {old.get('suite')!r} "
                f"(hash {str(old.get('suite_hash'))[:12]}…), not agent {spec!r} on {suite_name!r} "
                f"(hash {str(suite_hash)[:12]}…): use another output directory"
            )
        run_info = {**run_info, **old}
    elif rows_path.exists():
        raise ValueError(f"{rows_path} exists without run.json: cannot tell which agent and suite it holds")

    rows = read_rows(rows_path)
    finished = {r["task_id"] for r in rows if r.get("end_reason") not in RETRY_END_REASONS}
    todo = [(i, t) for i, t in enumerate(tasks) if t["task_id"] not in finished]
    old_agent: dict[str, Any] | None = run_info.get("agent")
    agent_desc = old_agent
    backend = "ray" if use_ray else ("processes" if workers > 1 else "local")
    this_run = {"started": _now(), "backend": backend, "workers": workers, "batch_size": batch_size, "episodes": episodes, "to_run": len(todo)}
    run_info["runs"] = list(run_info.get("runs") or []) + [this_run]
    run_path.write_text(json.dumps(run_info, indent=2))

    from tqdm import tqdm

    bar = tqdm(total=len(tasks), initial=len(tasks) - len(todo), desc=f"{spec} on {suite_name}", unit="ep", disable=not progress, dynamic_ncols=True)
    f_rows = open(rows_path, "a", encoding="utf-8")

    def record(row: dict[str, Any], files: dict[str, bytes]) -> None:
        entry = tasks[row["index"]]
        got, want = row.get("task_hash"), entry.get("hash")
        if check_hashes and got and (row["task_id"] != entry["task_id"] or (want and got != want)):
            raise SuiteMismatchError(
                f"suite {suite_name!r} task {entry['task_id']} was generated as {row['task_id']} with content hash "
                f"{got[:16]}…, but the suite froze {str(want)[:16]}…: the task generators, fonts or video encoder "
                "differ from the ones that froze the suite (or its task list was edited), so results would not be "
                "comparable (see benchmarks.suites.verify_suite)"
            )
        for rel, data in files.items():
            p = out / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        f_rows.write(json.dumps(row, ensure_ascii=False) + "\n")
        f_rows.flush()
        rows.append(row)
        bar.update(1)

    cfg = _suite_cfg(suite, cache)
    chunks = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
    try:
        if not todo:
            pass
        elif use_ray:
            agent_desc = _run_ray(agent_spec, cfg, chunks, workers, batch_size, save_images, record, ray_options) or agent_desc
        elif workers > 1:
            agent_desc = _run_processes(agent_spec, cfg, chunks, workers, batch_size, save_images, record) or agent_desc
        else:
            worker = EvalWorker(agent_spec, cfg, batch_size, save_images)
            try:
                agent_desc = worker.describe()
                worker.run(todo, on_row=record)
            finally:
                worker.close()
    finally:
        f_rows.close()
        bar.close()
        latest: dict[str, dict[str, Any]] = {}
        for r in rows:
            latest[r["task_id"]] = r
        order = {t["task_id"]: i for i, t in enumerate(_suite_tasks(suite))}
        _write_rows(rows_path, sorted(latest.values(), key=lambda r: order.get(r["task_id"], len(order))))
        this_run["finished"] = _now()
        this_run["seconds"] = round(time.perf_counter() - t_start, 3)
        run_info["agent"] = agent_desc
        run_path.write_text(json.dumps(run_info, indent=2))
    if agent_desc and old_agent and agent_desc != old_agent:
        warnings.warn(f"agent identity changed across resumed runs: {old_agent} -> {agent_desc}", stacklevel=2)
    summary = summarize(
        rows, suite, episodes=episodes, agent=agent_desc or {"spec": spec},
        run={"out_dir": str(out), "backend": backend, "workers": workers, "batch_size": batch_size, "seconds": this_run["seconds"], "ran": len(todo)},
    )
    summary["wall_s"]["runs_total"] = round(sum(float(r.get("seconds") or 0.0) for r in run_info["runs"]), 3)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _run_processes(agent: Any, cfg: dict[str, Any], chunks: list[Any], workers: int, batch_size: int, save_images: bool, record: Callable[..., None]) -> dict[str, Any] | None:
    ctx = multiprocessing.get_context("spawn")
    desc = None
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=ctx, initializer=_proc_init, initargs=(agent, cfg, batch_size, save_images)) as pool:
        futures: set[Future[Any]] = {pool.submit(_proc_run, c) for c in chunks}
        try:
            while futures:
                finished, futures = wait(futures, return_when=FIRST_COMPLETED)
                for fut in finished:
                    desc, results = fut.result()
                    for row, files in results:
                        record(row, files)
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise
    return desc


def _run_ray(
    agent: Any, cfg: dict[str, Any], chunks: list[Any], workers: int, batch_size: int, save_images: bool,
    record: Callable[..., None], ray_options: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    import ray

    started = _ray_init(workers)
    actor_cls = ray.remote(**(ray_options or {"num_cpus": 1}))(EvalWorker)
    actors = [actor_cls.remote(agent, cfg, batch_size, save_images) for _ in range(min(workers, len(chunks)))]
    desc = None
    try:
        queue = deque(chunks)
        running: dict[Any, Any] = {}
        for a in actors:
            if queue:
                running[a.run.remote(queue.popleft())] = a
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                a = running.pop(ref)
                for row, files in ray.get(ref):
                    record(row, files)
                if queue:
                    running[a.run.remote(queue.popleft())] = a
        desc = ray.get(actors[0].describe.remote()) if actors else None
        ray.get([a.close.remote() for a in actors])
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
    return desc
