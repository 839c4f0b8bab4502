"""Tasks from disk: a JSON / JSONL file in the PyVision-RL validation format.

Each row needs ``id``, ``question``, ``answer`` and one of ``image_path`` / ``video_path``
(relative paths are resolved against the file's folder and must stay inside it unless
``allow_outside_paths=True``); ``ability`` and ``data_source`` are optional and ``data_source``
picks the scorer (see ``scoring.infer_answer_type``). Optional overrides: ``answer_type``,
``options`` (list of option texts), ``tolerance``.

Every row is checked when the file is loaded, media included: images are decoded (at most
``max_image_pixels`` pixels, default 50 MP, about 150 MB as RGB) and videos demuxed and their
first frame decoded, so a broken row fails at load time with a :class:`DatasetError` naming the
file, the row and the field, never in the middle of an episode. ``on_error="skip"`` drops bad
rows instead and reports them (``LoadedDataset.skipped``).
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av
from PIL import Image, UnidentifiedImageError

from .envs.base import Task
from .scoring import ANSWER_TYPES, infer_answer_type

REQUIRED = ("id", "question", "answer")
MAX_IMAGE_PIXELS = 50_000_000


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


class LoadedDataset(list[DatasetRow]):
    """The valid rows (a list) plus ``skipped``: one message per row dropped with ``on_error="skip"``."""

    def __init__(self, rows: list[DatasetRow], skipped: list[str] | None = None) -> None:
        super().__init__(rows)
        self.skipped: list[str] = skipped or []


@dataclass(frozen=True)
class _Checks:
    folder: Path
    allow_outside_paths: bool
    max_image_pixels: int
    seen: set[str] = field(default_factory=set)


def _read_rows(path: Path) -> list[Any]:
    if not path.is_file():
        raise DatasetError(f"dataset file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
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


def load_dataset(
    path: str | Path,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    allow_outside_paths: bool = False,
    max_image_pixels: int = MAX_IMAGE_PIXELS,
) -> LoadedDataset:
    """Read and check every row (media included), so a bad row fails here, not mid-run."""
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path).expanduser().resolve()
    rows = _read_rows(path)
    if not rows:
        raise DatasetError(f"{path}: the dataset has no rows")
    checks = _Checks(path.parent, allow_outside_paths, int(max_image_pixels))
    out: list[DatasetRow] = []
    skipped: list[str] = []
    for i, row in enumerate(rows):
        try:
            out.append(_check_row(row, f"{path}: row {i}", checks))
        except DatasetError as exc:
            if on_error == "raise":
                raise
            skipped.append(str(exc))
    if skipped:
        warnings.warn(f"{path}: skipped {len(skipped)} bad row(s); first: {skipped[0]}", stacklevel=2)
    if not out:
        raise DatasetError(f"{path}: no usable rows ({len(skipped)} skipped)")
    return LoadedDataset(out, skipped)


def _text_field(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if value is None or str(value).strip() == "":
        raise DatasetError(f"{where}: missing field '{key}'")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise DatasetError(f"{where}: field '{key}' must be a string (or a number), got {type(value).__name__}")
    if str(value).strip() == "":
        raise DatasetError(f"{where}: missing field '{key}'")
    return str(value)


def _check_row(row: Any, where: str, checks: _Checks) -> DatasetRow:
    if not isinstance(row, dict):
        raise DatasetError(f"{where}: expected an object, got {type(row).__name__}")
    where += f" (id={row.get('id')!r})"
    task_id, question = _text_field(row, "id", where), _text_field(row, "question", where)
    answer = _text_field(row, "answer", where).strip()
    media = [k for k in ("image_path", "video_path") if row.get(k)]
    if len(media) != 1:
        raise DatasetError(f"{where}: needs exactly one of 'image_path' or 'video_path', got {media or 'neither'}")
    key = media[0]
    media_path = _media_path(row[key], key, where, checks)
    (_check_image if key == "image_path" else _check_video)(media_path, f"{where}: field '{key}'", checks)
    options = row.get("options")
    if options is not None and not (isinstance(options, list) and all(isinstance(o, str) for o in options)):
        raise DatasetError(f"{where}: field 'options' must be a list of strings")
    data_source = str(row.get("data_source") or "")
    answer_type = row.get("answer_type") or infer_answer_type(answer, data_source, options is not None)
    if answer_type not in ANSWER_TYPES:
        raise DatasetError(f"{where}: field 'answer_type' must be one of {sorted(ANSWER_TYPES)}, got {answer_type!r}")
    try:
        tolerance = float(row.get("tolerance", 0.0))
    except (TypeError, ValueError):
        raise DatasetError(f"{where}: field 'tolerance' must be a number") from None
    if task_id in checks.seen:
        raise DatasetError(f"{where}: duplicate id {task_id!r}")
    checks.seen.add(task_id)
    return DatasetRow(
        task_id=task_id, question=question, answer=answer, answer_type=answer_type,
        modality="image" if key == "image_path" else "video", media_path=media_path,
        options=options, tolerance=tolerance, ability=str(row.get("ability") or ""),
        data_source=data_source,
    )


def _media_path(value: Any, key: str, where: str, checks: _Checks) -> Path:
    if not isinstance(value, str):
        raise DatasetError(f"{where}: field '{key}' must be a string path")
    media_path = (checks.folder / value).resolve()
    if not checks.allow_outside_paths and not media_path.is_relative_to(checks.folder):
        raise DatasetError(
            f"{where}: field '{key}': {value!r} points outside the dataset's folder {checks.folder} "
            "(load with allow_outside_paths=True to permit it)"
        )
    if not media_path.is_file():
        raise DatasetError(f"{where}: field '{key}': file not found: {media_path}")
    return media_path


def _open_image(path: Path, where: str, max_pixels: int) -> Image.Image:
    """Decode an image after checking its size from the header (before any pixel is read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
            pixels = im.width * im.height
            if pixels > max_pixels:
                im.close()
                raise DatasetError(f"{where}: image {path} is too large: {im.width}x{im.height} = {pixels:,} "
                                   f"pixels; the limit is {max_pixels:,} (max_image_pixels)")
            with im:
                return im.convert("RGB")
    except DatasetError:
        raise
    except Image.DecompressionBombError as exc:  # PIL refuses before we can read the size
        raise DatasetError(f"{where}: image {path} is too large ({exc}); the limit is {max_pixels:,} "
                           "pixels (max_image_pixels)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DatasetError(f"{where}: cannot read image {path}: {type(exc).__name__}: {exc}") from None


def _check_image(path: Path, where: str, checks: _Checks) -> None:
    _open_image(path, where, checks.max_image_pixels).close()


def _check_video(path: Path, where: str, checks: _Checks) -> None:
    """Demux every packet and decode the first frame: empty, garbage and truncated files fail."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise DatasetError(f"{where}: {path} has no video stream")
            stream = container.streams.video[0]
            expected = int(stream.frames or 0)
            packets = sum(1 for p in container.demux(stream) if p.size)
            if packets == 0 or (expected and packets < expected):
                raise DatasetError(f"{where}: video {path} is truncated ({packets} of {expected or '?'} frames)")
            container.seek(0, stream=stream)
            next(container.decode(stream))
    except DatasetError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, StopIteration, UnicodeDecodeError) as exc:
        raise DatasetError(f"{where}: cannot decode video {path}: {type(exc).__name__}: {exc}") from None


def row_to_task(row: DatasetRow, index: int, max_image_pixels: int = MAX_IMAGE_PIXELS) -> Task:
    """Materialise a row as a ``Task`` (opens the image; a file broken since loading names the row)."""
    images = {}
    if row.modality == "image":
        where = f"row {index} (id={row.task_id!r}): field 'image_path'"
        images["image"] = _open_image(row.media_path, where, max_image_pixels)
    return Task(
        task_id=row.task_id, family=row.data_source or row.ability or "dataset", modality=row.modality,
        question=row.question, answer=row.answer, answer_type=row.answer_type, options=row.options,
        tolerance=row.tolerance, images=images,
        video_path=str(row.media_path) if row.modality == "video" else None,
        metadata={"ability": row.ability, "data_source": row.data_source, "row": index},
    )
