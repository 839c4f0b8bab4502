"""A run folder: what ``run_eval`` writes and resumes from.

- ``run.json``: the agent spec, suite name / version / hash, and one entry per invocation;
- ``episodes.jsonl``: one row per episode (:data:`~pyvision_gym.rollout.records.ROW_FIELDS`);
- ``images/<task_id>/tTT_KK.png``: the images of turn TT, at most :data:`IMAGE_MAX_SIDE` px;
- ``summary.json``: the run's summary.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from pyvision_gym.rollout.records import ERROR_END_REASONS

__all__ = ["IMAGE_MAX_SIDE", "RUN_FORMAT", "RunFolder", "encode_png", "image_path", "read_rows", "write_rows"]

RUN_FORMAT = "pyvision-gym-run/1"
IMAGE_MAX_SIDE = 768
Row = dict[str, Any]


def _safe_name(task_id: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", task_id)[:100]
    if safe != task_id:
        safe += "-" + hashlib.sha1(task_id.encode()).hexdigest()[:8]
    return safe


def image_path(task_id: str, turn: int, k: int) -> str:
    """Where the ``k``-th image of turn ``turn`` of task ``task_id`` goes, relative to the run."""
    return f"images/{_safe_name(task_id)}/t{turn:02d}_{k:02d}.png"


def encode_png(arr: np.ndarray) -> bytes:
    """An image as PNG bytes, downscaled to at most :data:`IMAGE_MAX_SIDE` px on its longest side."""
    im = Image.fromarray(np.asarray(arr, dtype=np.uint8))
    if max(im.size) > IMAGE_MAX_SIDE:
        im.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
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
        write_rows(path, rows)
    return rows


def write_rows(path: Path, rows: Sequence[Row]) -> None:
    """Replace ``path`` with ``rows`` (atomically)."""
    tmp = path.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


class RunFolder:
    """The output folder of one agent on one suite; :meth:`claim` it before writing."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.run_path = self.path / "run.json"
        self.rows_path = self.path / "episodes.jsonl"
        self._rows_file: IO[str] | None = None

    def claim(self, agent_spec: str, suite_name: str, suite_version: Any, suite_hash: str, created: str) -> dict[str, Any]:
        """The folder's ``run.json`` content: new, or the existing one when it holds the same agent
        spec and suite hash (a resume). Anything else is refused with ``ValueError``."""
        info: dict[str, Any] = {
            "format": RUN_FORMAT, "agent_spec": agent_spec, "agent": None, "suite": suite_name,
            "suite_version": suite_version, "suite_hash": suite_hash, "created": created, "runs": [],
        }
        if self.run_path.is_file():
            old = json.loads(self.run_path.read_text())
            if old.get("agent_spec") != agent_spec or old.get("suite_hash") != suite_hash:
                raise ValueError(
                    f"{self.path} holds a run of agent {old.get('agent_spec')!r} on suite {old.get('suite')!r} "
                    f"(hash {str(old.get('suite_hash'))[:12]}…), not agent {agent_spec!r} on {suite_name!r} "
                    f"(hash {str(suite_hash)[:12]}…): use another output directory"
                )
            return {**info, **old}
        if self.rows_path.exists():
            raise ValueError(f"{self.rows_path} exists without run.json: cannot tell which agent and suite it holds")
        return info

    def write_run(self, info: dict[str, Any]) -> None:
        """Write ``run.json``."""
        self.run_path.write_text(json.dumps(info, indent=2))

    def read_rows(self) -> list[Row]:
        """The rows written so far."""
        return read_rows(self.rows_path)

    @staticmethod
    def finished(rows: Sequence[Row]) -> set[str]:
        """Task ids with a row that needs no rerun (agent and env errors are run again)."""
        return {r["task_id"] for r in rows if r.get("end_reason") not in ERROR_END_REASONS}

    def append(self, row: Row, files: dict[str, bytes]) -> None:
        """Write an episode's image files and append its row."""
        for rel, data in files.items():
            p = self.path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        if self._rows_file is None:
            self._rows_file = open(self.rows_path, "a", encoding="utf-8")
        self._rows_file.write(json.dumps(row, ensure_ascii=False) + "\n")
        self._rows_file.flush()

    def finish(self, rows: Sequence[Row], order: Sequence[str]) -> None:
        """Close the rows file and rewrite it: the latest row per task, in ``order`` of task ids."""
        if self._rows_file is not None:
            self._rows_file.close()
            self._rows_file = None
        latest: dict[str, Row] = {}
        for r in rows:
            latest[r["task_id"]] = r
        rank = {task_id: i for i, task_id in enumerate(order)}
        write_rows(self.rows_path, sorted(latest.values(), key=lambda r: rank.get(r["task_id"], len(rank))))

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        (self.path / "summary.json").write_text(json.dumps(summary, indent=2))
