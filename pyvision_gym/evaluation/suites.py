"""Frozen evaluation suites: fixed task lists with a content hash.

    pyvision-gym suites list
    pyvision-gym suites freeze pvbench-image-v0 --out benchmarks/suites/pvbench-image-v0.json
    pyvision-gym suites freeze my-vstar --dataset data/vstar.json      # writes ./my-vstar.json
    pyvision-gym suites verify pvbench-video-v0

A suite file (``<name>.json`` in :data:`SUITES_DIR`, the package data folder
``pyvision_gym.benchmarks/suites``; format ``pyvision-gym-suite/1``) holds
the suite's name, version, modality, split, the environment kwargs every episode runs
with, and its tasks: ``{task_id, family, difficulty, seed, hash}`` for generated tasks
(``reset(seed=seed)`` on the ``test`` split, i.e. task seed ``SPLIT_OFFSETS["test"] +
seed``) or ``{task_id, family, index, hash}`` for rows of a dataset file in the PyVision-RL
format (``dataset``: its path, relative to the suite file). ``hash`` per task is
:func:`pyvision_gym.evaluation.hashing.task_content_hash` (id, question, answer and media bytes:
image pixels, mp4 file bytes); the suite ``hash`` is sha256 over the canonical JSON of
``{modality, split, env_kwargs}`` followed by every ``task_id:hash`` in order. Both are
computed once, at freezing, and never rewritten: :func:`verify_suite` regenerates the tasks
and compares, and :func:`load_suite` checks the file against its own hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from pyvision_gym.datasets import DatasetRow, load_dataset, row_to_task
from pyvision_gym.env import SPLIT_OFFSETS, default_cache_dir
from pyvision_gym.envs import families_for, get_family
from pyvision_gym.rollout.records import TaskSpec

from .config import SuiteConfig
from .hashing import task_content_hash
from .provenance import now, versions

__all__ = [
    "BUILTIN_SUITES",
    "DEFAULT_ENV_KWARGS",
    "SUITES_DIR",
    "Suite",
    "SuiteError",
    "SuiteMismatchError",
    "build_suite",
    "compute_suite_hash",
    "compute_task_hashes",
    "freeze",
    "freeze_dataset",
    "load_suite",
    "parse_suite",
    "suite_field",
    "suite_tasks",
    "verify_suite",
]

FORMAT = "pyvision-gym-suite/1"
# The frozen suite files: package data of pyvision_gym.benchmarks (benchmarks/suites in a checkout).
SUITES_DIR = Path(str(resources.files("pyvision_gym.benchmarks") / "suites"))
SPLIT = "test"
HASH_SCHEME = (
    "sha256 over canonical JSON {modality, split, env_kwargs} then 'task_id:task_hash\\n' per task in order; "
    "task_hash = sha256 over the task's id, question, answer, answer type, options, tolerance, "
    "image name/mode/size/pixels and mp4 file bytes (pyvision_gym.evaluation.hashing.task_content_hash)"
)
DEFAULT_ENV_KWARGS: dict[str, Any] = {
    "max_turns": 8,
    "max_images": 32,
    "code_timeout": 30.0,
    "max_output_chars": 10_000,
    "tool_reward_per_turn": 0.1,
    "reward": "accumulative",
    "terminate_on_error": False,
    "show_image": True,
}
# name -> how to build it: modality, difficulties, seeds (reset seeds on the test split).
BUILTIN_SUITES: dict[str, dict[str, Any]] = {
    "pvbench-image-v0": {
        "modality": "image", "difficulties": (0, 1, 2), "seeds": (0, 1, 2, 3),
        "description": "Every image task family x difficulties 0, 1, 2 x 4 seeds (test split).",
    },
    "pvbench-video-v0": {
        "modality": "video", "difficulties": (0, 1, 2), "seeds": (0, 1, 2, 3),
        "description": "Every video task family x difficulties 0, 1, 2 x 4 seeds (test split).",
    },
    "demo-image-v0": {
        "modality": "image", "difficulties": (0,), "seeds": (1000,),
        "description": "Demo: every image task family at difficulty 0, one seed (test split, disjoint from pvbench).",
    },
    "demo-video-v0": {
        "modality": "video", "difficulties": (0,), "seeds": (1000,),
        "description": "Demo: every video task family at difficulty 0, one seed (test split, disjoint from pvbench).",
    },
}


class SuiteError(ValueError):
    """A suite name or file that cannot be used (unknown, malformed, edited after freezing)."""


class SuiteMismatchError(ValueError):
    """A generated task differs from the suite's frozen per-task hash."""


@dataclass
class Suite:
    """A loaded suite (see the module docstring for the file format)."""

    name: str
    version: int
    modality: str
    tasks: list[dict[str, Any]]
    env_kwargs: dict[str, Any]
    hash: str
    split: str = SPLIT
    description: str = ""
    dataset: str | None = None  # as written in the file: relative to the file, or absolute
    path: Path | None = None  # the file it was loaded from
    frozen_with: dict[str, Any] = field(default_factory=dict)

    @property
    def dataset_path(self) -> Path | None:
        """The dataset file, resolved against the suite file's folder."""
        if not self.dataset:
            return None
        p = Path(self.dataset).expanduser()
        if not p.is_absolute():
            p = (self.path.parent if self.path else SUITES_DIR) / p
        return p.resolve()

    @property
    def families(self) -> list[str]:
        """The task families of the suite's tasks, sorted."""
        return sorted({t["family"] for t in self.tasks})

    def task_specs(self) -> list[TaskSpec]:
        """The tasks as rollout-engine specs, in suite order (``index``: the position)."""
        return [
            TaskSpec(
                task_id=str(t["task_id"]), index=i, family=t.get("family"), difficulty=t.get("difficulty"),
                seed=t.get("seed"), dataset_row=int(t["index"]) if self.dataset else None,
            )
            for i, t in enumerate(self.tasks)
        ]

    def config(self, cache_dir: str | os.PathLike[str] | None = None) -> SuiteConfig:
        """How to make this suite's environments (media cached in ``cache_dir``)."""
        dataset = self.dataset_path
        return SuiteConfig(
            modality=self.modality, cache_dir=str(_cache_path(cache_dir)), split=self.split or SPLIT,
            families=() if dataset else tuple(self.families), dataset=str(dataset) if dataset else None,
            env_kwargs=dict(self.env_kwargs),
        )

    def to_json(self) -> dict[str, Any]:
        """The file's content (key order fixed)."""
        out: dict[str, Any] = {
            "format": FORMAT, "name": self.name, "version": self.version, "modality": self.modality,
            "split": self.split, "description": self.description, "env_kwargs": self.env_kwargs,
            "dataset": self.dataset, "families": self.families, "num_tasks": len(self.tasks),
            "hash": self.hash, "hash_scheme": HASH_SCHEME, "frozen_with": self.frozen_with, "tasks": self.tasks,
        }
        return out


def suite_field(suite: Suite | dict[str, Any], key: str) -> Any:
    """A field of a loaded suite or of a suite file's parsed JSON (None when absent)."""
    return suite.get(key) if isinstance(suite, dict) else getattr(suite, key, None)


def _cache_path(cache_dir: str | os.PathLike[str] | None) -> Path:
    """``cache_dir`` (default: the environment's media cache), created."""
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    return cache


# ---------------------------------------------------------------------- hashing
def _combine(modality: str, split: str, env_kwargs: dict[str, Any], pairs: list[tuple[str, str]]) -> str:
    h = hashlib.sha256(json.dumps({"modality": modality, "split": split, "env_kwargs": env_kwargs}, sort_keys=True).encode())
    for task_id, th in pairs:
        h.update(f"{task_id}:{th}\n".encode())
    return h.hexdigest()


def _generate(suite: Suite, entry: dict[str, Any], cache_dir: Path, rows: list[Any] | None) -> Any:
    if rows is not None:
        i = int(entry["index"])
        if not 0 <= i < len(rows):
            raise SuiteError(f"suite {suite.name!r}: task {entry['task_id']!r} has index {i}, but the dataset has {len(rows)} {suite.modality} rows")
        return row_to_task(rows[i], i)
    fam = get_family(entry["family"])
    return fam.generate(SPLIT_OFFSETS[suite.split] + int(entry["seed"]), int(entry["difficulty"]), cache_dir)


def _as_suite(suite: Suite | str | os.PathLike[str]) -> Suite:
    return suite if isinstance(suite, Suite) else load_suite(suite)


def _dataset_rows(suite: Suite) -> list[DatasetRow] | None:
    if not suite.dataset:
        return None
    return [r for r in load_dataset(suite.dataset_path) if r.modality == suite.modality]


def suite_tasks(suite: Suite | str, cache_dir: str | os.PathLike[str] | None = None) -> list[Any]:
    """Every task of ``suite`` as a ``Task`` (generated by its family, or read from the dataset)."""
    suite = _as_suite(suite)
    cache = _cache_path(cache_dir)
    rows = _dataset_rows(suite)
    return [_generate(suite, e, cache, rows) for e in suite.tasks]


def compute_task_hashes(suite: Suite | str, cache_dir: str | os.PathLike[str] | None = None, progress: bool = False) -> list[str]:
    """Each task's content hash, regenerating the task (and its media) from scratch."""
    suite = _as_suite(suite)
    cache = _cache_path(cache_dir)
    rows = _dataset_rows(suite)
    entries = tqdm(suite.tasks, desc=f"hashing {suite.name}", unit="task", disable=not progress)
    return [task_content_hash(_generate(suite, e, cache, rows)) for e in entries]


def compute_suite_hash(
    suite: Suite | str, cache_dir: str | os.PathLike[str] | None = None, task_hashes: list[str] | None = None
) -> str:
    """The suite hash: over ``{modality, split, env_kwargs}`` and every task's content hash
    (recomputed from the generated tasks unless ``task_hashes`` is given)."""
    suite = _as_suite(suite)
    hashes = task_hashes if task_hashes is not None else compute_task_hashes(suite, cache_dir)
    return _combine(suite.modality, suite.split, suite.env_kwargs, [(t["task_id"], h) for t, h in zip(suite.tasks, hashes, strict=True)])


def verify_suite(suite: Suite | str, cache_dir: str | os.PathLike[str] | None = None, progress: bool = False) -> str:
    """Regenerate every task and compare with the frozen hashes; returns the suite hash.

    Raises :class:`SuiteMismatchError` naming the tasks that differ (or saying that the
    file itself was edited) when anything does not match.
    """
    suite = load_suite(suite, check=False)
    hashes = compute_task_hashes(suite, cache_dir, progress=progress)
    bad = [(t, h) for t, h in zip(suite.tasks, hashes, strict=True) if t.get("hash") != h]
    full = compute_suite_hash(suite, task_hashes=hashes)
    if bad:
        shown = "; ".join(f"{t['task_id']} ({_where(t)})" for t, _ in bad[:5]) + ("; ..." if len(bad) > 5 else "")
        raise SuiteMismatchError(
            f"suite {suite.name!r} ({suite.path or 'in memory'}) does not match its frozen content: "
            f"{len(bad)} of {len(suite.tasks)} tasks differ: {shown}. Their question, answer or media bytes changed "
            "(a task generator, font, image library or video encoder differs from the one that froze the suite, "
            "or the task list was edited). Results on it are not comparable with the leaderboard; if the change is "
            "intended, freeze a new suite version under a new name."
        )
    if full != suite.hash:
        raise SuiteMismatchError(
            f"suite {suite.name!r} ({suite.path or 'in memory'}): every task matches its frozen task hash, but the "
            f"suite hash is {full[:16]}…, not the frozen {str(suite.hash)[:16]}…: the file's env_kwargs, modality, "
            "split, task order or hash field was edited after freezing"
        )
    return full


def _where(t: dict[str, Any]) -> str:
    if "index" in t and "seed" not in t:
        return f"family {t.get('family')}, dataset row {t['index']}"
    return f"family {t.get('family')}, difficulty {t.get('difficulty')}, seed {t.get('seed')}"


# ---------------------------------------------------------------------- loading
def available_suites() -> list[str]:
    """Names of the suite files in :data:`SUITES_DIR`."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.json"))


def parse_suite(data: dict[str, Any], path: Path | None = None) -> Suite:
    """A suite from a suite file's parsed JSON (``path``: the file, for messages and datasets)."""
    where = str(path) if path else "suite"
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SuiteError(f"{where}: not a suite file (expected format {FORMAT!r})")
    for key in ("name", "version", "modality", "tasks", "env_kwargs", "hash"):
        if key not in data:
            raise SuiteError(f"{where}: missing field {key!r}")
    if data["modality"] not in ("image", "video"):
        raise SuiteError(f"{where}: modality must be 'image' or 'video', got {data['modality']!r}")
    need = ("task_id", "family", "hash") + (("index",) if data.get("dataset") else ("difficulty", "seed"))
    seen: set[str] = set()
    for i, t in enumerate(data["tasks"]):
        missing = [k for k in need if k not in t]
        if missing:
            raise SuiteError(f"{where}: task {i} misses {missing}")
        if t["task_id"] in seen:
            raise SuiteError(f"{where}: duplicate task id {t['task_id']!r}")
        seen.add(t["task_id"])
    return Suite(
        name=data["name"], version=int(data["version"]), modality=data["modality"], tasks=list(data["tasks"]),
        env_kwargs=dict(data["env_kwargs"]), hash=str(data["hash"]), split=data.get("split", SPLIT),
        description=data.get("description", ""), dataset=data.get("dataset"), path=path,
        frozen_with=dict(data.get("frozen_with") or {}),
    )


def _is_dataset_file(path: Path) -> bool:
    """A JSONL file, or JSON that is a list of rows or ``{"data": [...]}`` (not a suite file)."""
    if path.suffix == ".jsonl":
        return True
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(data, list) or (isinstance(data, dict) and "format" not in data and isinstance(data.get("data"), list))


def load_suite(name_or_path: Suite | str | os.PathLike[str], check: bool = True) -> Suite:
    """A suite by name (``<name>.json`` in :data:`SUITES_DIR`) or path; a dataset file
    (JSON list / JSONL rows) becomes a suite frozen on the fly (:func:`dataset_suite`).

    With ``check`` the file must agree with its own hash (an edited ``env_kwargs``, task
    list or hash raises :class:`SuiteMismatchError`); the tasks' content is checked when
    they are generated (:func:`verify_suite`, and per task during an eval).
    """
    if isinstance(name_or_path, Suite):
        suite = name_or_path
    else:
        p = Path(name_or_path).expanduser()
        if not p.is_file():
            named = SUITES_DIR / f"{name_or_path}.json"
            if named.is_file():
                p = named
            else:
                raise SuiteError(f"no suite {str(name_or_path)!r}: not a file, and not one of {', '.join(available_suites()) or '(none)'}")
        if _is_dataset_file(p):  # a dataset, not a suite: freeze it on the fly
            return dataset_suite(p)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SuiteError(f"{p}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        suite = parse_suite(data, p.resolve())
    if check:
        want = _combine(suite.modality, suite.split, suite.env_kwargs, [(t["task_id"], t["hash"]) for t in suite.tasks])
        if want != suite.hash:
            raise SuiteMismatchError(
                f"suite {suite.name!r} ({suite.path or 'in memory'}) was edited after freezing: its env_kwargs, modality, "
                f"split, task list or hash field no longer give its frozen hash {str(suite.hash)[:16]}… "
                f"(they give {want[:16]}…). Restore the file, or freeze a new suite under a new name."
            )
    return suite


# ---------------------------------------------------------------------- building and freezing
def _frozen_with() -> dict[str, Any]:
    """What a newly frozen suite records of its making: :func:`versions` and the time."""
    return {**versions(), "created": now()}


def build_suite(
    name: str, cache_dir: str | os.PathLike[str] | None = None, progress: bool = False, env_kwargs: dict[str, Any] | None = None
) -> Suite:
    """A built-in suite (:data:`BUILTIN_SUITES`) generated and hashed now."""
    if name not in BUILTIN_SUITES:
        raise SuiteError(f"no built-in suite {name!r}; built-in: {', '.join(BUILTIN_SUITES)}")
    spec = BUILTIN_SUITES[name]
    fams = families_for(spec["modality"])
    entries = [
        {"task_id": "", "family": f, "difficulty": int(d), "seed": int(s), "hash": ""}
        for s in spec["seeds"] for d in spec["difficulties"] for f in fams if d in fams[f].difficulties
    ]
    version = int(name.rsplit("-v", 1)[1]) if "-v" in name and name.rsplit("-v", 1)[1].isdigit() else 0
    suite = Suite(
        name=name, version=version, modality=spec["modality"], tasks=entries,
        env_kwargs=dict(env_kwargs or DEFAULT_ENV_KWARGS), hash="", description=spec["description"],
    )
    cache = _cache_path(cache_dir)
    for e in tqdm(entries, desc=f"generating {name}", unit="task", disable=not progress):
        task = _generate(suite, e, cache, None)
        e["task_id"], e["hash"] = task.task_id, task_content_hash(task)
    suite.hash = compute_suite_hash(suite, task_hashes=[e["hash"] for e in entries])
    suite.frozen_with = _frozen_with()
    return suite


def _write(suite: Suite, path: Path, force: bool) -> str:
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        if old.get("hash") == suite.hash:
            return f"{path}: unchanged (hash {suite.hash[:16]}…)"
        if not force:
            raise SuiteError(
                f"{path} is frozen with hash {str(old.get('hash'))[:16]}… and the suite now hashes to {suite.hash[:16]}…: "
                "a frozen suite is never rewritten; freeze a new version under a new name (or pass --force)"
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(suite.to_json(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    suite.path = path.resolve()
    return f"{path}: wrote {len(suite.tasks)} tasks, hash {suite.hash[:16]}…"


def freeze(name: str, out: str | os.PathLike[str] | None = None, force: bool = False, cache_dir: str | os.PathLike[str] | None = None, progress: bool = True) -> str:
    """Build a built-in suite and write it (default ``./<name>.json`` in the working directory;
    the shipped suites live in :data:`SUITES_DIR`)."""
    suite = build_suite(name, cache_dir, progress=progress)
    return _write(suite, Path(out) if out else Path(f"{name}.json"), force)


def dataset_suite(
    dataset: str | os.PathLike[str], modality: str | None = None, name: str | None = None,
    env_kwargs: dict[str, Any] | None = None, out_path: Path | None = None, version: int = 0, description: str = "",
) -> Suite:
    """The rows of a PyVision-RL dataset file frozen as a suite (in memory; ``out_path``: where
    it will be written, which makes its dataset path relative). ``modality`` may be left out
    when all rows share one."""
    ds = Path(dataset).expanduser().resolve()
    all_rows = load_dataset(ds)
    kinds = sorted({r.modality for r in all_rows})
    if modality is None:
        if len(kinds) != 1:
            raise SuiteError(f"{ds}: the dataset has {' and '.join(kinds)} rows; say which with --modality")
        modality = kinds[0]
    rows = [r for r in all_rows if r.modality == modality]
    if not rows:
        raise SuiteError(f"{ds}: no {modality} rows")
    entries = []
    for i, r in enumerate(rows):
        task = row_to_task(r, i)
        entries.append({"task_id": task.task_id, "family": task.family, "index": i, "hash": task_content_hash(task)})
    rel = str(ds)
    if out_path is not None:
        try:
            rel = os.path.relpath(ds, out_path.parent.resolve())
        except ValueError:  # another drive
            pass
    suite = Suite(
        name=name or ds.stem, version=version, modality=modality, tasks=entries,
        env_kwargs=dict(env_kwargs or DEFAULT_ENV_KWARGS), hash="",
        description=description or f"{modality} rows of {ds.name}", dataset=rel,
        path=out_path.resolve() if out_path is not None else None,
    )
    suite.hash = compute_suite_hash(suite, task_hashes=[e["hash"] for e in entries])
    suite.frozen_with = _frozen_with()
    return suite


def freeze_dataset(
    name: str, dataset: str | os.PathLike[str], modality: str | None = None, out: str | os.PathLike[str] | None = None,
    env_kwargs: dict[str, Any] | None = None, force: bool = False, version: int = 0, description: str = "",
) -> str:
    """Freeze the ``modality`` rows of a PyVision-RL dataset file as a suite (default ``./<name>.json``)."""
    out_path = Path(out) if out else Path(f"{name}.json")
    suite = dataset_suite(dataset, modality, name, env_kwargs, out_path, version, description)
    return _write(suite, out_path, force)


