"""Model folders and prompts: the chat template, the image pixel cap, an image-only Qwen-VL
processor (the stock processors need torchvision for their video half) and chat rendering.

Shared by the transformers and vLLM backends, so both render exactly the same prompt.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyvision_gym.agents.chat import Message, scrub_text

__all__ = [
    "QWEN_VL_PROCESSORS",
    "image_only_processor_class",
    "load_processor",
    "read_chat_template",
    "read_max_pixels",
    "render_chat",
    "torchvision_missing",
]

# Model types whose stock processor we replace by an image-only subclass (no torchvision).
QWEN_VL_PROCESSORS = {
    "qwen2_vl": "Qwen2VLProcessor",
    "qwen2_5_vl": "Qwen2_5_VLProcessor",
    "qwen3_vl": "Qwen3VLProcessor",
    "qwen3_vl_moe": "Qwen3VLProcessor",
}

_PROCESSOR_CLASSES: dict[str, type] = {}


def render_chat(conversation: Sequence[Message], tokenizer: Any, chat_template: str | None) -> str:
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


def torchvision_missing() -> bool:
    """Whether ``import torchvision`` would fail (then the PIL image processors are used)."""
    return importlib.util.find_spec("torchvision") is None


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


def _pil_image_processor(path: Path) -> Any:
    """The folder's image processor in its PIL implementation (``<type>Pil``), named directly."""
    import transformers

    config = json.loads((path / "preprocessor_config.json").read_text())
    name = config.get("image_processor_type", "").removesuffix("Fast") + "Pil"
    cls = getattr(transformers, name, None)
    if cls is None:
        raise ImportError(f"{path}: its image processor needs torchvision, and transformers has no {name}")
    return cls.from_pretrained(path)


def load_processor(path: str | Path) -> Any:
    """The processor of a model folder. Qwen-VL folders get the image-only subclass (built
    from ``AutoImageProcessor`` + ``AutoTokenizer`` + the folder's chat template); others go
    through ``AutoProcessor``."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    path = Path(path)
    model_type = json.loads((path / "config.json").read_text()).get("model_type", "")
    if model_type not in QWEN_VL_PROCESSORS:
        return AutoProcessor.from_pretrained(path)
    if torchvision_missing():
        try:
            image_processor = AutoImageProcessor.from_pretrained(path, backend="pil")
        except TypeError:  # transformers without the backend switch
            image_processor = AutoImageProcessor.from_pretrained(path)
        except ImportError:  # transformers < 5.11 (verl's venv): no AutoImageProcessor without torchvision
            image_processor = _pil_image_processor(path)
    else:
        image_processor = AutoImageProcessor.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    template = read_chat_template(path) or getattr(tokenizer, "chat_template", None)
    cls = image_only_processor_class(QWEN_VL_PROCESSORS[model_type])
    return cls(image_processor=image_processor, tokenizer=tokenizer, chat_template=template)
