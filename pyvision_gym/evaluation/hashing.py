"""Content hashes of tasks: what a frozen suite pins and an evaluation checks."""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["task_content_hash"]


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
