"""Oversampling -> filtering -> ranking on hand-built groups of trajectories."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from pyvision_gym.train.batching import (
    FILTERS,
    BatchingError,
    Checks,
    check_filters,
    collect,
    filter_groups,
    has_image_observation,
)
from pyvision_gym.train.config import AlgorithmConfig, BatchConfig
from pyvision_gym.train.trajectory import Trajectory

IMG = 9  # the image placeholder token id
GRID = (1, 4, 4)  # 16 patches, merge 2 -> 4 placeholder tokens
PROMPT = [1, IMG, IMG, IMG, IMG, 2]  # the prompt carries one image
ACTION = [5, 6, 7]
OBSERVATION = [3, IMG, IMG, IMG, IMG, 4]
CHECKS = Checks(image_token_id=IMG, end_reasons=("DONE", "EXCEED_MAX_TURNS", "ERROR_IN_ACTION"), max_length=40)
TRAJECTORY_FILTERS = [f for f in FILTERS if f != "zero_variance"]


def traj(reward: float, gid: int, fault: str | None = None) -> Trajectory:
    """prompt + action + observation image + action; ``fault`` names the filter it should fail."""
    obs = [3, 4] if fault == "has_image" else OBSERVATION
    ids = PROMPT + ACTION + obs + ACTION
    if fault == "image_tokens":
        ids = PROMPT + ACTION + OBSERVATION[:-2] + [4] + ACTION  # one placeholder lost
    if fault == "over_length":
        ids = ids + ACTION * 8  # 50 tokens > max_length 40
    n_images = 1 if fault == "has_image" else 2
    mask = np.zeros(len(ids), np.uint8)
    mask[len(PROMPT) : len(PROMPT) + len(ACTION)] = 1
    return Trajectory(
        ids=np.array(ids, np.int64), loss_mask=mask, sampler_logp=np.zeros(len(ids), np.float32),
        images=[np.zeros((56, 56, 3), np.uint8)] * n_images, image_grid_thw=np.array([GRID] * n_images),
        reward=reward, end_reason="EXCEED_MAX_IMAGES" if fault == "end_reason" else "DONE",
        group_id=gid, prompt_len=len(PROMPT),
    )


def group(rewards: list[float], gid: int, faults: dict[int, str] | None = None) -> list[Trajectory]:
    return [traj(r, gid, (faults or {}).get(i)) for i, r in enumerate(rewards)]


def batch_cfg(**kw) -> BatchConfig:
    return BatchConfig(**{"train_batch_size": 2, "max_gen_batches": 4, **kw})


def run(draws: list[list[list[Trajectory]]], cfg: BatchConfig, algo: AlgorithmConfig | None = None):
    calls: list[int] = []

    def draw(i: int) -> list[list[Trajectory]]:
        calls.append(i)
        return draws[i % len(draws)]

    out, metrics = collect(draw, cfg, algo or AlgorithmConfig(), image_token_id=IMG, merge_size=2, max_length=40)
    return out, metrics, calls


# ----------------------------------------------------------------------------- filters
def test_the_fixtures_are_sound():
    t = traj(1.0, 0)
    t.validate(IMG, 2)  # two images, eight placeholders
    assert has_image_observation(t, IMG) and t.length <= CHECKS.max_length


@pytest.mark.parametrize("name", TRAJECTORY_FILTERS)
def test_each_trajectory_filter_alone_on_and_off(name):
    counts: Counter[str] = Counter()
    kept = filter_groups([group([1.0, 0.5, 0.0, 0.2], 0, {1: name})], (name,), CHECKS, counts)
    assert [t.reward for t in kept[0]] == [1.0, 0.0, 0.2] and counts[name] == 1
    others = tuple(f for f in FILTERS if f != name)  # the faulty member fails only this filter
    kept = filter_groups([group([1.0, 0.5, 0.0, 0.2], 0, {1: name})], others, CHECKS, Counter())
    assert len(kept[0]) == 4


def test_zero_variance_on_and_off():
    flat = group([1.0] * 4, 0)
    counts: Counter[str] = Counter()
    assert filter_groups([flat], ("zero_variance",), CHECKS, counts) == []
    assert (counts["zero_variance_groups"], counts["zero_variance"]) == (1, 4)
    assert filter_groups([flat], (), CHECKS, Counter()) == [flat]
    assert filter_groups([group([0.0], 1)], ("zero_variance",), CHECKS, Counter()) != []  # a singleton stays


def test_all_correct_group_with_different_tool_counts_is_kept():
    rewards = [1, 1.1, 1.2, 1.2, 1.3, 1.4, 1.1, 1]
    assert np.std(rewards) == pytest.approx(0.1317, abs=1e-4)
    kept, metrics, _ = run([[group(rewards, 0), group([1.0] * 8, 1), group([0, 1, 0, 1], 2)]], batch_cfg())
    assert sorted({t.group_id for t in kept}) == [0, 2] and metrics["filter/zero_variance_groups"] == 1


def test_prompt_images_do_not_count_as_image_observations():
    t = traj(1.0, 0, "has_image")
    assert (t.ids == IMG).sum() == 4 and not has_image_observation(t, IMG)


def test_over_length_also_drops_the_over_length_end_reason():
    t = traj(1.0, 0)
    t.end_reason = "OVER_LENGTH"
    counts: Counter[str] = Counter()
    assert filter_groups([[t, traj(0.0, 0)]], ("over_length",), CHECKS, counts)[0][0].reward == 0.0
    assert counts["over_length"] == 1


def test_filters_run_in_a_fixed_order_and_count_the_first_that_removes():
    t = traj(1.0, 0, "has_image")
    t.end_reason = None  # fails end_reason too
    counts: Counter[str] = Counter()
    filters = check_filters(["end_reason", "has_image"])
    assert filters == ("has_image", "end_reason")
    kept = filter_groups([[t, traj(0.0, 0)]], filters, CHECKS, counts)
    assert len(kept[0]) == 1 and (counts["has_image"], counts["end_reason"]) == (1, 0)
    counts = Counter()
    assert filter_groups([[t]], filters, CHECKS, counts) == [] and counts["emptied_groups"] == 1


def test_unknown_filter_suggests_the_nearest():
    with pytest.raises(BatchingError, match="did you mean 'zero_variance'"):
        check_filters(["zero_varience"])


# ----------------------------------------------------------------------------- collect
def test_advantages_are_computed_over_the_whole_group_before_filtering():
    g = group([1.2, 1.0, 0.0, 0.0], 0, {3: "has_image"})
    kept, _, _ = run([[g, group([0.0, 1.0], 1)]], batch_cfg())
    mine = [t for t in kept if t.group_id == 0]
    assert len(mine) == 3  # the member without an image observation is gone ...
    np.testing.assert_allclose([t.info["advantage"] for t in mine], [0.65, 0.45, -0.55], atol=1e-9)
    assert mine[0].info["group_std"] == pytest.approx(0.6403, abs=1e-4)  # ... but counted
    assert mine[0].info["group_mean"] == pytest.approx(0.55)


def test_refill_draws_until_full_then_stops():
    flat = [group([0.0] * 4, 10), group([1.0] * 4, 11)]
    good = [group([0.0, 1.0, 0.0, 0.0], 20), group([1.0, 1.0, 0.0, 1.0], 21)]
    kept, metrics, calls = run([flat, flat, good, flat], batch_cfg(max_gen_batches=8))
    assert calls == [0, 1, 2]  # batch indices go to the caller, who seeds each one
    assert sorted({t.group_id for t in kept}) == [20, 21]
    assert metrics["batch/gen_batches"] == 3 and metrics["batch/groups_drawn"] == 6
    assert metrics["filter/zero_variance_groups"] == 4 and metrics["filter/zero_variance"] == 16
    assert metrics["batch/groups_kept"] == metrics["batch/groups_selected"] == 2


def test_the_bound_raises_with_counts():
    draws = [[group([1.0] * 4, 0), group([0.0, 1.0], 1, {0: "end_reason", 1: "end_reason"})]]
    with pytest.raises(BatchingError) as err:
        run(draws, batch_cfg(max_gen_batches=3))
    msg = str(err.value)
    assert "train batch of 2 groups: 0 groups survived" in msg and "after 3 generation batches" in msg
    assert "6 groups, 18 trajectories drawn" in msg
    assert "zero_variance 3 groups (12 trajectories)" in msg and "end_reason 6 trajectories" in msg
    assert "3 groups lost every member" in msg and "batching.max_gen_batches" in msg


def test_ranking_keeps_the_top_std_groups_in_a_stable_order():
    # rewards [0, s, 0, s] have unbiased std s / sqrt(3): groups 1 and 3 tie on top, then 0 and 2
    spreads = {0: 1.0, 1: 2.0, 2: 1.0, 3: 2.0, 4: 0.5}
    groups = [group([0.0, s, 0.0, s], gid) for gid, s in spreads.items()]
    kept, metrics, _ = run([groups], batch_cfg(train_batch_size=3))
    assert list(dict.fromkeys(t.group_id for t in kept)) == [1, 3, 0]
    assert metrics["batch/groups_discarded"] == 2
    assert metrics["batch/group_std_selected"] == pytest.approx(np.mean([2 / np.sqrt(3)] * 2 + [1 / np.sqrt(3)]))
    first, _, _ = run([groups], batch_cfg(train_batch_size=3, rank_by_std=False))
    assert list(dict.fromkeys(t.group_id for t in first)) == [0, 1, 2]


def test_whole_groups_only():
    # 3 groups survive, with 4, 2 and 3 members; two are selected, each with all its survivors
    groups = [group([0.0, 1.0, 0.0, 1.0], 0), group([0.0, 3.0, 0.0, 3.0], 1, {0: "has_image", 2: "end_reason"}),
              group([0.0, 2.0, 0.0, 2.0], 2, {1: "image_tokens"})]
    kept, metrics, _ = run([groups], batch_cfg(train_batch_size=2))
    assert Counter(t.group_id for t in kept) == {1: 2, 2: 3}
    assert metrics["batch/trajectories_selected"] == 5 and metrics["batch/trajectories_drawn"] == 12
    assert (metrics["filter/has_image"], metrics["filter/image_tokens"], metrics["filter/end_reason"]) == (1, 1, 1)


def test_malformed_groups_are_refused():
    with pytest.raises(BatchingError, match="mixes group ids"):
        run([[group([0.0, 1.0], 0) + group([1.0], 1)]], batch_cfg())
    with pytest.raises(BatchingError, match="appears in two groups"):
        run([[group([0.0, 1.0], 0), group([1.0, 0.0], 0)]], batch_cfg())
