"""Two small registries: advantage estimators and policy losses, looked up by name.

The interfaces are verl's and SkyRL's, slimmed down:

- an **advantage estimator** ``fn(rewards[B], group_ids[B], cfg) -> advantages[B]`` (numpy;
  one advantage per sequence, which the learner broadcasts over the generated tokens);
- a **policy loss** ``fn(logp[B,T], old_logp[B,T], adv[B] or [B,T], mask[B,T], cfg) ->
  (per_token_loss[B,T], metrics)`` (torch; the learner reduces it with ``aggregate``).

``cfg`` is the :class:`~pyvision_gym.train.config.AlgorithmConfig`. The built-in functions
register themselves with the decorators below; a user's own function needs no registration:
name it in the config as ``"package.module:function"`` and it is loaded with
:func:`pyvision_gym.plugins.load`::

    # my_algos.py
    import numpy as np

    def median_baseline(rewards, group_ids, cfg):
        adv = np.zeros_like(rewards, dtype=np.float64)
        for g in np.unique(group_ids):
            members = group_ids == g
            adv[members] = rewards[members] - np.median(rewards[members])
        return adv

    # pyvision-gym train --config tiny-cpu --set algorithm.advantage=my_algos:median_baseline
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from pyvision_gym.plugins import PluginError, load

AdvantageFn = Callable[..., Any]
PolicyLossFn = Callable[..., Any]

_ADVANTAGES: dict[str, AdvantageFn] = {}
_POLICY_LOSSES: dict[str, PolicyLossFn] = {}


class AlgorithmError(ValueError):
    """An advantage estimator or policy loss that cannot be found or loaded."""


def _register(table: dict[str, Callable[..., Any]], kind: str, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in table and table[name] is not fn:
            raise AlgorithmError(f"{kind} {name!r} is already registered (by {table[name].__module__})")
        table[name] = fn
        return fn

    return decorator


def register_advantage(name: str) -> Callable[[AdvantageFn], AdvantageFn]:
    """Decorator: register ``fn(rewards, group_ids, cfg) -> advantages`` under ``name``."""
    return _register(_ADVANTAGES, "advantage estimator", name)


def register_policy_loss(name: str) -> Callable[[PolicyLossFn], PolicyLossFn]:
    """Decorator: register ``fn(logp, old_logp, adv, mask, cfg) -> (loss, metrics)`` under ``name``."""
    return _register(_POLICY_LOSSES, "policy loss", name)


def _lookup(table: dict[str, Callable[..., Any]], kind: str, name_or_spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """A registered name, a ``module:function`` string, or a callable passed through."""
    if callable(name_or_spec):
        return name_or_spec
    spec = str(name_or_spec)
    if ":" in spec:
        try:
            fn = load(spec)
        except PluginError as exc:
            raise AlgorithmError(f"{kind} {spec!r}: {exc}") from exc
        if not callable(fn):
            raise AlgorithmError(f"{kind} {spec!r} is a {type(fn).__name__}, not a function")
        return fn
    if spec in table:
        return table[spec]
    valid = sorted(table)
    close = difflib.get_close_matches(spec, valid, n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise AlgorithmError(
        f"unknown {kind} {spec!r}{hint} (registered: {', '.join(valid)}; "
        "or name your own as 'package.module:function')"
    )


def get_advantage(name_or_spec: str | AdvantageFn) -> AdvantageFn:
    """The advantage estimator registered as ``name_or_spec``, or loaded from ``module:function``."""
    return _lookup(_ADVANTAGES, "advantage estimator", name_or_spec)


def get_policy_loss(name_or_spec: str | PolicyLossFn) -> PolicyLossFn:
    """The policy loss registered as ``name_or_spec``, or loaded from ``module:function``."""
    return _lookup(_POLICY_LOSSES, "policy loss", name_or_spec)


def advantage_names() -> list[str]:
    """Registered advantage estimators."""
    return sorted(_ADVANTAGES)


def policy_loss_names() -> list[str]:
    """Registered policy losses."""
    return sorted(_POLICY_LOSSES)
