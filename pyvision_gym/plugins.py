"""Load a plugin named by a ``"module:attribute"`` string (Gymnasium's entry-point convention).

The core names agents, suites and other add-ons by such strings instead of importing them, so
it never depends on the packages built on top of it (``pyvision_gym.agents``,
``pyvision_gym.benchmarks``) and user code plugs in the same way (``--agent my_pkg.mod:MyAgent``).
"""

from __future__ import annotations

import importlib
from typing import Any


class PluginError(ValueError):
    """A ``module:attribute`` string that does not name a loadable object."""


def load(spec: str) -> Any:
    """The object named by ``"package.module:attr"`` (``attr`` may be dotted: ``Cls.method``)."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise PluginError(f"{spec!r} is not of the form 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import module {module_name!r} named in {spec!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(f"module {module_name!r} has no attribute {attr!r} (from {spec!r})") from None
    return obj
