"""A tiny, randomly initialised Qwen2.5-VL, built entirely on this machine (no hub downloads).

``build_tiny_qwen25vl(path)`` (or ``python -m pyvision_gym.agents.tiny_model OUT_DIR``, or
``pyvision-gym tiny-model OUT_DIR``) writes a folder that loads like a real Qwen2.5-VL
checkpoint, through transformers, vLLM and ``pyvision-gym serve`` alike:

- ``config.json`` + ``model.safetensors``: a Qwen2.5-VL with **random weights** — 2 decoder
  layers (hidden size 128, 4 attention heads, 2 KV heads, MLP 256), a 2-block vision tower
  (hidden 64, patch 14, 2×2 merge): about 1.6 M parameters, a 6 MB file;
- a byte-level BPE tokenizer (**4,096 tokens**, embedding rounded up to a multiple of 64)
  trained here in a second on a procedurally generated corpus of English, Python and the
  agent's tags (``<code>``, ``<answer>``, ``<interpreter>``), with Qwen's control tokens
  (``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>``, ``<|vision_start|>``,
  ``<|image_pad|>``, ...) as special tokens 0–7;
- ``preprocessor_config.json``: the Qwen2-VL image processor with small pixel limits (at most
  256 visual tokens per image) so that CPU runs stay fast; a Qwen-style chat template;
- ``processor_config.json`` naming the stock ``Qwen2_5_VLProcessor``, so the folder has the
  layout of a real checkpoint. That processor cannot be built without torchvision (its video
  half needs it): :func:`pyvision_gym.agents.backends.processor.load_processor` builds an
  image-only subclass from the folder instead, and the vLLM backend patches its worker
  interpreter (``agents/backends/vllm_shim.py``).

Every size is a keyword override (see :data:`DEFAULTS`); the build is deterministic in
``seed`` and cached: a second call with the same parameters returns at once (the parameters
and their hash are stored in ``tiny_build.json``).

What it is for: random weights write gibberish, so the model does not solve tasks; it makes
the whole pipeline run for real where no checkpoint can be downloaded — CPU tests of message
construction, batching, stop strings, backends and the server; the RL trainer's default
policy (small enough to train on a laptop CPU); and demos.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import random
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pyvision_gym.agents.chat import QWEN_CONTROL_TOKENS

__all__ = ["CHAT_TEMPLATE", "DEFAULTS", "SPECIAL_TOKENS", "build_tiny_qwen25vl", "build_tiny_tokenizer", "main"]

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


def build_tiny_tokenizer(seed: int = 0, vocab_size: int = 4096) -> Any:
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


def _qwen25vl_config(params: dict[str, Any], ids: dict[str, int], vocab: int) -> Any:
    """The ``Qwen2_5_VLConfig`` for ``params``, with the tokenizer's special-token ids."""
    from transformers import Qwen2_5_VLConfig

    heads = params["num_attention_heads"]
    half_head = params["hidden_size"] // heads // 2
    # M-RoPE splits each head's rotary half into (time, height, width) sections.
    section = [half_head - 2 * (half_head * 3 // 8), half_head * 3 // 8, half_head * 3 // 8]
    token_ids = {"bos_token_id": ids["<|endoftext|>"], "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"]}
    return Qwen2_5_VLConfig(
        text_config={
            "vocab_size": vocab,
            "hidden_size": params["hidden_size"],
            "intermediate_size": params["intermediate_size"],
            "num_hidden_layers": params["num_hidden_layers"],
            "num_attention_heads": heads,
            "num_key_value_heads": params["num_key_value_heads"],
            "max_position_embeddings": params["max_position_embeddings"],
            "rope_parameters": {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": section},
            **token_ids,
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
        **token_ids,
        tie_word_embeddings=False,
    )


def _write_folder(folder: Path, params: dict[str, Any], seed: int) -> None:
    """Build the model, tokenizer and processor for ``params`` and save them in ``folder``."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tokenizer = build_tiny_tokenizer(seed, params["vocab_size"])
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    config = _qwen25vl_config(params, ids, vocab=-(-len(tokenizer) // 64) * 64)
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = ids["<|im_end|>"]
    model.generation_config.pad_token_id = ids["<|endoftext|>"]
    model.generation_config.bos_token_id = ids["<|endoftext|>"]
    model.generation_config.do_sample = False
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=params["min_pixels"], max_pixels=params["max_pixels"], patch_size=14, merge_size=2, temporal_patch_size=2
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    image_processor.save_pretrained(folder)
    (folder / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    (folder / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2_5_VLProcessor"}, indent=2))
    (folder / BUILD_FILE).write_text(json.dumps(params, indent=2, sort_keys=True))


def build_tiny_qwen25vl(path: str | Path, seed: int = 0, force: bool = False, **overrides: Any) -> Path:
    """Build (or reuse) a tiny random Qwen2.5-VL folder at ``path``; return the path.

    ``overrides`` change entries of :data:`DEFAULTS` (sizes, pixel limits). The build is
    skipped when ``path`` already holds a model built with the same parameters, unless
    ``force``. The folder is written to a temporary sibling and renamed, so an interrupted
    build never leaves a half-written model that looks complete.
    """
    path = Path(path)
    params = _params(seed, overrides)
    if not force and _is_built(path, params):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time per folder (e.g. every rank of a torchrun job asks at once): the
    # others wait on the lock, then find the finished build instead of replacing it while the
    # first one is already loading it.
    with open(path.with_name(f"{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not force and _is_built(path, params):
            return path
        tmp = path.with_name(f"{path.name}.building-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        try:
            _write_folder(tmp, params, seed)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if path.exists():  # stale (another parameter set) or forced
            shutil.rmtree(path)
        tmp.rename(path)
    return path


def _override(text: str) -> tuple[str, int]:
    key, sep, value = text.partition("=")
    if not sep or key not in DEFAULTS:
        raise argparse.ArgumentTypeError(f"expected KEY=INT with KEY one of {', '.join(DEFAULTS)}, got {text!r}")
    try:
        return key, int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key} needs an integer, got {value!r}") from None


def main(argv: Sequence[str] | None = None) -> Path:
    """``python -m pyvision_gym.agents.tiny_model OUT_DIR [--seed N] [--force] [--set KEY=INT]``."""
    parser = argparse.ArgumentParser(prog="python -m pyvision_gym.agents.tiny_model", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="the model folder to write")
    parser.add_argument("--seed", type=int, default=0, help="weights and tokenizer seed (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the folder is up to date")
    parser.add_argument("--set", dest="overrides", type=_override, action="append", default=[], metavar="KEY=INT", help="override a size")
    args = parser.parse_args(argv)
    path = build_tiny_qwen25vl(args.out_dir, seed=args.seed, force=args.force, **dict(args.overrides))
    print(path)
    return path


if __name__ == "__main__":  # pragma: no cover - exercised through a subprocess in the tests
    main()
