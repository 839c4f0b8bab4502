"""Dataset files for verl that name PyVision tasks, one row per task (parquet).

verl's ``RLHFDataset`` reads rows with a ``prompt`` (chat messages), a ``data_source`` and an
``extra_info``; the ``pyvision_agent`` loop (:mod:`pyvision_gym.integrations.verl`) ignores the
prompt text and resets its own environment onto the task ``extra_info`` names, so the rows stay
small (no media) and the environment writes the real prompt::

    python -m pyvision_gym.integrations.verl_data data/pyvision --train 8192 --val 96

writes ``data/pyvision/train.parquet`` (train-split seeds ``0 .. 8191``) and
``data/pyvision/val.parquet`` (val-split seeds ``0 .. 95``, the same tasks every validation, as
the pyvision-gym trainer's validation). ``--families a,b`` cycles the rows through those
families; ``--difficulty d`` fixes the difficulty (otherwise the environment's settings pick);
``--agent-name pyvision_video_agent`` asks for the recipe's video loop.
This module needs only ``pyarrow`` (verl's venv has it), not verl.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["AGENT_NAME", "DATA_SOURCE", "task_rows", "write_rows", "main"]

AGENT_NAME = "pyvision_agent"
"""The agent-loop name rows ask for by default (an entry of ``verl_recipe/agent_loop.yaml``;
``pyvision_video_agent`` there runs ``PyVisionVideo-v0``)."""
DATA_SOURCE = "pyvision_gym"
SPLITS = ("train", "val", "test")


def task_rows(
    split: str, count: int, families: Sequence[str] = (), difficulty: int | None = None, first_seed: int = 0,
    agent_name: str = AGENT_NAME,
) -> list[dict[str, Any]]:  # fmt: skip
    """``count`` rows on ``split`` for the loop ``agent_name``: seeds ``first_seed ..``,
    families cycled when given."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rows = []
    for i in range(count):
        family = families[i % len(families)] if families else None
        seed = first_seed + i
        extra = {"split": split, "seed": seed, "family": family, "difficulty": difficulty, "index": i, "task_id": f"{split}-{seed}"}
        rows.append({
            "data_source": DATA_SOURCE, "agent_name": agent_name, "ability": "visual-agentic-reasoning",
            "prompt": [{"role": "user", "content": f"PyVision task {split}-{seed} (the environment writes the prompt)"}],
            "reward_model": {"style": "environment", "ground_truth": ""}, "extra_info": extra,
        })  # fmt: skip
    return rows


def write_rows(rows: list[dict[str, Any]], path: str | Path) -> Path:
    """Write ``rows`` as a parquet file (parent folders created)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: write ``train.parquet`` and ``val.parquet`` into a folder."""
    parser = argparse.ArgumentParser(prog="python -m pyvision_gym.integrations.verl_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder for train.parquet and val.parquet")
    parser.add_argument("--train", type=int, default=8192, help="train-split rows (seeds 0..N-1)")
    parser.add_argument("--val", type=int, default=96, help="val-split rows (seeds 0..N-1)")
    parser.add_argument("--families", default="", help="comma-separated families to cycle through (default: the env's)")
    parser.add_argument("--difficulty", type=int, default=None, help="fixed difficulty 0-2 (default: the env's)")
    parser.add_argument("--agent-name", default=AGENT_NAME, help="the agent loop rows ask for (pyvision_video_agent for video)")
    args = parser.parse_args(argv)
    families = [f for f in args.families.split(",") if f]
    for split, count in (("train", args.train), ("val", args.val)):
        path = write_rows(task_rows(split, count, families, args.difficulty, agent_name=args.agent_name), args.out_dir / f"{split}.parquet")
        print(f"{path}: {count} rows")


if __name__ == "__main__":
    main()
