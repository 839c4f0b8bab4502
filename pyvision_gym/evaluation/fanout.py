"""Fan tasks out to evaluation workers: in-process, worker processes, or Ray actors.

Every backend takes chunks of :class:`~pyvision_gym.rollout.records.TaskSpec` and calls
``record(row, files)`` in the calling process as episodes finish; each returns the agent's
``describe()`` (None when nothing ran). Workers each build their own agent, environments and
runtimes; a deterministic agent gives the same rows whatever the split.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import util
from pathlib import Path
from typing import Any

from pyvision_gym.env import default_cache_dir
from pyvision_gym.rollout.agent import Agent
from pyvision_gym.rollout.records import TaskSpec

from .config import SuiteConfig
from .worker import AgentRef, EvalWorker, Result

__all__ = ["fan_out", "ray_init", "run_local", "run_processes", "run_ray"]

Record = Callable[[dict[str, Any], dict[str, bytes]], None]
AgentArg = Agent | AgentRef | str


def run_local(agent: AgentArg, config: SuiteConfig, specs: Sequence[TaskSpec], batch_size: int, save_images: bool, record: Record) -> dict[str, Any]:
    """Every task in this process, on one worker."""
    worker = EvalWorker(agent, config, batch_size, save_images)
    try:
        desc = worker.describe()
        worker.run(specs, on_row=record)
    finally:
        worker.close()
    return desc


# ---------------------------------------------------------------------- worker processes
_PROC_WORKER: EvalWorker | None = None


def _proc_init(agent: AgentArg, config: SuiteConfig, batch_size: int, save_images: bool) -> None:
    global _PROC_WORKER
    _PROC_WORKER = EvalWorker(agent, config, batch_size, save_images)
    util.Finalize(None, _PROC_WORKER.close, exitpriority=10)


def _proc_run(specs: list[TaskSpec]) -> tuple[dict[str, Any], list[Result]]:
    assert _PROC_WORKER is not None
    return _PROC_WORKER.describe(), _PROC_WORKER.run(specs)


def run_processes(
    agent: AgentArg, config: SuiteConfig, chunks: list[list[TaskSpec]], workers: int, batch_size: int,
    save_images: bool, record: Record,
) -> dict[str, Any] | None:
    """Chunks on up to ``workers`` spawned processes, one worker each."""
    ctx = multiprocessing.get_context("spawn")
    desc = None
    init = (agent, config, batch_size, save_images)
    with ProcessPoolExecutor(max_workers=min(workers, len(chunks)), mp_context=ctx, initializer=_proc_init, initargs=init) as pool:
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


# ---------------------------------------------------------------------- Ray actors
def _ray_temp_dir() -> Path:
    """Ray's session folder for a local cluster: under the media cache (short enough for sockets)."""
    return default_cache_dir() / "ray"


def ray_init(ray: Any, workers: int) -> bool:
    """Connect to Ray (``RAY_ADDRESS`` set: the cluster; else a local one). True when we started it."""
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


def _ray_drain(ray: Any, actors: list[Any], chunks: list[list[TaskSpec]], record: Record) -> None:
    """Keep every actor busy with the next chunk until none is left."""
    queue = deque(chunks)
    running: dict[Any, Any] = {}
    for actor in actors:
        if queue:
            running[actor.run.remote(queue.popleft())] = actor
    while running:
        ready, _ = ray.wait(list(running), num_returns=1)
        for ref in ready:
            actor = running.pop(ref)
            for row, files in ray.get(ref):
                record(row, files)
            if queue:
                running[actor.run.remote(queue.popleft())] = actor


def run_ray(
    agent: AgentArg, config: SuiteConfig, chunks: list[list[TaskSpec]], workers: int, batch_size: int,
    save_images: bool, record: Record, ray_options: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Chunks on up to ``workers`` Ray actors (resources per actor: ``ray_options``, default one CPU)."""
    import ray  # optional dependency (the ``ray`` extra)

    started = ray_init(ray, workers)
    actor_cls = ray.remote(**(ray_options or {"num_cpus": 1}))(EvalWorker)
    actors = [actor_cls.remote(agent, config, batch_size, save_images) for _ in range(min(workers, len(chunks)))]
    try:
        _ray_drain(ray, actors, chunks, record)
        desc = ray.get(actors[0].describe.remote()) if actors else None
        ray.get([a.close.remote() for a in actors])
    finally:
        for a in actors:
            ray.kill(a)
        if started:
            ray.shutdown()
    return desc


def fan_out(
    agent: AgentArg, config: SuiteConfig, specs: Sequence[TaskSpec], record: Record, *, workers: int = 1,
    use_ray: bool = False, batch_size: int = 4, save_images: bool = True, ray_options: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Run ``specs`` on the chosen backend; returns the agent's identity (None when nothing ran).

    Processes and actors get chunks of ``batch_size`` tasks, the next one as they finish.
    """
    if not specs:
        return None
    if not use_ray and workers == 1:
        return run_local(agent, config, specs, batch_size, save_images, record)
    chunks = [list(specs[i : i + batch_size]) for i in range(0, len(specs), batch_size)]
    if use_ray:
        return run_ray(agent, config, chunks, workers, batch_size, save_images, record, ray_options)
    return run_processes(agent, config, chunks, workers, batch_size, save_images, record)
