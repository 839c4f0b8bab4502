"""Oversampling -> filtering -> ranking: which rollouts one training step learns from.

PyVision-RL's batch selection (method.md), per training step:

1. **Oversample.** Draw a generation batch: prompts x n rollouts, one *group* per prompt.
2. **Score before filtering.** Advantages and the group reward std are computed over all n
   members of every group, so a member that a filter later removes still counts in its
   group's mean. They are stored on each trajectory: ``info["advantage"]``,
   ``info["group_mean"]``, ``info["group_std"]`` (unbiased, 0 for a group of one).
3. **Filter**, each switchable, always in this order whatever the config's order (a removed
   trajectory is counted under the first filter that removes it):

   - ``zero_variance`` (group): drop a group whose rewards are all exactly equal; it has no
     learning signal. The tool bonus makes an all-correct group with different tool counts
     unequal, so it is kept. A group of one is kept (GRPO gives it its reward as advantage).
   - ``has_image``: drop a trajectory with no image observation, i.e. no image placeholder
     token after the prompt (``ids[prompt_len:]``). The env's ``images_shown`` also counts
     the prompt's images, so the tokens decide.
   - ``image_tokens``: drop a trajectory whose placeholder count does not match its images
     (:meth:`Trajectory.validate`). Such a trajectory would crash the learner.
   - ``over_length``: drop end reason ``OVER_LENGTH`` or more than ``max_length`` tokens.
   - ``end_reason``: keep only the end reasons in ``batching.end_reason_allowlist``.

4. **Refill.** Repeat 1-3, drawing generation batch 0, 1, 2, ... (``draw(i)``: the caller
   seeds batch i, so a run is reproducible), until ``train_batch_size`` groups have at
   least one surviving trajectory, or give up after ``max_gen_batches`` with an error that
   says what was collected and what each filter removed.
5. **Rank.** Keep exactly ``train_batch_size`` *whole* groups (their surviving members):
   those with the largest group reward std, ties broken by draw order (a stable sort), or
   simply the first ones when ``rank_by_std`` is off. Surplus groups are discarded.

Unlike the released code, a step's size is counted in groups, not trajectories (a group is
never split), the sort is stable and the refill is seeded.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyvision_gym.train.algorithms.groups import group_stats
from pyvision_gym.train.algorithms.registry import get_advantage
from pyvision_gym.train.config import AlgorithmConfig, BatchConfig
from pyvision_gym.train.trajectory import Trajectory, TrajectoryError

FILTERS = ("zero_variance", "has_image", "image_tokens", "over_length", "end_reason")
Group = list[Trajectory]
Draw = Callable[[int], list[Group]]


class BatchingError(RuntimeError):
    """The train batch could not be filled, or the drawn groups are malformed."""


@dataclass(frozen=True)
class Checks:
    """What the trajectory-level filters compare against."""

    image_token_id: int  # the codec's image placeholder token
    end_reasons: tuple[str, ...]  # batching.end_reason_allowlist
    merge_size: int = 2  # the codec's patch merge size (placeholders per image = t*h*w / merge**2)
    max_length: int | None = None  # rollout.max_length; None: only the OVER_LENGTH end reason counts


def check_filters(names: list[str]) -> tuple[str, ...]:
    """The enabled filters in their fixed order; an unknown name is an error with a suggestion."""
    for name in names:
        if name not in FILTERS:
            close = difflib.get_close_matches(name, FILTERS, n=1, cutoff=0.4)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise BatchingError(f"unknown filter {name!r} in batching.filters{hint} (valid: {', '.join(FILTERS)})")
    return tuple(f for f in FILTERS if f in names)


def _check_groups(groups: list[Group], batch_index: int) -> None:
    seen: set[int] = set()
    for group in groups:
        ids = {t.group_id for t in group}
        if len(ids) != 1:
            raise BatchingError(f"generation batch {batch_index}: a group mixes group ids {sorted(ids)}")
        gid = ids.pop()
        if gid in seen:
            raise BatchingError(f"generation batch {batch_index}: group id {gid} appears in two groups")
        seen.add(gid)


def score_groups(groups: list[Group], advantage: Callable[..., np.ndarray], cfg: AlgorithmConfig) -> None:
    """Store each trajectory's advantage and its group's mean and std, over ALL members.

    The estimator sees the whole generation batch at once, with group ids numbered by
    position (0 .. len(groups) - 1), so batch-level estimators (``reinforce_pp``) whiten over
    every rollout drawn.
    """
    members = [t for g in groups for t in g]
    if not members:
        return
    rewards = np.array([t.reward for t in members], dtype=np.float64)
    group_ids = np.repeat(np.arange(len(groups)), [len(g) for g in groups])
    adv = np.asarray(advantage(rewards, group_ids, cfg), dtype=np.float64)
    if adv.shape != rewards.shape:
        raise BatchingError(f"the advantage estimator returned shape {adv.shape} for {rewards.shape} rewards")
    stats = group_stats(rewards, group_ids)
    for i, traj in enumerate(members):
        traj.info.update(advantage=float(adv[i]), group_mean=float(stats.mean[i]), group_std=float(stats.std[i]))


def has_image_observation(traj: Trajectory, image_token_id: int) -> bool:
    """Whether an observation (not the prompt) put an image into the sequence."""
    return bool(np.any(np.asarray(traj.ids[traj.prompt_len :]) == image_token_id))


def _images_match(traj: Trajectory, checks: Checks) -> bool:
    try:
        traj.validate(checks.image_token_id, checks.merge_size)
    except TrajectoryError:
        return False
    return True


def keeps(name: str, traj: Trajectory, checks: Checks) -> bool:
    """Whether the trajectory-level filter ``name`` keeps ``traj``."""
    if name == "has_image":
        return has_image_observation(traj, checks.image_token_id)
    if name == "image_tokens":
        return _images_match(traj, checks)
    if name == "over_length":
        too_long = checks.max_length is not None and traj.length > checks.max_length
        return traj.end_reason != "OVER_LENGTH" and not too_long
    if name == "end_reason":
        return traj.end_reason in checks.end_reasons
    raise BatchingError(f"{name!r} is not a trajectory-level filter")


def filter_groups(groups: list[Group], filters: tuple[str, ...], checks: Checks, counts: Counter[str]) -> list[Group]:
    """The groups that keep at least one member, each with its surviving members.

    ``counts`` gains, per filter, the trajectories it removed (``zero_variance`` also counts
    its groups as ``zero_variance_groups``) and ``emptied_groups``: groups whose every member
    a trajectory-level filter removed.
    """
    survivors: list[Group] = []
    for group in groups:
        rewards = [t.reward for t in group]
        if "zero_variance" in filters and len(group) > 1 and all(r == rewards[0] for r in rewards):
            counts["zero_variance"] += len(group)
            counts["zero_variance_groups"] += 1
            continue
        kept = group
        for name in (f for f in filters if f != "zero_variance"):
            passed = [t for t in kept if keeps(name, t, checks)]
            counts[name] += len(kept) - len(passed)
            kept = passed
        if kept:
            survivors.append(kept)
        else:
            counts["emptied_groups"] += 1
    return survivors


def rank_groups(groups: list[Group], k: int, by_std: bool = True) -> list[Group]:
    """``k`` whole groups: the largest group reward std first, ties in the given order (stable)."""
    if not by_std:
        return groups[:k]
    order = sorted(range(len(groups)), key=lambda i: -groups[i][0].info["group_std"])
    return [groups[i] for i in order[:k]]


def _describe(counts: Counter[str], filters: tuple[str, ...]) -> str:
    parts = []
    for name in filters:
        removed = f"{counts[name]} trajectories"
        if name == "zero_variance":
            removed = f"{counts['zero_variance_groups']} groups ({removed})"
        parts.append(f"{name} {removed}")
    return "; ".join(parts) or "no filters enabled"


def collect(
    draw: Draw,
    batching: BatchConfig,
    algorithm: AlgorithmConfig,
    *,
    image_token_id: int,
    merge_size: int = 2,
    max_length: int | None = None,
) -> tuple[list[Trajectory], dict[str, Any]]:
    """Draw, score, filter and rank until one training batch is full.

    ``draw(i)`` rolls out generation batch ``i`` (0, 1, ...; the caller seeds it) and returns
    its groups. ``image_token_id`` and ``merge_size`` are the codec's, ``max_length`` is
    ``rollout.max_length``. Returns the selected trajectories, group after group (the ranked
    order), and the step's metrics.
    """
    filters = check_filters(batching.filters)
    checks = Checks(image_token_id, tuple(batching.end_reason_allowlist), merge_size, max_length)
    if batching.max_gen_batches < 1 or batching.train_batch_size < 1:
        raise BatchingError("batching.max_gen_batches and batching.train_batch_size must be >= 1")
    advantage = get_advantage(algorithm.advantage)
    counts: Counter[str] = Counter()
    survivors: list[Group] = []
    drawn_std: list[float] = []
    for index in range(batching.max_gen_batches):
        groups = [g for g in draw(index) if g]
        _check_groups(groups, index)
        score_groups(groups, advantage, algorithm)
        counts.update(gen_batches=1, groups_drawn=len(groups), trajectories_drawn=sum(map(len, groups)))
        drawn_std += [g[0].info["group_std"] for g in groups]
        survivors += filter_groups(groups, filters, checks, counts)
        if len(survivors) >= batching.train_batch_size:
            break
    else:
        raise BatchingError(
            f"could not fill a train batch of {batching.train_batch_size} groups: {len(survivors)} "
            f"groups survived the filters after {counts['gen_batches']} generation batches "
            f"({counts['groups_drawn']} groups, {counts['trajectories_drawn']} trajectories drawn). "
            f"Removed: {_describe(counts, filters)}; {counts['emptied_groups']} groups lost every member. "
            "Raise batching.max_gen_batches, switch filters off, or lower batching.train_batch_size."
        )
    selected = rank_groups(survivors, batching.train_batch_size, batching.rank_by_std)
    return [t for g in selected for t in g], _metrics(counts, filters, survivors, selected, drawn_std)


def _metrics(
    counts: Counter[str], filters: tuple[str, ...], survivors: list[Group], selected: list[Group], drawn_std: list[float]
) -> dict[str, Any]:
    metrics: dict[str, Any] = {f"filter/{name}": counts[name] for name in filters}
    if "zero_variance" in filters:
        metrics["filter/zero_variance_groups"] = counts["zero_variance_groups"]
    metrics.update({
        "batch/gen_batches": counts["gen_batches"],
        "batch/groups_drawn": counts["groups_drawn"],
        "batch/trajectories_drawn": counts["trajectories_drawn"],
        "batch/groups_emptied": counts["emptied_groups"],
        "batch/groups_kept": len(survivors),
        "batch/groups_selected": len(selected),
        "batch/groups_discarded": len(survivors) - len(selected),
        "batch/trajectories_selected": sum(map(len, selected)),
        "batch/group_std_drawn": float(np.mean(drawn_std)) if drawn_std else 0.0,
        "batch/group_std_selected": float(np.mean([g[0].info["group_std"] for g in selected])) if selected else 0.0,
    })
    return metrics
