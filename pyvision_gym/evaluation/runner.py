"""The evaluation runner behind ``pyvision-gym eval``: an agent on a frozen suite.

    summary = run_eval("expert", "demo-image-v0", "runs/expert-demo", workers=2)

Writes into ``out_dir`` (see :mod:`~pyvision_gym.evaluation.run_folder`): ``run.json`` (agent
spec, suite name / version / hash; a later call with the same agent spec and suite hash resumes:
finished tasks are skipped, new rows appended; anything else is refused), ``episodes.jsonl``
(one row per episode with its transcript, appended as episodes end and rewritten in suite order,
the latest row per task, when the run ends), ``images/`` and ``summary.json``
(:func:`~pyvision_gym.evaluation.statistics.summarize` over the selected tasks).

Episodes run on the rollout engine (:mod:`pyvision_gym.rollout.engine`): each worker keeps up
to ``batch_size`` environments busy and calls ``agent.act`` once per round with every episode
that needs a turn; ``workers=K`` runs K spawned processes (``use_ray=True``: K Ray actors). An
agent exception ends its episode as ``AGENT_ERROR``, an environment exception as ``ENV_ERROR``;
both count as wrong, and so does every task without a row: the accuracy denominator is every
selected task. On resume, ``AGENT_ERROR`` / ``ENV_ERROR`` rows are run again.
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from tqdm import tqdm

from pyvision_gym.rollout.agent import Agent
from pyvision_gym.rollout.records import ERROR_END_REASONS, ROW_FIELDS

from .fanout import fan_out
from .provenance import now
from .run_folder import RUN_FORMAT, RunFolder, read_rows
from .statistics import summarize
from .suites import Suite, SuiteMismatchError, load_suite, parse_suite
from .worker import AgentRef

__all__ = ["RETRY_END_REASONS", "ROW_FIELDS", "RUN_FORMAT", "read_rows", "run_eval"]

RETRY_END_REASONS = ERROR_END_REASONS  # rows with these end reasons are run again on resume
Row = dict[str, Any]


def _as_suite(suite: Suite | dict[str, Any] | str | os.PathLike[str]) -> Suite:
    """A suite name or file (loaded and checked), a parsed suite file, or a ``Suite`` as given."""
    if isinstance(suite, (str, os.PathLike)):
        return load_suite(suite)
    if isinstance(suite, dict):
        return load_suite(parse_suite(suite))
    return suite


def _agent_label(agent: Agent | str) -> str:
    return agent if isinstance(agent, str) else (getattr(agent, "spec", "") or type(agent).__name__)


class _Recorder:
    """Takes each finished episode: checks its task hash, writes it, advances the progress bar."""

    def __init__(self, suite: Suite, folder: RunFolder, rows: list[Row], bar: tqdm, check_hashes: bool) -> None:
        self.suite, self.folder, self.rows, self.bar, self.check_hashes = suite, folder, rows, bar, check_hashes

    def __call__(self, row: Row, files: dict[str, bytes]) -> None:
        entry = self.suite.tasks[row["index"]]
        got, want = row.get("task_hash"), entry.get("hash")
        if self.check_hashes and got and (row["task_id"] != entry["task_id"] or (want and got != want)):
            raise SuiteMismatchError(
                f"suite {self.suite.name!r} task {entry['task_id']} was generated as {row['task_id']} with content "
                f"hash {got[:16]}…, but the suite froze {str(want)[:16]}…: the task generators, fonts or video "
                "encoder differ from the ones that froze the suite (or its task list was edited), so results would "
                "not be comparable (see pyvision_gym.evaluation.suites.verify_suite)"
            )
        self.folder.append(row, files)
        self.rows.append(row)
        self.bar.update(1)


def _check_counts(episodes: int | None, workers: int, batch_size: int) -> None:
    if episodes is not None and episodes < 0:
        raise ValueError(f"episodes must be >= 0, got {episodes}")
    if workers < 1 or batch_size < 1:
        raise ValueError(f"workers and batch_size must be >= 1, got {workers} and {batch_size}")


def run_eval(
    agent_spec: Agent | str,
    suite: Suite | dict[str, Any] | str | os.PathLike[str],
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
    agent_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run ``agent_spec`` (a spec string, or an ``Agent`` for in-process / picklable use) on
    ``suite`` (name, file or loaded suite) into ``out_dir``; returns the summary.

    ``episodes``: only the first N tasks. ``workers``: processes (or Ray actors with
    ``use_ray``). ``batch_size``: concurrent episodes per worker (one environment and
    runtime each). ``cache_dir``: generated media (default: the environment's). With
    ``check_hashes`` every generated task is compared with the suite's frozen task hash
    and a mismatch stops the run (:class:`SuiteMismatchError`). ``ray_options``: resources
    of each Ray actor (default ``{"num_cpus": 1}``; e.g. ``{"num_gpus": 1}`` for a VLM).
    ``agent_options``: keyword arguments the agent spec is built with (``max_new_tokens``, ...).
    """
    t_start = time.perf_counter()
    suite = _as_suite(suite)
    _check_counts(episodes, workers, batch_size)
    specs = suite.task_specs()[: episodes if episodes is not None else None]
    label = _agent_label(agent_spec)
    folder = RunFolder(out_dir)
    run_info = folder.claim(label, suite.name, suite.version, suite.hash, now())
    rows = folder.read_rows()
    finished = folder.finished(rows)
    todo = [s for s in specs if s.task_id not in finished]
    old_agent: dict[str, Any] | None = run_info.get("agent")
    backend = "ray" if use_ray else ("processes" if workers > 1 else "local")
    this_run = {"started": now(), "backend": backend, "workers": workers, "batch_size": batch_size, "episodes": episodes, "to_run": len(todo)}
    run_info["runs"] = list(run_info.get("runs") or []) + [this_run]
    folder.write_run(run_info)

    agent_desc = old_agent
    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc=f"{label} on {suite.name}", unit="ep", disable=not progress, dynamic_ncols=True)
    try:
        record = _Recorder(suite, folder, rows, bar, check_hashes)
        agent = AgentRef(agent_spec, dict(agent_options)) if agent_options and isinstance(agent_spec, str) else agent_spec
        agent_desc = fan_out(
            agent, suite.config(cache_dir), todo, record, workers=workers, use_ray=use_ray,
            batch_size=batch_size, save_images=save_images, ray_options=ray_options,
        ) or agent_desc
    finally:
        bar.close()
        folder.finish(rows, [t["task_id"] for t in suite.tasks])
        this_run.update(finished=now(), seconds=round(time.perf_counter() - t_start, 3))
        run_info["agent"] = agent_desc
        folder.write_run(run_info)
    if agent_desc and old_agent and agent_desc != old_agent:
        warnings.warn(f"agent identity changed across resumed runs: {old_agent} -> {agent_desc}", stacklevel=2)
    return _summary(suite, folder, rows, run_info, this_run, episodes, agent_desc or {"spec": label})


def _summary(
    suite: Suite, folder: RunFolder, rows: list[Row], run_info: dict[str, Any], this_run: dict[str, Any],
    episodes: int | None, agent: dict[str, Any],
) -> dict[str, Any]:
    """Summarize the run, write ``summary.json`` and return it."""
    run = {key: this_run[key] for key in ("backend", "workers", "batch_size", "seconds")}
    summary = summarize(rows, suite, episodes=episodes, agent=agent, run={"out_dir": str(folder.path), **run, "ran": this_run["to_run"]})
    summary["wall_s"]["runs_total"] = round(sum(float(r.get("seconds") or 0.0) for r in run_info["runs"]), 3)
    folder.write_summary(summary)
    return summary
