"""The restricted builtins and the fresh namespace each episode's agent code runs in."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from RestrictedPython.Guards import (
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
)

from .policy import (
    AGENT_MODULE,
    PolicyViolation,
    _blocked_name,
    _check_value,
    guarded_delattr,
    guarded_getattr,
    guarded_getitem,
    guarded_hasattr,
    guarded_import,
    guarded_setattr,
    guarded_write,
    inplace_attr,
    inplace_item,
    inplacevar,
)


def _one_arg_type(obj: Any) -> type:
    """``type(x)``; the three-argument form, metaclasses and classes from outside the
    allowlist are not offered."""
    return _check_value(type(obj), "type()")


def _safe_dir(*obj: Any) -> list[str]:
    if not obj:
        raise PolicyViolation("dir() without an argument is not available in the runtime")
    return [n for n in dir(obj[0]) if not _blocked_name(n)]


def _unavailable(name: str, why: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PolicyViolation(f"{name}() is not available in the runtime: {why}")

    refuse.__name__ = name
    return refuse


def make_builtins(display: Callable[..., None]) -> dict[str, Any]:
    """The builtins of restricted code."""
    b: dict[str, Any] = {k: v for k, v in safe_builtins.items() if not k.startswith("_")}
    for name in (
        "sorted", "zip", "tuple", "bytes", "all", "any", "enumerate", "filter", "iter", "list", "map", "max", "min", "next", "reversed",
        "sum", "dict", "frozenset", "set", "format", "bin", "ascii", "object", "super", "staticmethod",
        "classmethod", "property", "bytearray", "StopIteration", "StopAsyncIteration",
        "ArithmeticError", "AssertionError", "BaseException", "SystemExit", "KeyboardInterrupt",
        "MemoryError", "RecursionError", "GeneratorExit", "OverflowError", "LookupError",
        "NotImplemented", "Ellipsis", "FileNotFoundError", "PermissionError", "TimeoutError",
        "UnicodeError", "BufferError", "EOFError",
    ):
        b[name] = getattr(builtins, name)
    b.update(
        __import__=guarded_import,
        __build_class__=builtins.__build_class__,
        getattr=guarded_getattr,
        hasattr=guarded_hasattr,
        setattr=guarded_setattr,
        delattr=guarded_delattr,
        type=_one_arg_type,
        dir=_safe_dir,
        display=display,
        open=_unavailable("open", "the runtime has no file access; use the preloaded variables"),
        input=_unavailable("input", "there is no interactive input"),
        exit=_unavailable("exit", "the runtime cannot be exited"),
        quit=_unavailable("quit", "the runtime cannot be exited"),
        help=_unavailable("help", "there is no interactive help"),
        PolicyViolation=PolicyViolation,
    )
    return b


class PrintSink:
    """``print`` for restricted code: writes to the call's bounded output buffer."""

    stream: Any = None  # set by the worker before each call

    def __init__(self, _getattr_: Any = None) -> None:
        pass

    def _call_print(self, *objects: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None, flush: bool = False) -> None:
        if file is not None:
            raise PolicyViolation("print(file=...) is not available in the runtime")
        print(*objects, sep=sep, end=end, file=PrintSink.stream)

    def __call__(self) -> str:
        raise PolicyViolation("the 'printed' variable is not available in the runtime")


def make_namespace(display: Callable[..., None], preload: dict[str, Any]) -> dict[str, Any]:
    """A fresh globals dict for one episode."""
    ns: dict[str, Any] = {
        "__builtins__": make_builtins(display),
        "__name__": AGENT_MODULE,
        "__metaclass__": type,
        "_getattr_": guarded_getattr,
        "_getitem_": guarded_getitem,
        "_write_": guarded_write,
        "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
        "_inplacevar_": inplacevar,
        "_inplace_item_": inplace_item,
        "_inplace_attr_": inplace_attr,
        "_slice_": slice,
        "_print_": PrintSink,
        "_apply_": lambda f, *a, **k: f(*a, **k),
    }
    ns.update(preload)
    return ns
