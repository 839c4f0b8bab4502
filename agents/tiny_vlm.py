"""A tiny, randomly initialised Qwen2.5-VL built entirely on this machine (no hub downloads).

``build_tiny_qwen25vl(path)`` writes a folder that loads like a real Qwen2.5-VL checkpoint:

- ``config.json`` + ``model.safetensors``: a 2-layer Qwen2.5-VL (hidden 128, vision depth 2,
  about 1.6 M parameters) with random weights;
- a byte-level BPE tokenizer trained here, in a second, on a procedurally generated corpus of
  English, Python and the agent's tags, with Qwen's control tokens (``<|im_start|>``,
  ``<|vision_start|>``, ``<|image_pad|>``, ...) as special tokens;
- ``preprocessor_config.json`` (Qwen2-VL image processor, with small pixel limits so that CPU
  tests stay fast) and a Qwen-style chat template;
- ``processor_config.json`` naming the stock ``Qwen2_5_VLProcessor``, so the folder has the
  layout of a real checkpoint. That processor cannot be built without torchvision (its video
  half needs it): ``agents.vlm_backends.load_processor`` builds the image-only subclass
  (``image_only_processor_class``) from the folder instead, and the vLLM backend patches its
  worker interpreter (``agents.vlm_backends.VLLM_SHIM``).

The folder is cached: a second call with the same build parameters returns at once (the
parameters and their hash are stored in ``tiny_build.json``).

Random weights produce gibberish: the model exists to exercise the plumbing (message
construction, batching, stop strings, backends, server) for real, not to solve tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from typing import Any

# The processor that loads this folder without torchvision (re-exported for convenience).
from .vlm_backends import QWEN_CONTROL_TOKENS, image_only_processor_class, load_processor

__all__ = [
    "CHAT_TEMPLATE",
    "DEFAULTS",
    "SPECIAL_TOKENS",
    "build_tiny_qwen25vl",
    "build_tiny_tokenizer",
    "image_only_processor_class",
    "load_processor",
]

BUILD_VERSION = 2
BUILD_FILE = "tiny_build.json"

# Qwen2.5-VL's control tokens, in Qwen's order (ids 0..7 here, after training they stay first).
SPECIAL_TOKENS = QWEN_CONTROL_TOKENS

# Qwen2-VL-style chat template: string or list-of-parts content; image parts become
# <|vision_start|><|image_pad|><|vision_end|> (the processor expands the pad to the image's
# token count). A system message is used when given, otherwise none is added.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- else -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'text' -%}{{- part['text'] -}}"
    "{%- elif part['type'] in ('image', 'image_url') -%}"
    "{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

DEFAULTS: dict[str, Any] = {
    "vocab_size": 4096,  # tokenizer size; the embedding is rounded up to a multiple of 64
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vision_depth": 2,
    "vision_hidden_size": 64,
    "vision_intermediate_size": 128,
    "vision_num_heads": 2,
    "min_pixels": 56 * 56,
    "max_pixels": 256 * 28 * 28,  # at most 256 visual tokens per image: fast on CPU
    "max_position_embeddings": 32768,
}

_WORDS = (
    "the a an of to in and is are was be with for on at by from as that this it which what how "
    "many image video frame object color red green blue yellow cyan magenta black white gray orange "
    "purple left right top bottom above below between next near far large small largest smallest "
    "count number angle degrees line lines cross crossing smaller bigger length width height pixel "
    "pixels size area region crop zoom answer question option options letter correct final code "
    "python print show display run output result error value values array shape mean max min sum "
    "first second third last each every there where when why point points circle square triangle "
    "chart bar bars axis label text read word words table row column time seconds event events "
    "move moves moving appears disappears rotate brightness contrast position relative distance "
    "you we they will should must can not no yes true false step think look check compute"
).split()

_CODE_LINES = (
    "import numpy as np",
    "from PIL import Image",
    "import matplotlib.pyplot as plt",
    "arr = np.asarray(image)",
    "print(image.size)",
    "crop = image.crop(({a}, {b}, {c}, {d}))",
    "display(crop.resize(({c}, {d})))",
    "mask = (arr[..., 0] > {a}) & (arr[..., 2] < {b})",
    "ys, xs = np.nonzero(mask)",
    "print(xs.mean(), ys.mean())",
    "frames = video.get_batch([{a}, {b}, {c}])",
    "print(len(video), video.fps)",
    "for i in range({a}):",
    "    print(i, arr[i].mean())",
    "plt.imshow(arr[{a}:{b}, {c}:{d}])",
    "plt.axis('off')",
    "plt.show()",
    "angle = np.degrees(np.arctan2({a}, {b}))",
    "print(round(angle, 1))",
)


def _corpus(seed: int, n_lines: int = 6000) -> list[str]:
    """A deterministic corpus of prose, code, numbers and the agent's tags."""
    rng = random.Random(seed)
    lines: list[str] = []
    for i in range(n_lines):
        kind = i % 4
        if kind == 0:
            n = rng.randint(6, 20)
            sent = " ".join(rng.choice(_WORDS) for _ in range(n))
            lines.append(sent.capitalize() + rng.choice((".", "?", ":")))
        elif kind == 1:
            body = "\n".join(
                rng.choice(_CODE_LINES).format(**{k: rng.randint(0, 999) for k in "abcd"})
                for _ in range(rng.randint(2, 6))
            )
            lines.append(f"<code>\n```python\n{body}\n```\n</code>")
        elif kind == 2:
            ans = rng.choice(("A", "B", "C", "D", str(rng.randint(0, 360)), f"{rng.random() * 100:.1f}"))
            lines.append(f"<answer>\\boxed{{{ans}}}</answer>")
        else:
            vals = ", ".join(str(rng.randint(0, 4000)) for _ in range(rng.randint(1, 6)))
            lines.append(f"<interpreter>\nText Result:\n({vals})\nImage Result:\n</interpreter>")
    return lines


def _params(seed: int, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = set(overrides) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown tiny-model parameters {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    params = {**DEFAULTS, **overrides, "seed": int(seed), "build_version": BUILD_VERSION}
    params["hash"] = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    return params


def _is_built(path: Path, params: dict[str, Any]) -> bool:
    try:
        stored = json.loads((path / BUILD_FILE).read_text())
    except (OSError, ValueError):
        return False
    needed = ("config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json")
    return stored.get("hash") == params["hash"] and all((path / f).is_file() for f in needed)


def build_tiny_tokenizer(seed: int = 0, vocab_size: int = 4096):
    """A byte-level BPE trained on :func:`_corpus`, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(seed), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        additional_special_tokens=list(SPECIAL_TOKENS[1:]),
        model_max_length=DEFAULTS["max_position_embeddings"],
        padding_side="left",
        chat_template=CHAT_TEMPLATE,
    )


def build_tiny_qwen25vl(path: str | Path, seed: int = 0, force: bool = False, **overrides: Any) -> Path:
    """Build (or reuse) a tiny random Qwen2.5-VL folder at ``path``; return the path.

    ``overrides`` change entries of :data:`DEFAULTS` (sizes, pixel limits). The build is
    skipped when ``path`` already holds a model built with the same parameters, unless
    ``force``. The folder is written to a temporary sibling and renamed, so an interrupted
    build never leaves a half-written model that looks complete.
    """
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    path = Path(path)
    params = _params(seed, overrides)
    if not force and _is_built(path, params):
        return path

    tokenizer = build_tiny_tokenizer(seed, params["vocab_size"])
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    vocab = -(-len(tokenizer) // 64) * 64
    heads = params["num_attention_heads"]
    half_head = params["hidden_size"] // heads // 2
    # M-RoPE splits each head's rotary half into (time, height, width) sections.
    section = [half_head - 2 * (half_head * 3 // 8), half_head * 3 // 8, half_head * 3 // 8]
    config = Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": params["hidden_size"],
            "intermediate_size": params["intermediate_size"],
            "num_hidden_layers": params["num_hidden_layers"],
            "num_attention_heads": heads,
            "num_key_value_heads": params["num_key_value_heads"],
            "max_position_embeddings": params["max_position_embeddings"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": section},
            "bos_token_id": ids["<|endoftext|>"],
            "eos_token_id": ids["<|im_end|>"],
            "pad_token_id": ids["<|endoftext|>"],
            "tie_word_embeddings": False,
        },
        vision_config={
            "depth": params["vision_depth"],
            "hidden_size": params["vision_hidden_size"],
            "intermediate_size": params["vision_intermediate_size"],
            "num_heads": params["vision_num_heads"],
            "out_hidden_size": params["hidden_size"],
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [params["vision_depth"] - 1],
        },
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False

    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=params["min_pixels"], max_pixels=params["max_pixels"], patch_size=14, merge_size=2, temporal_patch_size=2
    )

    tmp = path.with_name(f"{path.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    image_processor.save_pretrained(tmp)
    (tmp / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (tmp / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2_5_VLProcessor"}, indent=2))
    (tmp / BUILD_FILE).write_text(json.dumps(params, indent=2, sort_keys=True))
    if not force and _is_built(path, params):  # another process finished the same build first
        shutil.rmtree(tmp)
        return path
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


if __name__ == "__main__":  # pragma: no cover - manual use
    import sys

    print(build_tiny_qwen25vl(sys.argv[1] if len(sys.argv) > 1 else "tiny-qwen25vl"))
