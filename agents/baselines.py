"""Baseline agents: random, direct (no tools), the scripted expert, and full-video ingestion.

All of them read only the prompt text (and, for the privileged expert, ``Episode.task``),
so they run anywhere without a model. They bracket a real agent on a suite:

- :class:`RandomAgent` — valid turns with random content: the chance floor with tool use.
- :class:`DirectAgent` — answers at once with a fixed guess: the no-tool floor.
- :class:`ExpertAgent` — replays the family's scripted expert: the ceiling (privileged).
- :class:`FullVideoAgent` — shows the whole video the standard way (2 fps), then guesses:
  its ``visual_tokens`` measure what ingesting the full video costs in pixels shown.
"""

from __future__ import annotations

import re
import string
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from pyvision_gym.envs import all_families

# The agent's turn formats are written once, beside the experts that use them too.
from pyvision_gym.envs.experts import answer_action as answer_turn
from pyvision_gym.envs.experts import code_action as code_turn
from pyvision_gym.envs.experts import expert_action
from pyvision_gym.rollout.agent import Agent, Episode
from pyvision_gym.visual_tokens import VisualTokenCounter

__all__ = [
    "DirectAgent",
    "ExpertAgent",
    "FullVideoAgent",
    "RandomAgent",
    "answer_turn",
    "code_turn",
    "direct_guess",
    "prompt_answer_kind",
    "prompt_options",
]

_OPTION_RE = re.compile(r"\(([A-H])\)\s")
_TURNS_RE = re.compile(r"Limits:\s*(\d+)\s+turns")
_PRELOADED_RE = re.compile(r"Preloaded in the session:\s*(.*?)\s*\(PIL\.Image")
_NUMBER_RE = re.compile(
    r"\b(numbers?|integers?|how many|how much|how far|how long|seconds?|area|distance|length|count)\b",
    re.IGNORECASE,
)


# ---------------------------------------------------------------------- prompt reading
def _question(prompt: str) -> str:
    """The question part of the task prompt (after the last ``Question:``), else the whole text."""
    i = prompt.rfind("Question:")
    return prompt[i + len("Question:") :] if i >= 0 else prompt


def prompt_options(prompt: str) -> list[str]:
    """Option letters ``(A) … (B) …`` in the question, in order, without repeats."""
    seen: list[str] = []
    for letter in _OPTION_RE.findall(_question(prompt) + " "):
        if letter not in seen:
            seen.append(letter)
    return seen


def prompt_answer_kind(prompt: str) -> str:
    """``"choice"`` when the question lists options, ``"number"`` when it asks for a number,
    else ``"string"`` (judged from the question text only: agents do not see the task)."""
    q = _question(prompt)
    if prompt_options(prompt):
        return "choice"
    return "number" if _NUMBER_RE.search(q) else "string"


def _max_turns(prompt: str) -> int | None:
    m = _TURNS_RE.search(prompt)
    return int(m.group(1)) if m else None


def _image_names(prompt: str) -> list[str]:
    m = _PRELOADED_RE.search(prompt)
    names = re.findall(r"`(\w+)`", m.group(1)) if m else []
    return names or ["image"]


def direct_guess(prompt: str) -> str:
    """The fixed no-tool guess: option ``A`` for multiple choice, ``0`` for numbers,
    ``unknown`` for free text."""
    kind = prompt_answer_kind(prompt)
    if kind == "choice":
        return prompt_options(prompt)[0]
    return "0" if kind == "number" else "unknown"


# ---------------------------------------------------------------------- agents
class RandomAgent(Agent):
    """Valid turns with random content, deterministic in (seed, episode id, turn).

    Each turn, with probability ``p_code`` (never on the last allowed turn) it writes valid
    code: for images a random crop shown with ``display`` or a print of the size / mean
    colour; for videos a random frame (or a few) shown, or a print of the metadata.
    Otherwise it answers a random guess: a random option letter for multiple choice, a
    random integer in [0, 10] for numbers, a random 3–6 character token for text.
    """

    def __init__(self, seed: int = 0, p_code: float = 0.5) -> None:
        if seed < 0:
            raise ValueError(f"random agent seed must be >= 0, got {seed}")
        if not 0.0 <= p_code <= 1.0:
            raise ValueError(f"p_code must be in [0, 1], got {p_code}")
        self.seed = int(seed)
        self.p_code = float(p_code)
        self.spec = f"random:{self.seed}"

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "agent": "random", "seed": self.seed, "p_code": self.p_code}

    def _rng(self, ep: Episode) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(ep.episode_id.encode()), ep.turn])

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        return [self._one(ep) for ep in episodes]

    def _one(self, ep: Episode) -> str:
        rng = self._rng(ep)
        prompt = ep.first.text
        limit = _max_turns(prompt)
        last_turn = limit is not None and ep.turn + 1 >= limit
        if not last_turn and rng.random() < self.p_code:
            return code_turn(self._video_code(rng) if ep.modality == "video" else self._image_code(rng, prompt))
        return answer_turn(self._guess(rng, prompt))

    @staticmethod
    def _guess(rng: np.random.Generator, prompt: str) -> str:
        kind = prompt_answer_kind(prompt)
        if kind == "choice":
            opts = prompt_options(prompt)
            return opts[int(rng.integers(len(opts)))]
        if kind == "number":
            return str(int(rng.integers(0, 11)))
        alphabet = string.ascii_uppercase + string.digits
        return "".join(alphabet[int(i)] for i in rng.integers(len(alphabet), size=int(rng.integers(3, 7))))

    @staticmethod
    def _image_code(rng: np.random.Generator, prompt: str) -> str:
        names = _image_names(prompt)
        n = names[int(rng.integers(len(names)))]
        pick = int(rng.integers(3))
        if pick == 0:
            x0, y0 = (float(v) for v in rng.uniform(0.0, 0.8, size=2))
            x1, y1 = x0 + float(rng.uniform(0.05, 1.0 - x0)), y0 + float(rng.uniform(0.05, 1.0 - y0))
            return (
                f"w, h = {n}.size\n"
                f"x0, y0 = int({x0:.3f} * w), int({y0:.3f} * h)\n"
                f"box = (x0, y0, max(x0 + 1, int({x1:.3f} * w)), max(y0 + 1, int({y1:.3f} * h)))\n"
                f"crop = {n}.crop(box)\n"
                "display(crop)\n"
                'print("crop", box, crop.size)'
            )
        if pick == 1:
            return f'print("size", {n}.size, "mode", {n}.mode)'
        return f"arr = np.asarray({n})\nprint(arr.shape, arr.reshape(-1, arr.shape[-1]).mean(axis=0).round(1).tolist())"

    @staticmethod
    def _video_code(rng: np.random.Generator) -> str:
        pick = int(rng.integers(3))
        if pick == 0:
            f = float(rng.random())
            return (
                f"i = min(len(video) - 1, int({f:.4f} * len(video)))\n"
                "display(video[i])\n"
                'print("frame", i, "of", len(video), "at", round(i / video.fps, 2), "s")'
            )
        if pick == 1:
            fr = sorted(float(v) for v in rng.random(int(rng.integers(2, 5))))
            return (
                f"idx = [min(len(video) - 1, int(f * len(video))) for f in {[round(v, 4) for v in fr]}]\n"
                "frames = video.get_batch(idx)\n"
                "for k in range(len(idx)):\n"
                "    display(frames[k])\n"
                'print("frames", idx)'
            )
        return 'print(len(video), "frames at", video.fps, "fps;", video.duration, "s; size", video.frame_size)'


class DirectAgent(Agent):
    """No tool use: answers in its first turn from the prompt alone, with a fixed guess
    (:func:`direct_guess`: ``A`` / ``0`` / ``unknown``). The no-tool floor."""

    spec = "direct"

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "agent": "direct", "guess": "A for choice, 0 for numbers, 'unknown' for text"}

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        return [answer_turn(direct_guess(ep.first.text)) for ep in episodes]


class ExpertAgent(Agent):
    """Replays the family's scripted expert (privileged: reads ``Episode.task``).

    Turn ``t < len(expert)`` sends the expert's code turn ``t``; then it answers with the
    last non-empty line of the last observation. Generated-family tasks only: a dataset
    task (or a missing ``Episode.task``) raises ``ValueError``.
    """

    spec = "expert"
    privileged = True

    def __init__(self) -> None:
        self._families: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "agent": "expert", "privileged": True}

    def _family(self, ep: Episode) -> Any:
        task = ep.task
        if task is None:
            raise ValueError(f"expert agent: episode {ep.episode_id} carries no task; the expert is privileged and needs Episode.task")
        if self._families is None:
            self._families = all_families()
        fam = self._families.get(task.family)
        if fam is None or fam.modality != task.modality or "data_source" in (task.metadata or {}):
            raise ValueError(
                f"expert agent: task {task.task_id!r} (family {task.family!r}) is not from a generated task family; "
                "the scripted expert exists only for the built-in families, not for dataset tasks"
            )
        return fam

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        return [
            expert_action(self._family(ep), ep.task, ep.turn, ep.turns[-1][1].text if ep.turns else "",
                          toolbox=bool(ep.info.get("toolbox")),
                          question_reader=bool(ep.info.get("question_reader")))
            for ep in episodes
        ]


class FullVideoAgent(Agent):
    """Ingests the whole video the standard way, then answers like :class:`DirectAgent`.

    Turn 0 (video tasks): ONE code turn that samples ``n`` frames uniformly (Qwen2.5-VL's
    ``smart_nframes``: 2 fps, at least 4 and at most 768 frames, an even count, indices
    ``round(linspace(0, len-1, n))``, computed in the runtime from ``len(video)`` and
    ``video.fps``), fetches them with ``video.get_batch`` and shows them all with
    ``display``. Turn 1: the direct guess. Image tasks: the direct guess at once.

    Token accounting: each shown frame is priced by the environment as one image at its
    native size (``VisualTokenCounter.image``), with no 2-frame temporal merge and the image
    (not video) pixel bounds, whereas ``visual_tokens_full_video`` prices the same frames
    as a video (two frames per temporal patch, video min/max/total pixels). For the
    256×192 generated videos that is 63 tokens per shown frame against 70 per frame as
    video (the video path upscales frames to its 128·28² minimum), so ``visual_tokens`` is
    0.9 × ``visual_tokens_full_video``; frames are shown at native size (the runtime only
    downscales images above 4096² pixels).

    The runtime's per-call image cap (``RuntimeConfig.max_images_per_call``, default 16)
    and the environment's ``max_images`` must admit all frames: the eval applies
    :attr:`env_overrides` and :attr:`runtime_overrides` for this agent.
    """

    spec = "full-video"
    max_frames_shown = 1024
    env_overrides: dict[str, Any] = {"max_images": max_frames_shown}
    runtime_overrides: dict[str, Any] = {"max_images_per_call": max_frames_shown}

    def __init__(self, counter: VisualTokenCounter | None = None) -> None:
        self.counter = counter or VisualTokenCounter()
        if self.counter.max_frames > self.max_frames_shown:
            raise ValueError(f"counter.max_frames ({self.counter.max_frames}) exceeds {self.max_frames_shown}")

    def describe(self) -> dict[str, Any]:
        c = self.counter
        return {
            "spec": self.spec, "agent": "full-video", "sample_fps": c.sample_fps,
            "min_frames": c.min_frames, "max_frames": c.max_frames, "frame_factor": c.frame_factor,
        }

    def sampling_code(self) -> str:
        """The code turn that shows the whole video (``smart_nframes`` in the runtime)."""
        c = self.counter
        ff = int(c.frame_factor)
        return (
            "import math\n"
            "total, fps = len(video), float(video.fps)\n"
            f"lo = math.ceil({int(c.min_frames)} / {ff}) * {ff}\n"
            f"hi = math.floor(min({int(c.max_frames)}, total) / {ff}) * {ff}\n"
            f"n = min(max(total / fps * {float(c.sample_fps)!r}, lo), hi, total)\n"
            f"n = max(min({ff}, total), math.floor(n / {ff}) * {ff})\n"
            "idx = np.linspace(0, total - 1, n).round().astype(int).tolist()\n"
            "frames = video.get_batch(idx)\n"
            "for k in range(len(idx)):\n"
            "    display(frames[k])\n"
            f'print("showed", n, "frames sampled uniformly at {float(c.sample_fps):g} fps from", total, "frames")'
        )

    def act(self, episodes: Sequence[Episode]) -> list[str]:
        out = []
        for ep in episodes:
            if ep.modality == "video" and ep.turn == 0:
                out.append(code_turn(self.sampling_code()))
            else:
                out.append(answer_turn(direct_guess(ep.first.text)))
        return out
