"""Rollout environments as Ray actors: ``env.backend: ray`` in a training config.

Each environment (with its sandbox) lives in its own Ray actor, on any node of the cluster;
the trainer's process keeps only a thin :class:`RayEnv` handle, which the lock-step
:class:`~pyvision_gym.rollout.engine.RolloutEngine` drives exactly like a local environment
(its reset/step calls run on the engine's threads, so the actors step concurrently).

What crosses between processes: the action text one way; the observation text, the images it
holds (uint8 numpy arrays, which Ray ships as raw buffers: never PNG-in-base64 strings), the
reward and the info dict the other way. Each image crosses once, when its observation is
returned. The task description sent back after a reset carries no pixels (``images`` emptied):
the trainer needs only its question, answer and family for the episode record.

An actor that dies (node lost, worker killed) makes its episode an ``ENV_ERROR`` record (the
engine's usual path for a failing environment, which the end-reason filter removes), and the
engine replaces the handle with a fresh actor; the rest of the batch goes on.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import gymnasium as gym

from pyvision_gym.evaluation.fanout import ray_init

__all__ = ["EnvHost", "RayEnv", "ray_env_factory"]


class EnvHost:
    """The actor's body: one ``gym.make(env_id, **kwargs)`` environment."""

    def __init__(self, env_id: str, kwargs: dict[str, Any]) -> None:
        self.env = gym.make(env_id, **kwargs)

    def modality(self) -> str:
        return str(self.env.unwrapped.modality)

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
        """The reset observation and info, and the task without its pixels."""
        obs, info = self.env.reset(**kwargs)
        task = self.env.unwrapped.task
        return obs, info, dataclasses.replace(task, images={}) if dataclasses.is_dataclass(task) else task

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        return self.env.step(action)

    def close(self) -> None:
        self.env.close()


class RayEnv:
    """A local handle on an :class:`EnvHost` actor with the environment interface the rollout
    engine uses (``reset``, ``step``, ``close``, ``unwrapped.modality``, ``unwrapped.task``)."""

    def __init__(self, actor: Any) -> None:
        import ray  # optional dependency (the ``ray`` extra)

        self._ray, self.actor = ray, actor
        self.modality: str = ray.get(actor.modality.remote())
        self.task: Any = None

    @property
    def unwrapped(self) -> RayEnv:
        return self

    def reset(self, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        obs, info, self.task = self._ray.get(self.actor.reset.remote(**kwargs))
        return obs, info

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        return self._ray.get(self.actor.step.remote(action))

    def close(self) -> None:
        """Close the environment (if the actor still lives) and end the actor."""
        try:
            self._ray.get(self.actor.close.remote(), timeout=30)
        except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
            pass
        self._ray.kill(self.actor)


def _make(env_id: str, kwargs: dict[str, Any], options: dict[str, Any]) -> RayEnv:
    import ray

    return RayEnv(ray.remote(**options)(EnvHost).remote(env_id, kwargs))


def ray_env_factory(env_id: str, kwargs: dict[str, Any], workers: int, options: dict[str, Any] | None = None) -> Callable[[], RayEnv]:
    """A ``make_env`` for the rollout engine whose environments are Ray actors.

    Connects to the cluster named by ``RAY_ADDRESS`` or starts a local one (``workers`` CPUs).
    ``options`` are the actors' Ray resources (default ``num_cpus=0``: an environment mostly
    waits for the model, and its sandbox is a process of its own)."""
    import ray

    ray_init(ray, max(1, workers))
    return functools.partial(_make, env_id, dict(kwargs), dict(options or {"num_cpus": 0}))
