"""The task prompt: how to write code and answer, what is preloaded, the question."""

from __future__ import annotations

from typing import Any

import av

FORMAT = """\
You answer a question about {what} by writing Python code and then giving a final answer.
Each reply is ONE of the two:
1. Code to run, in this exact form:
<code>
```python
# your code
```
</code>
It runs in a persistent Python session: variables, imports and figures carry over between turns. \
What it prints and the images it shows come back to you as the next message. Print values with \
print(); show images with display(img) (PIL images, numpy arrays, figures) or plt.show().
2. The final answer, which ends the task (code in the same reply is not run):
<answer>\\boxed{{your answer}}</answer>
"""

IMAGE_INPUTS = """\
Preloaded in the session: {names} (PIL.Image, RGB), plus np (numpy), plt (matplotlib.pyplot) and Image (PIL.Image).
{sizes}{seen}"""

VIDEO_INPUTS = """\
Preloaded in the session: `video`, a handle on the video, plus np (numpy), plt (matplotlib.pyplot) and Image (PIL.Image).
You cannot see the video: fetch the frames you need with video[i] (an H×W×3 uint8 array) or \
video.get_batch([i, j, ...]) (N×H×W×3) and show them with display(...) or plt.show(). \
len(video), video.fps, video.duration and video.frame_size give the metadata.
Video: {frames} frames at {fps:.2f} fps ({duration:.1f} s); frame size {width}x{height} pixels.
"""

RULES = """\
Available modules: numpy, PIL, matplotlib, scipy, skimage (selected submodules), math, statistics, \
collections, itertools, re, json and other pure-computation standard modules. There is no file, network \
or process access. Limits: {max_turns} turns, {max_images} images shown in total.
"""

ANSWER_HINT = {
    "choice": "Answer with the letter of the correct option.",
    "number": "Answer with a single number.",
    "mra": "Answer with a single number.",
    "string": "Answer with the exact text.",
    "math": "Answer with the final mathematical expression or value.",
}


def answer_hint(task: Any) -> str:
    """What form the answer should take ("" when the question already says)."""
    return "" if "answer with" in task.question.lower() else ANSWER_HINT.get(task.answer_type, "")


def build_prompt(task: Any, max_turns: int, max_images: int, video_meta: dict[str, Any] | None, show_image: bool,
                 tools: list[str] | None = None, question_in_session: bool = False) -> str:
    """The first observation's text for ``task`` (``tools``: helper functions already defined;
    ``question_in_session``: the session holds the question's text as ``question``)."""
    if task.modality == "video":
        what = "a video"
        inputs = VIDEO_INPUTS.format(**video_meta)
    else:
        names = list(task.images)
        what = "an image" if len(names) == 1 else f"{len(names)} images"
        sizes = "".join(f"{n}: {im.size[0]}x{im.size[1]} pixels (width x height)\n" for n, im in task.images.items())
        seen = (
            "The image is also attached to this message (possibly downscaled); zoom in with code to see details.\n"
            if show_image
            else "The image is NOT attached: look at it through code.\n"
        )
        inputs = IMAGE_INPUTS.format(names=", ".join(f"`{n}`" for n in names), sizes=sizes, seen=seen)
    parts = [
        FORMAT.format(what=what),
        inputs,
        ("These helper functions are already defined: " + ", ".join(tools) + "\n") if tools else "",
        "`question` (str) holds the question below.\n" if question_in_session else "",
        RULES.format(max_turns=max_turns, max_images=max_images),
        f"Question: {task.question.strip()}",
        answer_hint(task),
    ]
    return "\n".join(p.rstrip("\n") for p in parts if p) + "\n"


def video_metadata(path: str, runtime_info: dict[str, Any]) -> dict[str, Any]:
    """Frame count and fps as decord reports them (from the runtime), size from the container."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
    frames, fps = int(runtime_info["frames"]), float(runtime_info["fps"])
    return {"frames": frames, "fps": fps, "duration": frames / fps if fps else 0.0, "width": width, "height": height}
