"""The Qwen2.5-VL chat codec on the tiny locally built model: training prompts are the
agent's evaluation prompts, token for token, and the template is append-only."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from pyvision_gym.agents.backends.processor import load_processor, render_chat
from pyvision_gym.agents.chat import message_images
from pyvision_gym.agents.codec import QwenChatCodec, TemplateError
from pyvision_gym.agents.vlm import build_messages
from pyvision_gym.plugins import load
from pyvision_gym.rollout.agent import Episode, Observation


@pytest.fixture(scope="module")
def codec(tiny_model) -> QwenChatCodec:
    return QwenChatCodec(tiny_model)


def _image(h: int, w: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _agent_encoding(codec: QwenChatCodec, episode: Episode):
    """The processor's own encoding of the agent's messages (how the HF backend prompts)."""
    messages = build_messages(episode, codec.system_prompt, codec.max_pixels)
    text = render_chat(messages, codec.tokenizer, codec.chat_template)
    images = message_images(messages)
    enc = codec.processor(text=[text], images=images or None, return_tensors="pt")
    return text, enc


def test_codec_is_the_configured_plugin(tiny_model):
    codec = load("pyvision_gym.agents.codec:QwenChatCodec")(tiny_model)
    assert codec.eos_token_ids[0] == codec.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert codec.image_token_id == codec.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    assert codec.merge_size == 2 and codec.stop_strings == ["</code>", "</answer>"]
    assert codec.image_token_id in codec.suppress_token_ids and codec.eos_token_ids[0] not in codec.suppress_token_ids


def test_prompt_is_the_agents_rendering(codec):
    image = _image(100, 150, 0)
    enc = codec.prompt("How many circles?", [image])
    text, ref = _agent_encoding(codec, Episode("t", "image", Observation("How many circles?", (image,))))
    assert enc.ids == ref["input_ids"][0].tolist()
    assert enc.image_grid_thw == [tuple(g) for g in ref["image_grid_thw"].tolist()]
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert codec.decode(enc.ids).replace(codec.image_token, "") == text.replace(codec.image_token, "")
    pads = sum(t * h * w for t, h, w in enc.image_grid_thw) // 4
    assert enc.ids.count(codec.image_token_id) == pads > 0


def test_prompt_plus_deltas_is_the_whole_chat(codec):
    """prompt + a1 + o1 + a2 + o2 (actions encoded here as a sampler would have made them)
    equals the processor's encoding of the agent's two-turn chat, images included."""
    first, shown = _image(90, 120, 1), (_image(60, 60, 2), _image(40, 200, 3))
    turns = [("<code>\nprint(2)\n</code>", Observation("2\n", ())), ("<code>\nshow(img)\n</code>", Observation("", shown))]
    episode = Episode("t", "image", Observation("Count.", (first,)))
    ids = list(codec.prompt("Count.", [first]).ids)
    grids = list(codec.prompt("Count.", [first]).image_grid_thw)
    clue = 1
    for action, obs in turns:
        ids += codec.tokenizer.encode(action, add_special_tokens=False)
        delta = codec.observation(obs.text, obs.images, clue)
        ids += delta.ids
        grids += delta.image_grid_thw
        clue += len(obs.images)
        episode.turns.append((action, obs))
    _, ref = _agent_encoding(codec, episode)
    assert ids == ref["input_ids"][0].tolist()
    assert grids == [tuple(g) for g in ref["image_grid_thw"].tolist()]
    inputs = codec.vision_inputs([np.asarray(im) for im in message_images(build_messages(episode, codec.system_prompt))])
    assert inputs["image_grid_thw"].tolist() == [list(g) for g in grids]
    assert inputs["pixel_values"].shape[0] == sum(t * h * w for t, h, w in grids)


def test_observation_delta_closes_the_turn_and_opens_the_next(codec):
    delta = codec.observation("hello", [], 3)
    assert codec.decode(delta.ids) == "<|im_end|>\n<|im_start|>user\n<interpreter>\nText Result:\nhello\n</interpreter><|im_end|>\n<|im_start|>assistant\n"
    with_image = codec.observation("", [_image(56, 56, 4)], 3)
    text = codec.decode(with_image.ids)
    assert "<image_clue_3><|vision_start|>" in text and "</image_clue_3>" in text
    assert with_image.ids.count(codec.image_token_id) == with_image.image_grid_thw[0][1] * with_image.image_grid_thw[0][2] // 4


def test_max_pixels_resizes_like_the_agent(tiny_model):
    codec = QwenChatCodec(tiny_model, max_pixels=56 * 56)
    enc = codec.observation("", [_image(300, 400, 5)], 1)
    (stored,) = enc.images
    assert stored.dtype == np.uint8 and stored.shape[0] * stored.shape[1] <= 56 * 56
    assert enc.image_grid_thw == [(1, 4, 4)]  # 48x64 -> the processor's nearest 56x56 grid
    assert codec.vision_inputs(enc.images)["image_grid_thw"].tolist() == [[1, 4, 4]]


def test_a_template_that_is_not_append_only_is_refused(tiny_model, tmp_path):
    folder = tmp_path / "bad"
    shutil.copytree(tiny_model, folder)
    template = (folder / "chat_template.jinja").read_text()
    # Renders the number of messages first, as templates that rewrite history do.
    (folder / "chat_template.jinja").write_text("{{- messages | length -}}" + template)
    assert load_processor(folder).chat_template.startswith("{{- messages")
    with pytest.raises(TemplateError, match="append-only"):
        QwenChatCodec(folder)
