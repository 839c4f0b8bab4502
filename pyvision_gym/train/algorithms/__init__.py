"""Advantage estimators and policy losses, each a small registered function (see registry.py).

- ``advantages.py``: ``grpo``, ``rloo``, ``reinforce_pp`` (numpy, one value per trajectory);
- ``ppo.py``: the clipped surrogate with clip-higher and dual-clip (torch, per token);
- ``aggregation.py``: per-token loss -> scalar (token_mean, seq_mean_token_mean, legacy);
- ``regularizers.py``: the optional KL-to-reference (k3) and entropy terms;
- ``groups.py``: the group statistics they share with the batch selection.

Importing this package registers the built-ins; ``get_advantage`` / ``get_policy_loss`` also
accept a user's ``"package.module:function"``.
"""

from pyvision_gym.train.algorithms import advantages, ppo  # noqa: F401  (register the built-ins)
from pyvision_gym.train.algorithms.aggregation import AGG_MODES, aggregate
from pyvision_gym.train.algorithms.groups import GroupStats, group_stats
from pyvision_gym.train.algorithms.registry import (
    AlgorithmError,
    advantage_names,
    get_advantage,
    get_policy_loss,
    policy_loss_names,
    register_advantage,
    register_policy_loss,
)
from pyvision_gym.train.algorithms.regularizers import entropy_from_logits, kl_k3

__all__ = [
    "AGG_MODES",
    "AlgorithmError",
    "GroupStats",
    "advantage_names",
    "aggregate",
    "entropy_from_logits",
    "get_advantage",
    "get_policy_loss",
    "group_stats",
    "kl_k3",
    "policy_loss_names",
    "register_advantage",
    "register_policy_loss",
]
