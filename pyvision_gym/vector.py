"""Shared-memory support for the environments' spaces, so ``AsyncVectorEnv`` runs by default.

``gym.make_vec(id, num_envs=4, vectorization_mode="async")`` keeps observations in shared
memory, which Gymnasium only lays out for fixed-shape spaces. Text is stored as UTF-32 code
points with a length word (any character, not only the space's charset); an image sequence
of any sizes is written by the worker as one ``.npy`` bundle per environment in a private
folder on ``/dev/shm`` (tmpfs: shared memory with a file name) and read back by the parent
after the worker's reply, which is the order ``AsyncVectorEnv`` already guarantees.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

from .spaces import ImageSequence, UnicodeText


class LiveBatch(Sequence[Any]):
    """A batch read from shared memory on each access, as a numpy view would be.

    ``AsyncVectorEnv`` reads its shared memory once and relies on views seeing later writes;
    strings and image tuples are not views, so the batch reads item ``i`` when asked.
    ``copy.deepcopy`` (what the vector env returns with ``copy=True``) gives a plain tuple.
    """

    def __init__(self, n: int, read: Callable[[int], Any]) -> None:
        self._n, self._read = n, read

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return tuple(self._read(k) for k in range(*i.indices(self._n)))
        if not -self._n <= i < self._n:
            raise IndexError(i)
        return self._read(i % self._n)

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"LiveBatch({tuple(self)!r})"


@create_shared_memory.register(UnicodeText)
def _text_memory(space: UnicodeText, n: int = 1, ctx: ModuleType | Any = None) -> Any:
    return (ctx or mp).Array("I", n * (space.max_length + 1), lock=False)


def _text_slots(space: UnicodeText, memory: Any) -> np.ndarray:
    return np.frombuffer(memory, dtype=np.uint32).reshape(-1, space.max_length + 1)


@write_to_shared_memory.register(UnicodeText)
def _write_text(space: UnicodeText, index: int, value: str, memory: Any) -> None:
    points = np.frombuffer(value.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if len(points) > space.max_length:
        raise ValueError(f"text of {len(points)} characters does not fit the space's max_length {space.max_length}")
    slot = _text_slots(space, memory)[index]
    slot[0] = len(points)
    slot[1 : 1 + len(points)] = points


@read_from_shared_memory.register(UnicodeText)
def _read_text(space: UnicodeText, memory: Any, n: int = 1) -> LiveBatch:
    slots = _text_slots(space, memory)

    def read(i: int) -> str:
        return slots[i, 1 : 1 + int(slots[i, 0])].tobytes().decode("utf-32-le", "surrogatepass")

    return LiveBatch(n, read)


@create_shared_memory.register(ImageSequence)
def _images_memory(space: ImageSequence, n: int = 1, ctx: ModuleType | Any = None) -> str:
    root = "/dev/shm" if os.path.isdir("/dev/shm") else None
    folder = tempfile.mkdtemp(prefix="pyvision-vector-", dir=root)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@write_to_shared_memory.register(ImageSequence)
def _write_images(space: ImageSequence, index: int, value: tuple[np.ndarray, ...], memory: str) -> None:
    target = Path(memory) / f"{index}.npz"
    partial = target.with_suffix(".part.npz")
    np.savez(partial, *[np.ascontiguousarray(a, dtype=np.uint8) for a in value])
    os.replace(partial, target)


@read_from_shared_memory.register(ImageSequence)
def _read_images(space: ImageSequence, memory: str, n: int = 1) -> LiveBatch:
    def read(index: int) -> tuple[np.ndarray, ...]:
        path = Path(memory) / f"{index}.npz"
        if not path.exists():  # nothing written yet (AsyncVectorEnv reads once at construction)
            return ()
        with np.load(path) as bundle:
            return tuple(bundle[f"arr_{k}"] for k in range(len(bundle.files)))

    return LiveBatch(n, read)
