"""Library patches the zygote applies once, before any agent code runs.

``show`` of matplotlib and PIL goes to the current episode's display collector, matplotlib is
locked to the Agg backend, and a few library entry points that would reach files, modules or
private attributes behind the policy's back are guarded. Imports happen inside the functions
because the zygote calls this after its own start-up, inside the sandbox.
"""

from __future__ import annotations

from typing import Any

from .capture import Display
from .policy import PolicyViolation, safe_format


def patch_libraries(display_ref: list[Display | None]) -> None:
    """Route matplotlib's and PIL's ``show`` to the current episode's display collector."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from PIL import Image

    def current() -> Display:
        d = display_ref[0]
        if d is None:
            raise RuntimeError("no episode is active")
        return d

    def fig_show(self: Figure, *args: Any, **kwargs: Any) -> None:
        current().figure(self)
        plt.close(self)

    def pil_show(self: Image.Image, *args: Any, **kwargs: Any) -> None:
        current().show_object(self)

    plt.show = lambda *a, **k: current().plt_show()
    Figure.show = fig_show
    Image.Image.show = pil_show
    _lock_matplotlib(matplotlib, plt)


def _lock_matplotlib(matplotlib: Any, plt: Any) -> None:
    """Keep matplotlib on Agg (a ``module://`` backend would import any module) and route its
    format-string helpers, font files and figure hooks through the policy."""
    _agg_only(matplotlib, plt)
    _guard_formatters()
    _guard_fonts_and_hooks(plt)
    _guard_private_lookups()
    _guard_pil_codecs()


def _agg_only(matplotlib: Any, plt: Any) -> None:
    plt.switch_backend("agg")
    switch = plt.switch_backend

    def agg_only(newbackend: str) -> None:
        if str(newbackend).lower() != "agg":
            raise PolicyViolation("the runtime renders with matplotlib's Agg backend only")
        switch("agg")

    def validate_backend(value: Any) -> str:
        if str(value).lower() != "agg":
            raise ValueError("the runtime renders with matplotlib's Agg backend only")
        return "agg"

    plt.switch_backend = agg_only
    matplotlib.rcParams.validate["backend"] = validate_backend


def _guard_formatters() -> None:
    """``str.format``-based tick and auto formatters go through the policy's ``safe_format``."""
    from matplotlib import cbook, ticker

    def str_method_call(self: Any, x: Any, pos: Any = None) -> str:
        return safe_format(self.fmt, x=x, pos=pos)

    ticker.StrMethodFormatter.__call__ = str_method_call

    def auto_format_str(fmt: str, value: Any) -> str:
        try:
            return fmt % (value,)
        except (TypeError, ValueError):
            return safe_format(fmt, value)

    cbook._auto_format_str = auto_format_str


def _guard_fonts_and_hooks(plt: Any) -> None:
    """No font files chosen by path, no ``rcParams['figure.hooks']`` module imports."""
    from matplotlib import font_manager

    set_file = font_manager.FontProperties.set_file

    def guarded_set_file(self: Any, file: Any) -> None:
        if file is not None:
            raise PolicyViolation("font files cannot be chosen in the runtime")
        set_file(self, file)

    font_manager.FontProperties.set_file = guarded_set_file

    class _NoImport:
        @staticmethod
        def import_module(name: str, package: Any = None) -> Any:
            raise PolicyViolation("rcParams['figure.hooks'] is not available in the runtime")

    plt.importlib = _NoImport


def _no_private_getattr(original: Any) -> Any:
    """A ``__getattr__`` that refuses underscore names before delegating to ``original``."""

    def guarded(self: Any, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return original(self, name)

    return guarded


def _guard_private_lookups() -> None:
    """Objects whose ``__getattr__`` / ``__getitem__`` would hand out private attributes."""
    from matplotlib import spines
    from scipy._lib._util import _RichResult
    from skimage.measure._regionprops import RegionProperties

    spines.Spines.__getattr__ = _no_private_getattr(spines.Spines.__getattr__)
    _RichResult.__getattr__ = _no_private_getattr(_RichResult.__getattr__)
    rp_getitem = RegionProperties.__getitem__

    def guarded_rp_getitem(self: Any, key: Any) -> Any:
        if isinstance(key, str) and key.startswith("_"):
            raise PolicyViolation(f"item '{key}' is not accessible in the runtime")
        return rp_getitem(self, key)

    RegionProperties.__getitem__ = guarded_rp_getitem


def _guard_pil_codecs() -> None:
    """PIL's libtiff and jpeg2k codecs can read and write file descriptors: refuse them."""
    from PIL import Image as PILImage

    for attr in ("_getencoder", "_getdecoder"):
        original = getattr(PILImage, attr)

        def no_fd_codecs(mode: Any, name: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            if name in ("libtiff", "jpeg2k"):
                raise PolicyViolation(f"the '{name}' codec is not available in the runtime")
            return _original(mode, name, *args, **kwargs)

        setattr(PILImage, attr, no_fd_codecs)
