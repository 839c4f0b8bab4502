"""Tasks from disk: a JSON / JSONL file in the PyVision-RL validation format.

Each row needs ``id``, ``question``, ``answer`` and one of ``image_path`` / ``video_path``
(relative paths are resolved against the file's folder); ``ability`` and ``data_source`` are
optional and ``data_source`` picks the scorer (see ``scoring.infer_answer_type``). Optional
overrides: ``answer_type``, ``options`` (list of option texts), ``tolerance``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from .scoring import ANSWER_TYPES, infer_answer_type

REQUIRED = ("id", "question", "answer")


class DatasetError(ValueError):
    """A dataset file or one of its rows cannot be used; the message names the row and field."""


@dataclass(frozen=True)
class DatasetRow:
    task_id: str
    question: str
    answer: str
    answer_type: str
    modality: str
    media_path: Path
    options: list[str] | None
    tolerance: float
    ability: str
    data_source: str


def _read_rows(path: Path) -> list[Any]:
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}: line {n} is not valid JSON ({exc.msg})") from None
        return rows
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        data = data["data"]
    if not isinstance(data, list):
        raise DatasetError(f"{path}: expected a JSON list of rows (or JSONL)")
    return data


def load_dataset(path: str | Path) -> list[DatasetRow]:
    """Validate every row up front, so a bad row fails at construction, not mid-run."""
    path = Path(path).expanduser().resolve()
    rows = _read_rows(path)
    if not rows:
        raise DatasetError(f"{path}: the dataset has no rows")
    out: list[DatasetRow] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        where = f"{path.name}: row {i}"
        if not isinstance(row, dict):
            raise DatasetError(f"{where}: expected an object, got {type(row).__name__}")
        where += f" (id={row.get('id')!r})"
        for key in REQUIRED:
            if key not in row or row[key] is None or str(row[key]).strip() == "":
                raise DatasetError(f"{where}: missing field '{key}'")
        media = [k for k in ("image_path", "video_path") if row.get(k)]
        if len(media) != 1:
            raise DatasetError(f"{where}: needs exactly one of 'image_path' or 'video_path', got {media or 'neither'}")
        key = media[0]
        if not isinstance(row[key], str):
            raise DatasetError(f"{where}: field '{key}' must be a string path")
        media_path = (path.parent / row[key]).resolve()
        if not media_path.is_file():
            raise DatasetError(f"{where}: field '{key}': file not found: {media_path}")
        options = row.get("options")
        if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
            raise DatasetError(f"{where}: field 'options' must be a list of strings")
        answer = str(row["answer"]).strip()
        data_source = str(row.get("data_source") or "")
        answer_type = row.get("answer_type") or infer_answer_type(answer, data_source, options is not None)
        if answer_type not in ANSWER_TYPES:
            raise DatasetError(f"{where}: field 'answer_type' must be one of {sorted(ANSWER_TYPES)}, got {answer_type!r}")
        try:
            tolerance = float(row.get("tolerance", 0.0))
        except (TypeError, ValueError):
            raise DatasetError(f"{where}: field 'tolerance' must be a number") from None
        task_id = str(row["id"])
        if task_id in seen:
            raise DatasetError(f"{where}: duplicate id {task_id!r}")
        seen.add(task_id)
        out.append(
            DatasetRow(
                task_id=task_id, question=str(row["question"]), answer=answer, answer_type=answer_type,
                modality="image" if key == "image_path" else "video", media_path=media_path,
                options=options, tolerance=tolerance, ability=str(row.get("ability") or ""),
                data_source=data_source,
            )
        )
    return out


def row_to_task(row: DatasetRow, index: int):
    """Materialise a row as a ``Task`` (opens the image; a corrupt file names the row)."""
    from pyvision_gym.envs.base import Task

    images = {}
    if row.modality == "image":
        try:
            with Image.open(row.media_path) as im:
                images["image"] = im.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(f"row {index} (id={row.task_id!r}): field 'image_path': cannot read image {row.media_path}: {exc}") from None
    return Task(
        task_id=row.task_id, family=row.data_source or row.ability or "dataset", modality=row.modality,
        question=row.question, answer=row.answer, answer_type=row.answer_type, options=row.options,
        tolerance=row.tolerance, images=images,
        video_path=str(row.media_path) if row.modality == "video" else None,
        metadata={"ability": row.ability, "data_source": row.data_source, "row": index},
    )
