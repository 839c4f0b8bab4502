"""``PyVisionEnv``: one Gymnasium environment for image and video tasks with code as the action.

The episode contract (the public API; the README documents it):

- ``reset(seed=...)`` → ``(obs, info)``; ``obs = {"text": prompt, "images": (H×W×3 uint8, ...)}``.
- ``step(action: str)``: the action is the agent's whole turn. ``<answer>…</answer>`` ends the
  episode (code in the same turn is not run); otherwise a ```` ```python ```` block (inside
  ``<code>…</code>`` or bare) runs in the episode's runtime and its output and shown images are
  the next observation; a turn with neither gets an explanation of the format.
- Truncation at ``max_turns`` (``EXCEED_MAX_TURNS``) or past ``max_images`` shown
  (``EXCEED_MAX_IMAGES``); with ``terminate_on_error=True`` a failed turn ends the episode
  (``ERROR_IN_ACTION``).
- Reward on the final step only: ``reward(score, tool_calls)`` (default: accuracy +
  ``tool_reward_per_turn`` × successful tool turns when the answer is correct).
- ``prompt_style="pyvision"`` speaks the released PyVision-RL format instead of this project's
  (inputs as ``image_clue_0`` / ``video_clue_0``, their prompt and tool-output wrapping; see
  :mod:`pyvision_gym.authors_format`).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.envs.registration import EnvSpec
from PIL import Image, ImageDraw, ImageFont

from . import (
    authors_format,
    prompts,
    vector,  # noqa: F401 - shared-memory layouts for AsyncVectorEnv
)
from .datasets import DatasetRow, load_dataset, row_to_task
from .envs import families_for
from .envs.experts import toolbox_helpers, toolbox_signatures, toolbox_source
from .parsing import format_help, parse_action
from .rewards import RewardFn, make_reward
from .runtime import Runtime
from .runtime_config import RuntimeConfig, resolve_runtime_config
from .scoring import ScoreResult, score_answer
from .spaces import ImageSequence, text_space
from .visual_tokens import VisualTokenCounter

END_REASONS = ("DONE", "EXCEED_MAX_TURNS", "EXCEED_MAX_IMAGES", "ERROR_IN_ACTION")
# Disjoint task-seed ranges per split: reset(seed=s) on split X uses task seed OFFSET[X] + s.
SPLIT_OFFSETS = {"train": 0, "val": 1_000_000_000, "test": 2_000_000_000}
SPLIT_SIZE = 1_000_000_000


def default_cache_dir() -> Path:
    """Where generated media are cached: ``$PYVISION_GYM_CACHE`` or ``~/.cache/pyvision-gym``."""
    return Path(os.environ.get("PYVISION_GYM_CACHE", Path.home() / ".cache" / "pyvision-gym")).expanduser()


@dataclass
class TurnRecord:
    """One step of the transcript: what the agent sent and what came back."""

    turn: int
    action: str
    kind: str  # "answer" | "code" | "none"
    code: str | None = None
    answer: str | None = None
    ignored_code: bool = False
    observation: str = ""
    images: list[np.ndarray] = field(default_factory=list)
    error_type: str | None = None
    visual_tokens: int = 0
    seconds: float = 0.0


def _task_sources(modality: str, families: str | list[str] | None,
                  dataset: str | os.PathLike[str] | list[DatasetRow] | None) -> tuple[list[DatasetRow] | None, dict[str, Any]]:
    """The dataset rows of ``modality``, or the chosen task families (all by default)."""
    if dataset is not None:
        if families is not None:
            raise ValueError("give either families or dataset, not both")
        rows = list(dataset) if isinstance(dataset, list) else load_dataset(dataset)
        kept = [r for r in rows if r.modality == modality]
        if not kept:
            raise ValueError(f"{dataset}: no {modality} rows in the dataset")
        return kept, {}
    available = families_for(modality)
    names = [families] if isinstance(families, str) else list(families or available)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ValueError(f"unknown {modality} task families {unknown}; known: {sorted(available)}")
    return None, {n: available[n] for n in names}


class PyVisionEnv(gym.Env[dict[str, Any], str]):
    """Image or video reasoning tasks solved by writing code (see module docstring)."""

    metadata = {"render_modes": ["rgb_array", "ansi"], "render_fps": 1}
    _spec: EnvSpec | None = None

    def __init__(
        self,
        modality: str = "image",
        families: str | list[str] | None = None,
        dataset: str | os.PathLike[str] | list[DatasetRow] | None = None,
        split: str = "train",
        difficulty: int | list[int] | None = None,
        max_turns: int = 5,
        tool_reward_per_turn: float = 0.1,
        reward: str | RewardFn = "accumulative",
        terminate_on_error: bool = False,
        show_image: bool = True,
        max_images: int = 32,
        max_output_chars: int | None = None,
        code_timeout: float | None = None,
        render_mode: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        token_counter: VisualTokenCounter | None = None,
        runtime_config: RuntimeConfig | None = None,
        max_action_chars: int = 65_536,
        toolbox: bool = False,
        prompt_style: str = "default",
        question_reader: bool = False,
    ) -> None:
        if modality not in ("image", "video"):
            raise ValueError(f"modality must be 'image' or 'video', got {modality!r}")
        if split not in SPLIT_OFFSETS:
            raise ValueError(f"split must be one of {sorted(SPLIT_OFFSETS)}, got {split!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}")
        if max_turns < 1:
            raise ValueError("max_turns must be at least 1")
        self.modality = modality
        self.split = split
        self.max_turns = int(max_turns)
        self.max_images = int(max_images)
        self.terminate_on_error = bool(terminate_on_error)
        self.show_image = bool(show_image)
        self.render_mode = render_mode
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        self.tokens = token_counter or VisualTokenCounter()
        if isinstance(reward, str) and reward.strip().lower().startswith("accumulative"):
            self.reward_fn: RewardFn = make_reward(reward, per_turn=tool_reward_per_turn)
        else:
            self.reward_fn = make_reward(reward)
        self.runtime_config = resolve_runtime_config(
            runtime_config, timeout=code_timeout, max_output_chars=max_output_chars
        )
        max_output_chars = self.runtime_config.max_output_chars

        self.dataset, self.families = _task_sources(modality, families, dataset)
        self.difficulty = difficulty

        self.max_action_chars = int(max_action_chars)
        self.toolbox = bool(toolbox)
        if self.toolbox and dataset is not None:
            raise ValueError("toolbox=True preloads the task families' expert helpers; it does not apply to datasets")
        self.prompt_style = authors_format.check_prompt_style(prompt_style)
        if self.toolbox and self.prompt_style == "pyvision":
            raise ValueError("toolbox=True is described by the default prompt only; use it with prompt_style='default'")
        self.question_reader = bool(question_reader)
        if self.question_reader and not self.toolbox:
            raise ValueError("question_reader=True adds the question and its reader to the toolbox: it needs toolbox=True")
        self.action_space = text_space(self.max_action_chars)
        prompt_room = 16_384
        self.observation_space = gym.spaces.Dict(
            {
                "text": text_space(max(max_output_chars * 2, 8_192) + prompt_room),
                "images": ImageSequence(max_images=max(self.max_images, 1) + 16),
            }
        )
        self._runtime: Runtime | None = None
        self.task = None
        self.transcript: list[TurnRecord] = []
        self.prompt: str = ""
        self._reset_counters()

    # ------------------------------------------------------------------ spec
    @property
    def spec(self) -> EnvSpec | None:
        """The registration spec, whose ``max_episode_steps`` always equals ``max_turns``."""
        return self._spec

    @spec.setter
    def spec(self, spec: EnvSpec | None) -> None:
        # The env truncates at max_turns itself (what a TimeLimit would do), so the ids are
        # registered without one and the spec reports max_turns to libraries that read it.
        self._spec = None if spec is None else dataclasses.replace(spec, max_episode_steps=self.max_turns)

    # ------------------------------------------------------------------ tasks
    def _draw_task(self, seed: int | None, options: dict[str, Any] | None):
        options = options or {}
        rng = self.np_random
        if self.dataset is not None:
            index = int(options.get("index", rng.integers(len(self.dataset)) if seed is None else seed % len(self.dataset)))
            return row_to_task(self.dataset[index], index)
        key = int(rng.integers(SPLIT_SIZE)) if seed is None else int(seed) % SPLIT_SIZE
        pick = np.random.default_rng([key, 7919])
        names = sorted(self.families)
        name = options.get("family") or names[int(pick.integers(len(names)))]
        if name not in self.families:
            raise ValueError(f"options['family']={name!r} is not one of this environment's families {names}")
        family = self.families[name]
        diff = options.get("difficulty", self.difficulty)
        if isinstance(diff, (list, tuple)):
            diff = diff[int(pick.integers(len(diff)))]
        if diff is None:
            diff = family.difficulties[int(pick.integers(len(family.difficulties)))]
        if int(diff) not in family.difficulties:
            raise ValueError(f"difficulty {diff} is not one of {family.difficulties} for family {name!r}")
        task_seed = SPLIT_OFFSETS[self.split] + key
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        return family.generate(task_seed, int(diff), self.cache_dir)

    # ------------------------------------------------------------------ gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.task = None  # a failed reset leaves no half-started episode behind
        task = self._draw_task(seed, options)
        if task.modality != self.modality:
            raise ValueError(f"task {task.task_id} is a {task.modality} task in a {self.modality} environment")
        self.task = task
        if self._runtime is None:
            self._runtime = Runtime(self.runtime_config)
        video_meta = None
        pyvision = self.prompt_style == "pyvision"
        if task.modality == "video":
            name = authors_format.VIDEO_NAME if pyvision else "video"
            info = self._runtime.reset(videos={name: task.video_path})
            video_meta = prompts.video_metadata(task.video_path, info[name])
        else:
            # RGB pixels are read once: the same arrays go to the runtime and into the observation.
            names = authors_format.image_names(len(task.images)) if pyvision else list(task.images)
            pixels = {n: np.asarray(im) if im.mode == "RGB" else im for n, im in zip(names, task.images.values(), strict=True)}
            self._runtime.reset(images=pixels)
        tools = self._load_toolbox(task) if self.toolbox else []
        self._reset_counters()
        self._video_meta = video_meta
        self.transcript = []
        if pyvision:
            self.prompt = authors_format.build_prompt(task, video_meta, self.show_image, prompts.answer_hint(task))
            self._next_clue = len(task.images) if task.modality == "image" else 0
        else:
            self.prompt = prompts.build_prompt(task, self.max_turns, self.max_images, video_meta, self.show_image, tools,
                                               question_in_session=self.question_reader)
        images: tuple[np.ndarray, ...] = ()
        if task.modality == "image" and self.show_image:
            images = tuple(p if isinstance(p, np.ndarray) else np.asarray(p.convert("RGB")) for p in pixels.values())
        self._count_images(images)
        if video_meta is not None:
            est = self.tokens.video(video_meta["frames"], video_meta["fps"], video_meta["width"], video_meta["height"])
            self._full_video_tokens = int(est.tokens)
        obs = {"text": self.prompt, "images": images}
        self._last_obs = obs
        return obs, self._info()

    def _load_toolbox(self, task: Any) -> list[str]:
        """Define the family expert's helper functions in the runtime; their signatures."""
        family = self.families[task.family]
        helpers = toolbox_helpers(family, task, self.question_reader)
        question = f"question = {task.question!r}\n" if self.question_reader else ""
        if not helpers and not question:
            return []
        source = toolbox_source(task.modality, helpers) if helpers else ""
        result = self._runtime.run(question + source)
        if not result.ok:
            raise RuntimeError(f"the toolbox of {task.family} did not load: {result.error}")
        return toolbox_signatures(source) if helpers else []

    def step(self, action: str):
        if self.task is None:
            raise RuntimeError("call reset() before step()")
        if self._end_reason is not None:
            raise RuntimeError("the episode has ended: call reset()")
        if self._runtime is None:
            raise RuntimeError("the environment was closed: call reset() to start a new episode")
        if not isinstance(action, str):
            raise TypeError(f"the action must be the turn's text (str), got {type(action).__name__}")
        record, images, terminated = self._act(action)
        self._turn = record.turn
        record.visual_tokens = self._count_images(images)
        self.transcript.append(record)
        reward, truncated = 0.0, False
        if terminated and self._end_reason is None:  # an answer
            self._finish(record.answer)
            reward = self._reward
        if not terminated:
            if self._images_shown > self.max_images:
                self._end_reason, truncated = "EXCEED_MAX_IMAGES", True
            elif self._turn >= self.max_turns:
                self._end_reason, truncated = "EXCEED_MAX_TURNS", True
        if (terminated or truncated) and self._score is None:
            self._finish(None)
            reward = self._reward
        obs = {"text": record.observation, "images": images}
        self._last_obs = obs
        return obs, float(reward), terminated, truncated, self._info()

    def _act(self, action: str) -> tuple[TurnRecord, tuple[np.ndarray, ...], bool]:
        """Carry out one turn: parse it, answer or run its code; counters move, the turn does not."""
        turn = self._turn + 1
        if len(action) > self.max_action_chars:
            self._format_errors += 1
            text = (f"Error: this turn is {len(action):,} characters long, over the limit of "
                    f"{self.max_action_chars:,}. Nothing in it was run or read; send a shorter turn.")
            record = TurnRecord(turn=turn, action=action, kind="none", observation=self._notice(text), error_type="ActionTooLong")
            return record, (), self._error_ends_episode()
        parsed = parse_action(action)
        record = TurnRecord(turn=turn, action=action, kind=parsed.kind, code=parsed.code,
                            answer=parsed.answer, ignored_code=parsed.ignored_code)
        images: tuple[np.ndarray, ...] = ()
        terminated = False
        if parsed.kind == "answer":
            terminated = True
            record.observation = "Answer received; the episode is over." + (
                " The code in the same turn was not run." if parsed.ignored_code else "")
        elif parsed.kind == "code":
            result = self._runtime.run(parsed.code)
            record.seconds, record.error_type = result.seconds, result.error_type
            images = tuple(result.images)
            record.observation = self._tool_text(result, len(images))
            if result.ok:
                self._tool_calls += 1
            else:
                self._tool_errors += 1
                terminated = self._error_ends_episode()
        else:
            record.observation = self._notice(format_help())
            self._format_errors += 1
            terminated = self._error_ends_episode()
        record.images = list(images)
        return record, images, terminated

    def _tool_text(self, result: Any, image_count: int) -> str:
        """A code turn's observation text in this environment's prompt style."""
        if self.prompt_style == "default":
            return result.text() or "(the code ran and printed nothing)"
        first, self._next_clue = self._next_clue, self._next_clue + image_count
        if result.ok:
            return authors_format.tool_output(self.modality, result.output, image_count, first)
        return authors_format.error_output(result.error, result.output, image_count, first)

    def _notice(self, text: str) -> str:
        return authors_format.notice(text) if self.prompt_style == "pyvision" else text

    def _error_ends_episode(self) -> bool:
        if self.terminate_on_error:
            self._end_reason = "ERROR_IN_ACTION"
        return self.terminate_on_error

    def render(self):
        if self.render_mode == "ansi":
            return self.transcript_text()
        if self.render_mode == "rgb_array":
            return _render_turn(self._last_obs if self.task is not None else None, self._turn)
        return None

    def close(self) -> None:
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        super().close()

    # ------------------------------------------------------------------ helpers
    def _reset_counters(self) -> None:
        self._turn = self._tool_calls = self._tool_errors = self._format_errors = 0
        self._images_shown = self._visual_tokens = 0
        self._next_clue = 0  # prompt_style="pyvision": the <image_clue_k> index of the next image shown
        self._full_video_tokens: int | None = None
        self._video_meta: dict[str, Any] | None = None
        self._end_reason: str | None = None
        self._score: ScoreResult | None = None
        self._answer: str | None = None
        self._reward = 0.0
        self._terms: dict[str, float] = {}

    def _count_images(self, images: tuple[np.ndarray, ...]) -> int:
        tokens = sum(self.tokens.image(int(a.shape[1]), int(a.shape[0])) for a in images)
        self._images_shown += len(images)
        self._visual_tokens += tokens
        return tokens

    def _finish(self, answer: str | None) -> None:
        task = self.task
        self._answer = answer
        self._score = score_answer(answer, task.answer, task.answer_type, options=task.options, tolerance=task.tolerance)
        if answer is None:
            self._reward, self._terms = 0.0, {"accuracy": 0.0}
        else:
            self._reward, self._terms = self.reward_fn(self._score, self._tool_calls)
        if self._end_reason is None:
            self._end_reason = "DONE"

    def _info(self) -> dict[str, Any]:
        task = self.task
        info: dict[str, Any] = {
            "task_id": task.task_id,
            "toolbox": self.toolbox,
            "question_reader": self.question_reader,
            "family": task.family,
            "turn": self._turn,
            "end_reason": self._end_reason,
            "tool_calls": self._tool_calls,
            "tool_errors": self._tool_errors,
            "images_shown": self._images_shown,
            "visual_tokens": self._visual_tokens,
        }
        if self._video_meta is not None:
            info["video"] = dict(self._video_meta)  # frames, fps, duration (s), width, height
        if self._full_video_tokens is not None:
            info["visual_tokens_full_video"] = self._full_video_tokens
        if self._end_reason is not None:
            info.update(
                answer=self._answer,
                ground_truth=task.answer,
                accuracy=float(self._score.accuracy) if self._score else 0.0,
                correct=bool(self._score.correct) if self._score and self._answer is not None else False,
                reward_terms=dict(self._terms),
            )
        return info

    def transcript_text(self) -> str:
        """The episode so far as plain text (what ``render_mode="ansi"`` returns)."""
        lines = [f"=== task {self.task.task_id if self.task else '-'} ===", self.prompt]
        for r in self.transcript:
            lines.append(f"--- turn {r.turn}: agent ---")
            lines.append(r.action)
            lines.append(f"--- turn {r.turn}: observation ---")
            lines.append(r.observation + "".join(f"\n[image {a.shape[1]}x{a.shape[0]}]" for a in r.images))
        if self._end_reason:
            lines.append(f"=== {self._end_reason}: answer={self._answer!r} ground truth={self.task.answer!r} reward={self._reward:.3f} ===")
        return "\n".join(lines)


def _render_turn(obs: dict[str, Any] | None, turn: int) -> np.ndarray:
    """A picture of the current turn: its text (top) and its images (below, scaled)."""
    width = 960
    text = "" if obs is None else obs["text"]
    lines: list[str] = []
    for raw in text.splitlines()[:40]:
        lines.extend([raw[i : i + 110] for i in range(0, max(len(raw), 1), 110)][:3])
    font = ImageFont.load_default()
    thumbs = []
    for a in (obs or {}).get("images", ())[:6]:
        im = Image.fromarray(a)
        im.thumbnail((300, 300))
        thumbs.append(im)
    text_h = 24 + 14 * len(lines)
    thumb_h = (max((t.height for t in thumbs), default=0) + 16) if thumbs else 0
    canvas = Image.new("RGB", (width, text_h + thumb_h + 8), (250, 250, 250))
    draw = ImageDraw.Draw(canvas)
    draw.text((8, 4), f"turn {turn}", fill=(40, 40, 160), font=font)
    for i, line in enumerate(lines):
        draw.text((8, 22 + 14 * i), line, fill=(20, 20, 20), font=font)
    x = 8
    for t in thumbs:
        if x + t.width > width:
            break
        canvas.paste(t, (x, text_h + 8))
        x += t.width + 8
    return np.asarray(canvas)
