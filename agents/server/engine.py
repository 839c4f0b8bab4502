"""The server's generation engine: a queue of jobs and one thread that runs them, batched,
through the transformers backend.

Jobs with the same sampling settings that arrive within ``batch_wait_s`` share one batched
``generate`` (up to ``max_batch_size`` rows; a job asks for ``n`` rows). A job is cancelled
with :meth:`ChatService.cancel` (the server does so when its client goes away): a queued job
is dropped before it starts, a running one stops at its next token while the rest of its
batch goes on.
"""

from __future__ import annotations

import functools
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

from pyvision_gym.agents.backends.transformers_backend import HFBackend, RowControl
from pyvision_gym.agents.chat import Generation, Message, SamplingConfig

__all__ = ["ChatService", "Job", "JobCancelled"]


class JobCancelled(RuntimeError):
    """The job was cancelled before it produced a result."""


@dataclass(eq=False)
class Job:
    """One request: ``n`` generations of one chat. ``future`` gets the list of generations."""

    conversation: list[Message]
    sampling: SamplingConfig
    n: int = 1
    top_logprobs: int | None = None
    """``None``: no log-probs; ``k``: each token's log-prob and ``k`` alternatives."""
    on_token: Callable[[int, RowControl], None] | None = None
    """Called from the engine thread with (choice index, row) after each new token."""
    future: Future = field(default_factory=Future)
    cancelled: threading.Event = field(default_factory=threading.Event)
    controls: list[RowControl] = field(init=False)

    def __post_init__(self) -> None:
        hook = self.on_token
        self.controls = [
            RowControl(cancelled=self.cancelled, on_token=functools.partial(hook, i) if hook else None) for i in range(self.n)
        ]


def _settle(future: Future, result: Any = None, error: BaseException | None = None) -> None:
    """Resolve ``future`` unless its waiter has already given up on it."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
    except InvalidStateError:
        pass


class ChatService:
    """Owns the backend; one thread runs batched generation for queued jobs."""

    def __init__(self, backend: HFBackend, model_name: str, max_batch_size: int = 8, batch_wait_s: float = 0.01) -> None:
        self.backend = backend
        self.model_name = model_name
        self.max_batch_size = max(1, int(max_batch_size))
        self.batch_wait_s = float(batch_wait_s)
        self.created = int(time.time())
        self.batch_sizes: deque[int] = deque(maxlen=10_000)
        """Rows per ``generate`` call, most recent last (for monitoring and tests)."""
        self.counts = {"submitted": 0, "completed": 0, "cancelled": 0, "failed": 0}
        self.running = 0
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="vlm-serve-engine", daemon=True)
        self._thread.start()

    # -------------------------------------------------------------- jobs
    def submit(self, job: Job) -> Job:
        """Queue ``job``; its ``future`` resolves to ``n`` :class:`Generation` s."""
        with self._lock:
            self.counts["submitted"] += 1
        self._queue.put(job)
        return job

    def cancel(self, job: Job) -> None:
        """Stop ``job``: dropped if still queued, ended at its next token if running."""
        if not job.future.done():
            job.cancelled.set()

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self.counts[key] += n

    def _drop_cancelled(self, jobs: list[Job]) -> list[Job]:
        live = [j for j in jobs if not j.cancelled.is_set()]
        for j in jobs:
            if j.cancelled.is_set():
                self._count("cancelled")
                _settle(j.future, error=JobCancelled("cancelled before it started"))
        return live

    def _gather(self, first: Job, held: list[Job]) -> tuple[list[Job], list[Job]]:
        """A batch led by ``first``: held and newly arriving jobs with the same sampling
        settings, up to ``max_batch_size`` rows or ``batch_wait_s``; the others stay held."""
        batch, rest, rows = [first], [], first.n
        for h in held:
            fits = h.sampling == first.sampling and rows + h.n <= self.max_batch_size
            (batch if fits else rest).append(h)
            rows += h.n if fits else 0
        deadline = time.monotonic() + self.batch_wait_s
        while rows < self.max_batch_size:
            left = deadline - time.monotonic()
            try:
                nxt = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:  # shutting down: let the loop see it after this batch
                self._queue.put(None)
                break
            fits = nxt.sampling == first.sampling and rows + nxt.n <= self.max_batch_size
            (batch if fits else rest).append(nxt)
            rows += nxt.n if fits else 0
        return batch, rest

    def _loop(self) -> None:
        held: list[Job] = []
        while True:
            job = held.pop(0) if held else self._queue.get()
            if job is None:
                for j in held:
                    _settle(j.future, error=JobCancelled("the server is shutting down"))
                return
            batch, held = self._gather(job, held)
            held = self._drop_cancelled(held)
            batch = self._drop_cancelled(batch)
            if batch:
                self._run(batch)

    def _run(self, batch: list[Job]) -> None:
        """One batched ``generate`` for ``batch``; each job's future gets its ``n`` rows."""
        conversations = [j.conversation for j in batch for _ in range(j.n)]
        controls = [c for j in batch for c in j.controls]
        tops = [j.top_logprobs for j in batch if j.top_logprobs is not None]
        self.batch_sizes.append(len(conversations))
        self.running = len(batch)
        try:
            gens = self.backend.generate(conversations, batch[0].sampling, controls=controls, top_logprobs=max(tops, default=None))
        except Exception as e:  # the clients get the error; the server keeps serving
            self._count("failed", len(batch))
            for j in batch:
                _settle(j.future, error=e)
            return
        finally:
            self.running = 0
        start = 0
        for j in batch:
            mine: list[Generation] = gens[start : start + j.n]
            start += j.n
            self._count("cancelled" if j.cancelled.is_set() else "completed")
            _settle(j.future, mine)

    # -------------------------------------------------------------- identity and monitoring
    def stats(self) -> dict[str, Any]:
        """Job counters (submitted, completed, cancelled, failed), queue length and batches."""
        with self._lock:
            counts = dict(self.counts)
        return {
            **counts,
            "queued": self._queue.qsize(),
            "running": self.running,
            "batches": len(self.batch_sizes),
            "max_batch_rows": max(self.batch_sizes, default=0),
        }

    def models(self) -> dict[str, Any]:
        """The ``GET /v1/models`` listing: the served model, with its hash and pixel cap."""
        desc = self.backend.describe()
        entry = {
            "id": self.model_name,
            "object": "model",
            "created": self.created,
            "owned_by": "pyvision-gym",
            "root": desc.get("model"),
            "model_hash": desc.get("model_hash"),
            "backend": desc.get("backend"),
            "max_pixels": getattr(self.backend, "max_pixels", None),
        }
        return {"object": "list", "data": [entry]}

    def close(self) -> None:
        """Stop the engine thread (after the running batch) and free the model."""
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.backend.close()
