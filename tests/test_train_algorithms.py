"""Advantage estimators, the PPO loss, loss aggregation and the registries, against the
issue's hand-computed values (pure numpy/torch, no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pyvision_gym.train.algorithms import (  # noqa: E402
    AlgorithmError,
    aggregate,
    entropy_from_logits,
    get_advantage,
    get_policy_loss,
    kl_k3,
    register_advantage,
)
from pyvision_gym.train.config import AlgorithmConfig, load_config  # noqa: E402

CFG = AlgorithmConfig()


def median_baseline(rewards: np.ndarray, group_ids: np.ndarray, cfg: AlgorithmConfig) -> np.ndarray:
    """A user's estimator, named in the config as ``<this module>:median_baseline``."""
    adv = np.zeros_like(rewards, dtype=np.float64)
    for g in np.unique(group_ids):
        members = group_ids == g
        adv[members] = rewards[members] - np.median(rewards[members])
    return adv


# ----------------------------------------------------------------------------- advantages
def test_grpo_hand_values_with_and_without_std():
    rewards, groups = np.array([1.2, 1.0, 0.0, 0.0]), np.zeros(4, int)
    plain = get_advantage("grpo")(rewards, groups, AlgorithmConfig(norm_by_std=False))
    np.testing.assert_allclose(plain, [0.65, 0.45, -0.55, -0.55], atol=1e-4)
    normed = get_advantage("grpo")(rewards, groups, AlgorithmConfig(norm_by_std=True))
    np.testing.assert_allclose(normed, [1.0151, 0.7028, -0.8590, -0.8590], atol=1e-4)


def test_grpo_groups_by_id_and_singleton_keeps_its_reward():
    # two interleaved groups plus a singleton: each member sees only its own group's mean
    rewards = np.array([1.2, 5.0, 1.0, 7.0, 0.0, 0.0, 3.0])
    groups = np.array([0, 1, 0, 1, 0, 0, 2])
    adv = get_advantage("grpo")(rewards, groups, CFG)
    np.testing.assert_allclose(adv, [0.65, -1.0, 0.45, 1.0, -0.55, -0.55, 3.0], atol=1e-9)
    normed = get_advantage("grpo")(rewards, groups, AlgorithmConfig(norm_by_std=True))
    assert normed[6] == pytest.approx(3.0 / (1 + 1e-6))  # verl: a singleton's std is 1


def test_rloo_hand_values():
    adv = get_advantage("rloo")(np.array([1.0, 0.0, 0.0, 1.0]), np.zeros(4, int), CFG)
    np.testing.assert_allclose(adv, [2 / 3, -2 / 3, -2 / 3, 2 / 3], atol=1e-9)
    assert get_advantage("rloo")(np.array([0.7]), np.array([3]), CFG).tolist() == [0.7]


def test_reinforce_pp_centres_by_group_then_whitens_over_the_batch():
    rewards = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    adv = get_advantage("reinforce_pp")(rewards, np.array([0, 0, 0, 0, 1, 1]), CFG)
    # centred: [.5, -.5, -.5, .5, 0, 0]; batch mean 0; unbiased std sqrt(1 / 5)
    scale = 0.5 / math.sqrt(0.2)
    np.testing.assert_allclose(adv, [scale, -scale, -scale, scale, 0, 0], atol=1e-5)
    assert adv.std(ddof=1) == pytest.approx(1.0, abs=1e-5)


# ----------------------------------------------------------------------------- PPO loss
def _ppo(adv: list[float], ratio: list[float], **overrides: float | None):
    """Per-token PPO loss of one-token sequences with the given advantages and ratios."""
    cfg = AlgorithmConfig(**overrides)
    old = torch.zeros(len(ratio), 1)
    logp = torch.log(torch.tensor(ratio)).unsqueeze(-1).requires_grad_(True)
    loss, metrics = get_policy_loss("ppo")(logp, old, torch.tensor(adv), torch.ones(len(ratio), 1), cfg)
    return loss, metrics, logp


def test_dual_clip_hand_values_and_metrics():
    loss, metrics, logp = _ppo([-1, 1, -1, 1], [5, 5, 0.5, 0.5], clip_low=0.2, clip_high=0.2, clip_c=3.0)
    np.testing.assert_allclose(loss.detach().squeeze(-1).numpy(), [3.0, -1.2, 0.8, -0.5], atol=1e-5)
    assert metrics["clip_frac"] == pytest.approx(0.5)  # (+1, 5) and (-1, 0.5)
    assert metrics["dual_clip_frac"] == pytest.approx(0.25)  # (-1, 5)
    assert metrics["ratio_mean"] == pytest.approx(2.75, abs=1e-5)
    want_kl = np.mean([(r - 1) - math.log(r) for r in (5, 5, 0.5, 0.5)])
    assert metrics["approx_kl"] == pytest.approx(want_kl, abs=1e-5)
    loss.sum().backward()
    grad = logp.grad.squeeze(-1)
    # clipped tokens get no gradient; the unclipped (+1, 0.5) one gets -A * r = -0.5
    np.testing.assert_allclose(grad.numpy(), [0.0, 0.0, 0.0, -0.5], atol=1e-6)


def test_without_dual_clip_a_negative_advantage_loss_is_unbounded():
    loss, metrics, _ = _ppo([-1], [5], clip_c=None)
    assert loss.item() == pytest.approx(5.0, abs=1e-5) and metrics["dual_clip_frac"] == 0.0
    with pytest.raises(ValueError, match="clip_c"):
        _ppo([-1], [5], clip_c=0.5)


def test_clip_higher_is_asymmetric():
    # ratio 1.25 with A > 0: inside [0.8, 1.28] (clip-higher) but clipped at 1.2 (symmetric)
    high, m_high, lp_high = _ppo([1.0], [1.25], clip_low=0.2, clip_high=0.28)
    sym, m_sym, lp_sym = _ppo([1.0], [1.25], clip_low=0.2, clip_high=0.2)
    assert high.item() == pytest.approx(-1.25, abs=1e-5) and sym.item() == pytest.approx(-1.2, abs=1e-5)
    high.sum().backward()
    sym.sum().backward()
    assert lp_high.grad.item() == pytest.approx(-1.25, abs=1e-5) and lp_sym.grad.item() == 0.0
    assert (m_high["clip_frac"], m_sym["clip_frac"]) == (0.0, 1.0)
    # the low side is unchanged: ratio 0.75 with A < 0 is clipped at 0.8 either way
    low, _, _ = _ppo([-1.0], [0.75], clip_low=0.2, clip_high=0.28)
    assert low.item() == pytest.approx(0.8, abs=1e-5)


def test_ppo_masks_tokens_and_stays_finite_on_junk():
    logp = torch.tensor([[-0.1, -0.2, 900.0]])  # the masked last token holds junk
    old = torch.tensor([[-0.1, -0.3, -900.0]])
    mask = torch.tensor([[1, 1, 0]])
    loss, metrics = get_policy_loss("ppo")(logp, old, torch.tensor([[1.0, 1.0, 1.0]]), mask, CFG)
    assert torch.isfinite(loss).all() and loss[0, 2] == 0.0
    assert loss[0, 0].item() == pytest.approx(-1.0) and loss[0, 1].item() == pytest.approx(-math.exp(0.1), abs=1e-5)
    assert math.isfinite(metrics["approx_kl"])


# ----------------------------------------------------------------------------- aggregation
def _two_sequences() -> tuple[torch.Tensor, torch.Tensor]:
    loss = torch.tensor([[2.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    return loss, mask


def test_aggregation_hand_values():
    loss, mask = _two_sequences()
    assert aggregate(loss, mask, "token_mean").item() == pytest.approx(1.25)
    assert aggregate(loss, mask, "seq_mean_token_mean").item() == pytest.approx(1.5)
    assert aggregate(loss, mask, "token_mean_legacy").item() == pytest.approx(1.25)
    assert aggregate(loss, mask, "token_mean", global_tokens=8).item() == pytest.approx(5 / 8)
    with pytest.raises(ValueError, match="seq_mean_token_mean"):
        aggregate(loss, mask, "seq_mean")


@pytest.mark.parametrize("mode", ["token_mean", "seq_mean_token_mean"])
def test_micro_batches_with_global_counts_give_the_whole_batch_loss_and_gradient(mode):
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1, 7, 3, 2, 6, 5])
    mask = (torch.arange(8)[None, :] < lengths[:, None]).int()
    weight = torch.randn(6, 8, generator=gen)

    def step(rows: list[slice]) -> tuple[float, torch.Tensor]:
        theta = torch.ones(6, 8, requires_grad=True)
        total = 0.0
        for rs in rows:  # one backward per micro-batch, as gradient accumulation does
            part = aggregate((theta * weight)[rs], mask[rs], mode, global_tokens=int(mask.sum()), num_sequences=6)
            part.backward()
            total += part.item()
        return total, theta.grad

    whole, g_whole = step([slice(0, 6)])
    split, g_split = step([slice(0, 1), slice(1, 4), slice(4, 6)])
    assert split == pytest.approx(whole, abs=1e-6)
    torch.testing.assert_close(g_split, g_whole, atol=1e-7, rtol=0)


def test_legacy_mean_depends_on_the_split():
    loss, mask = _two_sequences()
    per_micro = [aggregate(loss[i : i + 1], mask[i : i + 1], "token_mean_legacy").item() for i in range(2)]
    assert np.mean(per_micro) == pytest.approx(1.5)  # (2 + 1) / 2, not the token mean 1.25


# ----------------------------------------------------------------------------- KL, entropy
def test_kl_k3_values():
    logp = torch.tensor([[-1.0, -2.0]])
    assert kl_k3(logp, logp).abs().max().item() == 0.0
    ref = logp + math.log(2.0)  # ref / pi = 2 -> 2 - log 2 - 1
    assert kl_k3(logp, ref)[0, 0].item() == pytest.approx(1 - math.log(2.0), abs=1e-6)
    assert (kl_k3(logp, logp - 3.0) >= 0).all()


def test_entropy_from_logits_matches_categorical():
    logits = torch.randn(2, 3, 11, generator=torch.Generator().manual_seed(1))
    want = torch.distributions.Categorical(logits=logits).entropy()
    torch.testing.assert_close(entropy_from_logits(logits), want, atol=1e-5, rtol=0)
    assert entropy_from_logits(torch.zeros(1, 1, 8)).item() == pytest.approx(math.log(8), abs=1e-6)
    assert entropy_from_logits(torch.zeros(1, 1, 8, dtype=torch.bfloat16)).dtype == torch.float32


# ----------------------------------------------------------------------------- registries
def test_user_advantage_from_the_config_string():
    spec = f"{__name__}:median_baseline"
    cfg = load_config("tiny-cpu", [f"algorithm.advantage={spec}"])
    fn = get_advantage(cfg.algorithm.advantage)
    assert fn is median_baseline
    adv = fn(np.array([3.0, 1.0, 0.0, 10.0, 20.0]), np.array([0, 0, 0, 1, 1]), cfg.algorithm)
    np.testing.assert_allclose(adv, [2.0, 0.0, -1.0, -5.0, 5.0])


def test_unknown_names_suggest_the_nearest():
    with pytest.raises(AlgorithmError, match="did you mean 'grpo'"):
        get_advantage("grp")
    with pytest.raises(AlgorithmError, match="did you mean 'rloo'.*registered: grpo, reinforce_pp, rloo"):
        get_advantage("rlo")
    with pytest.raises(AlgorithmError, match="did you mean 'ppo'"):
        get_policy_loss("ppo2")
    with pytest.raises(AlgorithmError, match="cannot import module"):
        get_advantage("no_such_module_xyz:fn")
    with pytest.raises(AlgorithmError, match="not a function"):
        get_advantage(f"{__name__}:CFG")


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(AlgorithmError, match="already registered"):
        register_advantage("grpo")(median_baseline)
