"""Tests for pyvision_gym.visual_tokens, with sizes computed by hand in the comments."""

from __future__ import annotations

import dataclasses

import pytest

from pyvision_gym.visual_tokens import (
    MAX_PIXELS,
    MIN_PIXELS,
    VIDEO_MAX_PIXELS,
    VIDEO_MIN_PIXELS,
    VIDEO_TOTAL_PIXELS,
    VideoTokenEstimate,
    VisualTokenCounter,
    image_tokens,
    smart_nframes,
    smart_resize,
    video_tokens,
)


def test_constants() -> None:
    assert MIN_PIXELS == 3136
    assert MAX_PIXELS == 12_845_056
    assert VIDEO_MIN_PIXELS == 100_352
    assert VIDEO_MAX_PIXELS == 602_112
    assert VIDEO_TOTAL_PIXELS == 90_316_800


def test_smart_resize_640x480() -> None:
    # 480/28 = 17.14 -> 17 -> 476; 640/28 = 22.86 -> 23 -> 644; 306,544 px is within bounds
    assert smart_resize(480, 640) == (476, 644)
    assert image_tokens(640, 480) == 17 * 23 == 391


def test_smart_resize_upscales_tiny_images() -> None:
    # 28x28 = 784 < 3136 -> beta = sqrt(3136/784) = 2 -> 56x56 -> 2*2 tokens
    assert smart_resize(28, 28) == (56, 56)
    assert image_tokens(28, 28) == 4
    # 1x1: beta = 56 -> ceil(56/28)*28 = 56
    assert smart_resize(1, 1) == (56, 56)


def test_smart_resize_round_half_to_even() -> None:
    # 70/28 = 2.5 rounds to 2 (Python round, as qwen-vl-utils) -> 56; 56*56 = 3136 is not < min
    assert smart_resize(70, 70) == (56, 56)
    # 98/28 = 3.5 rounds to 4 -> 112
    assert smart_resize(98, 98) == (112, 112)


def test_smart_resize_downscales_large_images() -> None:
    # 6000x8000: rounded 5992x8008 > 12,845,056 -> beta = sqrt(48e6 / 12,845,056) = 1.93309
    # 6000/1.93309 = 3103.8 -> 110*28 = 3080; 8000/1.93309 = 4138.5 -> 147*28 = 4116
    h, w = smart_resize(6000, 8000)
    assert (h, w) == (3080, 4116)
    assert h * w <= MAX_PIXELS
    assert image_tokens(8000, 6000) == 110 * 147 == 16170


def test_smart_resize_custom_max_pixels() -> None:
    # max 256*28*28 = 200,704 < 306,544 -> beta = sqrt(307,200/200,704) = 1.23718
    # 480/1.23718 = 387.98 -> 13*28 = 364; 640/1.23718 = 517.3 -> 18*28 = 504
    assert smart_resize(480, 640, max_pixels=256 * 28 * 28) == (364, 504)
    assert image_tokens(640, 480, max_pixels=256 * 28 * 28) == 234


def test_smart_resize_errors() -> None:
    # ratio exactly 200 is allowed: 1 -> 28 (at least one cell), 200/28 = 7.1 -> 7*28 = 196
    assert smart_resize(1, 200) == (28, 196)
    with pytest.raises(ValueError):
        smart_resize(1, 201)
    with pytest.raises(ValueError):
        smart_resize(0, 10)
    with pytest.raises(ValueError):
        smart_resize(10, 10, min_pixels=100, max_pixels=10)


def test_smart_nframes() -> None:
    assert smart_nframes(1800, 30) == 120  # 60 s * 2 fps
    assert smart_nframes(18000, 30) == 768  # 1200 clamped to max_frames
    assert smart_nframes(30, 30) == 4  # 1 s -> 2, raised to min_frames 4
    assert smart_nframes(3, 30) == 2  # capped at the frames available, floored to even
    # 35 frames at 10 fps = 3.5 s -> 7 -> floored to 6 (the older "round" rule gave 8)
    assert smart_nframes(35, 10) == 6
    with pytest.raises(ValueError):
        smart_nframes(1, 30)  # a single frame cannot fill one temporal patch
    with pytest.raises(ValueError):
        smart_nframes(10, 0)


def test_video_tokens_one_minute_vga() -> None:
    # 120 frames; per-frame budget min(602,112, 90,316,800/120*2 = 1,505,280) = 602,112
    # 640x480 -> 644x476 = 391 tokens/frame-pair; 60 temporal patches -> 23,460
    est = video_tokens(1800, 30.0, 640, 480)
    assert est == VideoTokenEstimate(
        sampled_frames=120, frame_height=476, frame_width=644, tokens=23460
    )


def test_video_tokens_ten_minute_720p() -> None:
    # 768 frames; budget min(602,112, 90,316,800/768*2 = 235,200) = 235,200
    # 720x1280 -> beta = sqrt(921,600/235,200) = 1.97949; 720/beta = 363.7 -> 12*28 = 336;
    # 1280/beta = 646.6 -> 23*28 = 644; tokens = 384 * 12 * 23 = 105,984
    est = video_tokens(18000, 30.0, 1280, 720)
    assert (est.sampled_frames, est.frame_height, est.frame_width) == (768, 336, 644)
    assert est.tokens == 105_984


def test_video_tokens_min_pixels_upscale() -> None:
    # 100x100 frames -> 112x112 = 12,544 < 100,352 -> beta = sqrt(100,352/10,000) = 3.1678
    # -> ceil(316.8/28) = 12 -> 336x336 = 144 tokens per temporal patch; 4 frames -> 2 patches
    est = video_tokens(30, 30.0, 100, 100)
    assert (est.sampled_frames, est.frame_height, est.frame_width, est.tokens) == (4, 336, 336, 288)


def test_video_tokens_budget_floor_is_105_percent_of_min() -> None:
    # A tiny total budget: per-frame cap = max(min(602,112, 1,000), int(100,352*1.05) = 105,369)
    est = video_tokens(1800, 30.0, 640, 480, total_pixels=1000)
    assert est.frame_height * est.frame_width <= 105_369
    # 640x480 -> beta = sqrt(307,200/105,369) = 1.7075; 480/beta = 281.1 -> 280; 640/beta = 374.8 -> 364
    assert (est.frame_height, est.frame_width) == (280, 364)
    assert est.tokens == 60 * 10 * 13


def test_counter_defaults_match_functions() -> None:
    c = VisualTokenCounter()
    assert c.image(640, 480) == 391
    assert c.resize(640, 480) == (644, 476)
    assert c.video(1800, 30.0, 640, 480).tokens == 23460
    assert c.video(18000, 30.0, 1280, 720) == video_tokens(18000, 30.0, 1280, 720)


def test_counter_custom() -> None:
    c = VisualTokenCounter(max_pixels=256 * 28 * 28, sample_fps=1.0)
    assert c.image(640, 480) == 234
    assert c.video(1800, 30.0, 640, 480).sampled_frames == 60
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.factor = 32  # type: ignore[misc]
