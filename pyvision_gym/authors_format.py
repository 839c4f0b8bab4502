"""Prompt styles, and the released PyVision-RL format (``prompt_style="pyvision"``).

``"default"`` is this project's own prompt and observation text (:mod:`pyvision_gym.prompts`).
``"pyvision"`` reproduces what the authors' released checkpoints were trained on, so that they
run unchanged:

- **Runtime names**: the input images are preloaded as ``image_clue_0``, ``image_clue_1``, …
  (PIL images) and the video as ``video_clue_0`` (a decord-style reader: ``len(v)``,
  ``v[i].asnumpy()``, ``v.get_batch(idx).asnumpy()``, ``v.get_avg_fps()``).
- **Prompt**: the instructions go into the first user turn (the model's chat template adds its
  default system message). An image prompt starts with ``<image_clue_0><image></image_clue_0>``
  (each ``<image>`` is where an image of ``obs["images"]`` goes, in order), then states the
  image size as ``Image Width: W; Image Height: H`` under ``*image resolution:*`` and the
  question under ``*user question:*``. A video prompt carries no frames, only
  ``Frame Width: W; Frame Height: H;`` / ``Video Length: N; Sample FPS: F`` and where the video
  was read to, under ``*Video Information:*`` and ``*User Question:*``.
- **Turns**: code as ``<code>\\n```python\\n…\\n```\\n</code>``, the answer as
  ``<answer>\\n\\boxed{…}\\n</answer>``.
- **Tool output**, as the released tools wrap it (images tagged ``<image_clue_k>`` with ``k``
  counting on from the input images, so the first figure of an image task is
  ``image_clue_1`` and of a video task ``image_clue_0``)::

      image, text only:   <tool_response>\\n<interpreter>\\nText Result:\\n{out}</interpreter>\\n\\n</tool_response>
      image, with images: <tool_response>\\n<interpreter>Text Result:\\n{out}\\nImage Result:\\n
                          <image_clue_k><image></image_clue_k>…</interpreter>\\n\\n</tool_response>
      video, text only:   <tool_response>\\n<interpreter>\\nText Result:\\n{out}\\n</interpreter>\\n\\n</tool_response>
      video, with images: <tool_response>\\n<interpreter>\\nText Result:\\n{out}\\nImage Result:\\n
                          <image_clue_k><image></image_clue_k>…</interpreter>\\n\\n</tool_response>
      an error:           <tool_response>\\n<interpreter>Execution error: {error}</interpreter>\\n\\n</tool_response>

  ``{out}`` is the printed output, stripped. Every observation holds exactly one ``<image>``
  per image it carries (a literal ``<image>`` in printed text is written ``<image >``).
"""

from __future__ import annotations

from typing import Any

PROMPT_STYLES: tuple[str, ...] = ("default", "pyvision")
IMAGE_PLACEHOLDER = "<image>"
VIDEO_NAME = "video_clue_0"
#: What the agent's turns stop at in the released rollout (the answer ends with end-of-turn).
STOP_STRINGS: tuple[str, ...] = ("</code>",)
#: The Qwen2.5-VL chat template's default system message, which the released prompts relied on.
SYSTEM_PROMPT = "You are a helpful assistant."
#: The per-turn token cap of the released training command.
MAX_NEW_TOKENS = 10_240

__all__ = [
    "IMAGE_PLACEHOLDER",
    "MAX_NEW_TOKENS",
    "PROMPT_STYLES",
    "STOP_STRINGS",
    "SYSTEM_PROMPT",
    "VIDEO_NAME",
    "build_prompt",
    "check_prompt_style",
    "clue_block",
    "error_output",
    "image_names",
    "notice",
    "tool_output",
    "video_info",
]

_ANSWER_FORMAT = "<answer>\n\\boxed{'your final answer here'}\n</answer>"

_PREAMBLE = """\
You are an agent: keep working on the user's query until it is completely resolved, and end your \
turn only when you are sure the problem is solved.

Solve the problem step by step. You can write executable Python code to support your reasoning; \
an external sandbox runs it.

Plan carefully before each code call and reflect carefully on what the previous calls returned. \
Do not solve the problem with code calls alone: keep reasoning between them.
"""

_IMAGE_INPUTS = """\
The provided images are already loaded, in order: the i-th image is the global variable \
`image_clue_i`, read with PIL.Image.open(). Use these variables directly in your code; do not load \
the images again.{seen}

This is a visual question: use Python (e.g. matplotlib) to analyse or transform the images whenever \
that helps your understanding, for example to zoom in, rotate, adjust the contrast, compute \
statistics or isolate features.

To look at an image or a plot, call plt.show(); do not save it. Do not use image-processing \
libraries such as cv2 or PIL for the processing. To check a variable's value you MUST print() it.
"""

_VIDEO_INPUTS = """\
The provided videos are already loaded, in order: the j-th video is the global variable \
`video_clue_j`, read with decord's VideoReader(). Use these variables directly in your code; do not \
load the videos again.

This is a visual question: use Python (e.g. matplotlib) to analyse or transform images whenever that \
helps your understanding, for example to zoom in, rotate, adjust the contrast, compute statistics or \
isolate features. Use Python (decord's reader interface) to sample the video frames you need.

Notes:
1. To look at an image or a plot, call plt.show(); do not save it.
2. Do not use image-processing libraries such as cv2 or PIL for the processing.
3. You CANNOT see the video itself: to reason about it you MUST sample frames and show them with plt.show().
4. To check a variable's value you MUST print() it.
5. Sample as many frames from `video_clue_0` as the question needs.
"""

_FORMAT = f"""\
The sandbox's output comes back wrapped in `<interpreter>output_str</interpreter>`. Write complete \
scripts, with the imports they need. Wrap each code snippet as `<code>
```python
code snippet
```
</code>`.
The last part of your response must be in this format:
{_ANSWER_FORMAT}
"""

_QUESTION = """\
*{label}:*
Answer the following question about the {what} and put the answer in the format \\boxed{{answer}}

{query}
{hint}
Remember to end your response with the final answer in this format:
"""


def check_prompt_style(style: Any) -> str:
    """``style`` if it is one of :data:`PROMPT_STYLES`, else a ``ValueError`` listing them."""
    if style not in PROMPT_STYLES:
        raise ValueError(f"unknown prompt_style {style!r}; valid styles: {', '.join(map(repr, PROMPT_STYLES))}")
    return style


def image_names(count: int) -> list[str]:
    """The runtime names of ``count`` input images: ``image_clue_0``, ``image_clue_1``, …"""
    return [f"image_clue_{i}" for i in range(count)]


def clue_block(first: int, count: int) -> str:
    """``<image_clue_k><image></image_clue_k>`` for ``k = first … first+count-1``."""
    return "".join(f"<image_clue_{k}>{IMAGE_PLACEHOLDER}</image_clue_{k}>" for k in range(first, first + count))


def _escape(text: str) -> str:
    """Text that cannot be mistaken for an image placeholder."""
    return text.replace(IMAGE_PLACEHOLDER, "<image >")


def video_info(meta: dict[str, Any]) -> str:
    """The released video prompt's metadata lines (frame size, frame count, average fps)."""
    return (
        f"Frame Width: {meta['width']}; Frame Height: {meta['height']};\n"
        f"Video Length: {meta['frames']}; Sample FPS: {meta['fps']:.2f}\n"
        f"The original video has been read into the global variable `{VIDEO_NAME}`."
    )


def build_prompt(task: Any, video_meta: dict[str, Any] | None, show_image: bool, hint: str = "") -> str:
    """The first observation's text for ``task`` in the released format.

    Image tasks with ``show_image`` begin with one ``<image_clue_i><image></image_clue_i>``
    per input image; ``hint`` (e.g. "Answer with the letter of the correct option.") follows
    the question.
    """
    query = _escape(task.question.strip())
    hint = f"\n{hint}\n" if hint else ""
    if task.modality == "video":
        body = [_PREAMBLE, _VIDEO_INPUTS, _FORMAT, "*Video Information:*\n", video_info(video_meta) + "\n"]
        return "\n".join(body) + "\n" + _QUESTION.format(label="User Question", what="video", query=query, hint=hint) + _ANSWER_FORMAT
    sizes = [im.size for im in task.images.values()]
    seen = "" if show_image else " The images are NOT attached to this message: look at them through code."
    resolution = "\n".join(f"Image Width: {w}; Image Height: {h}" for w, h in sizes)
    body = [_PREAMBLE, _IMAGE_INPUTS.format(seen=seen), _FORMAT, "*image resolution:*\n", resolution + "\n"]
    head = clue_block(0, len(sizes)) + "\n" if show_image else ""
    return head + "\n".join(body) + "\n" + _QUESTION.format(label="user question", what="image", query=query, hint=hint) + _ANSWER_FORMAT


def tool_output(modality: str, output: str, image_count: int, first_clue: int) -> str:
    """A successful code turn's observation text, wrapped as the released tool wraps it."""
    out = _escape(output.strip())
    if image_count == 0:
        text = f"\nText Result:\n{out}" + ("\n" if modality == "video" else "")
        return f"<tool_response>\n<interpreter>{text}</interpreter>\n\n</tool_response>"
    lead = "\n" if modality == "video" else ""
    clues = clue_block(first_clue, image_count)
    return f"<tool_response>\n<interpreter>{lead}Text Result:\n{out}\nImage Result:\n{clues}</interpreter>\n\n</tool_response>"


def error_output(message: str, output: str = "", image_count: int = 0, first_clue: int = 0) -> str:
    """A failed turn's observation: ``Execution error: …`` in the released wrapping (any printed
    output and shown images before it are kept, so nothing the turn produced is lost)."""
    out = _escape(output.strip())
    body = (f"Text Result:\n{out}\n" if out else "") + f"Execution error: {_escape(message.strip())}"
    if image_count:
        body += f"\nImage Result:\n{clue_block(first_clue, image_count)}"
    return f"<tool_response>\n<interpreter>{body}</interpreter>\n\n</tool_response>"


def notice(text: str) -> str:
    """A message from the environment (e.g. the format help) in the released wrapping."""
    return f"<tool_response>\n<interpreter>{_escape(text.strip())}</interpreter>\n\n</tool_response>"
