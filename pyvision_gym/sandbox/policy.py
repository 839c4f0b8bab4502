"""The language layer: RestrictedPython compilation and the guards that restricted code calls.

RestrictedPython rewrites attribute access, item writes, iteration, unpacking, augmented
assignment and ``print`` into calls to guard functions; this module supplies those guards
under a policy written for vision code: numpy / PIL / matplotlib work, file, URL, process
and introspection routes out of them do not. This layer is not a security boundary on
its own (see ``pyvision_gym.isolation`` for the OS layer that contains the process).
"""

from __future__ import annotations

import ast
import builtins
import operator
import string
import types
import warnings
from collections import UserString
from collections.abc import Callable, Iterable
from typing import Any

from RestrictedPython import compile_restricted
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer

AGENT_MODULE = "__agent__"

# Full dotted module names agent code may import. Submodules are not implied: each entry
# is what `import X`, `from X import Y` (Y a module) and module-valued attributes may reach.
ALLOWED_MODULES: frozenset[str] = frozenset(
    {
        # standard library: pure computation only
        "math", "cmath", "statistics", "random", "itertools", "functools", "collections",
        "collections.abc", "re", "json", "string", "heapq", "bisect", "colorsys", "fractions",
        "decimal", "copy", "operator", "datetime", "time", "textwrap", "numbers", "unicodedata",
        "pprint", "difflib",
        # numerical and image libraries
        "numpy", "numpy.linalg", "numpy.random", "numpy.fft", "numpy.polynomial", "numpy.ma",
        "PIL", "PIL.Image", "PIL.ImageDraw", "PIL.ImageFilter", "PIL.ImageOps", "PIL.ImageEnhance",
        "PIL.ImageStat", "PIL.ImageColor", "PIL.ImageChops", "PIL.ImageFont", "PIL.ImageSequence",
        "matplotlib", "matplotlib.pyplot", "matplotlib.patches", "matplotlib.colors",
        "matplotlib.cm", "matplotlib.lines", "matplotlib.ticker", "matplotlib.gridspec",
        "matplotlib.collections", "matplotlib.path", "matplotlib.transforms", "matplotlib.figure",
        "matplotlib.axes",
        "scipy", "scipy.ndimage", "scipy.signal", "scipy.spatial", "scipy.spatial.distance",
        "scipy.optimize", "scipy.interpolate", "scipy.stats",
        "skimage", "skimage.measure", "skimage.color", "skimage.filters", "skimage.morphology",
        "skimage.transform", "skimage.feature", "skimage.exposure", "skimage.draw",
        "skimage.segmentation", "skimage.util",
    }
)
_ALLOWED_TOPLEVEL = frozenset(m.split(".")[0] for m in ALLOWED_MODULES)

# Attribute names refused on every object: file / URL / process entry points of the allowed
# libraries (numpy load/save/memmap/DataSource/tofile, PIL open/save/fonts from files,
# matplotlib savefig/imread/imsave/print_*), ctypes views, attribute getters that would
# bypass this guard, and the frame / code / traceback walks of generators and coroutines.
BLOCKED_ATTRIBUTES: frozenset[str] = frozenset(
    {
        "open", "load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt",
        "fromfile", "tofile", "fromregex", "memmap", "open_memmap", "DataSource", "dump", "dumps",
        "lib", "ctypes", "ctypeslib", "savefig", "imsave", "imread", "truetype", "FreeTypeFont",
        "load_path", "save_ppm", "fp", "im", "switch_backend", "rc_file", "register_open",
        "register_save", "register_save_all", "register_decoder", "register_encoder",
        "attrgetter", "methodcaller", "Formatter", "mro", "system", "popen",
        # reads a file / runs a test suite / calls native code from a pointer
        "rc_params_from_file", "test", "LowLevelCallable", "singledispatch", "singledispatchmethod",
        # set attributes by name / open paths behind library helpers
        "update_wrapper", "wraps", "OPEN", "SAVE", "SAVE_ALL", "DECODERS", "ENCODERS", "font_variant",
        "set_file", "Cascade", "rc_context", "rc_file_defaults", "FontProperties", "FontManager",
        "get_font", "fontManager", "ImageFile",
        # second pass: writable reduce table, instance-dict writer, latex file writer, RNG state
        "dispatch_table", "cached_property", "get_texmanager", "TexManager", "make_tex", "make_dvi", "set_state",
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "tb_frame", "tb_next",
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "ag_frame",
        "ag_code", "ag_await", "func_globals", "func_code",
    }
) | frozenset(INSPECT_ATTRIBUTES)
_BLOCKED_PREFIXES = ("save", "load", "print_", "dump")
_PREFIX_EXCEPTIONS = frozenset({"load_default", "loads"})


class PolicyViolation(PermissionError):
    """Raised when restricted code reaches for something the runtime does not allow."""


PolicyViolation.__module__ = "builtins"  # tracebacks show "PolicyViolation: ..." only


def _blocked_name(name: str) -> bool:
    if name.startswith("_") or name in BLOCKED_ATTRIBUTES:
        return True
    return name.startswith(_BLOCKED_PREFIXES) and name not in _PREFIX_EXCEPTIONS


def _check_module(mod: types.ModuleType, via: str) -> types.ModuleType:
    name = getattr(mod, "__name__", "?")
    if name not in ALLOWED_MODULES:
        raise PolicyViolation(f"access to module '{name}' (via {via}) is not allowed in the runtime")
    return mod


# Classes and functions must come from an allowed package (private C accelerators such as
# ``_heapq`` count as their public module), the builtins, agent code, or the sandbox's own
# video handle. This closes re-exports such as ``matplotlib.Path`` (pathlib) or
# ``ImageFont.BytesIO`` (io) that would otherwise carry file access past the import allowlist.
_ORIGINS = _ALLOWED_TOPLEVEL | {"builtins", "pvg_sandbox"}
_CALLABLE_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.BuiltinMethodType)


def _check_value(value: Any, via: str) -> Any:
    if isinstance(value, types.ModuleType):
        return _check_module(value, via)
    if isinstance(value, type):
        np = _np()
        if issubclass(value, np.ndarray) and value.__module__ != AGENT_MODULE:
            return _GuardedArrayClass(value)
        if issubclass(value, type):
            raise PolicyViolation(f"metaclasses are not accessible in the runtime (via {via})")
        if value.__name__ in BLOCKED_ATTRIBUTES:
            raise PolicyViolation(f"class '{value.__name__}' (via {via}) is not accessible in the runtime")
        _check_origin(value, via)
    elif isinstance(value, _CALLABLE_TYPES):
        _check_origin(value, via)
    return value


def _check_origin(value: Any, via: str) -> None:
    mod = getattr(value, "__module__", None)
    if not isinstance(mod, str) or mod == AGENT_MODULE:
        return
    if mod.split(".")[0].lstrip("_") not in _ORIGINS:
        name = getattr(value, "__qualname__", "?")
        raise PolicyViolation(f"{via} leads to '{mod}.{name}', which is outside the runtime's allowed modules")


class _GuardedArrayClass:
    """An ndarray class as agent code sees it: calls refuse object dtypes over a given buffer."""

    __slots__ = ("_cls",)

    def __init__(self, cls: type) -> None:
        self._cls = cls

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        np = _np()
        buffer = kwargs.get("buffer", kwargs.get("buf", args[2] if len(args) > 2 else None))
        dtype = kwargs.get("dtype", kwargs.get("formats", args[1] if len(args) > 1 else float))
        if buffer is not None:
            try:
                has_object = np.dtype(dtype).hasobject
            except TypeError:
                has_object = True
            if has_object or kwargs.get("formats") is not None:
                raise PolicyViolation("arrays of objects cannot be made over a buffer in the runtime")
        return self._cls(*args, **kwargs)

    def __instancecheck__(self, obj: Any) -> bool:
        return isinstance(obj, self._cls)

    def __subclasscheck__(self, cls: Any) -> bool:
        return issubclass(cls, self._cls)

    def __mro_entries__(self, bases: Any) -> tuple:
        raise PolicyViolation("library array classes cannot be subclassed in the runtime")

    def __getattr__(self, name: str) -> Any:
        return guarded_getattr(self._cls, name)

    def __repr__(self) -> str:
        return repr(self._cls)


# --------------------------------------------------------------------------------------------
# guarded attribute access and format strings
# --------------------------------------------------------------------------------------------
class _SafeFormatter(string.Formatter):
    """``str.format`` whose ``{0.attr}`` / ``{0[key]}`` fields go through the guards."""

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> tuple[Any, str]:
        first, rest = _formatter_field_name_split(field_name)
        obj = self.get_value(first, args, kwargs)
        for is_attr, key in rest:
            obj = guarded_getattr(obj, key) if is_attr else guarded_getitem(obj, key)
        return obj, first


def _formatter_field_name_split(field_name: str):
    # The parser of field names lives in the private ``_string`` module; it is trusted code.
    import _string

    return _string.formatter_field_name_split(field_name)


_FORMATTER = _SafeFormatter()


def safe_format(template: str, *args: Any, **kwargs: Any) -> str:
    return _FORMATTER.vformat(template, args, kwargs)


def _safe_format_map(template: str, mapping: Any) -> str:
    return _FORMATTER.vformat(template, (), mapping)


def _bind_str_format(obj: Any, name: str) -> Callable[..., str]:
    fn = safe_format if name == "format" else _safe_format_map
    if isinstance(obj, str):
        return lambda *a, **k: fn(obj, *a, **k)
    return fn  # accessed on the str type itself: the template is the first argument


def _matplotlib_use(backend: str, *args: Any, **kwargs: Any) -> None:
    if str(backend).lower() != "agg":
        raise PolicyViolation("the runtime renders with matplotlib's Agg backend only")


def _np():
    import numpy

    return numpy


def _safe_resize(arr: Any, *shape: Any, refcheck: bool = True) -> None:
    if not refcheck:
        raise PolicyViolation("ndarray.resize(refcheck=False) is not available in the runtime")
    return arr.resize(*shape)


def guarded_getattr(obj: Any, name: str, *default: Any) -> Any:
    """``getattr`` for restricted code (also bound to the ``getattr`` builtin)."""
    if type(name) is not str:  # a str subclass could lie to the checks below
        raise PolicyViolation("attribute names must be plain strings in the runtime")
    if _blocked_name(name):
        raise PolicyViolation(f"attribute '{name}' is not accessible in the runtime")
    if name in ("format", "format_map") and (isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))):
        return _bind_str_format(obj, name)
    if name in ("format", "format_map") and (isinstance(obj, UserString) or (isinstance(obj, type) and issubclass(obj, UserString))):
        if isinstance(obj, UserString):
            return _bind_str_format(str(obj.data), name)
        fn = safe_format if name == "format" else _safe_format_map
        return lambda self, *a, **k: fn(str(self.data), *a, **k)
    if name == "resize" and (isinstance(obj, _np().ndarray) or (isinstance(obj, type) and issubclass(obj, _np().ndarray))):
        return _safe_resize if isinstance(obj, type) else (lambda *shape, refcheck=True: _safe_resize(obj, *shape, refcheck=refcheck))
    if name == "use" and isinstance(obj, types.ModuleType) and obj.__name__ == "matplotlib":
        return _matplotlib_use
    try:
        value = getattr(obj, name)
    except AttributeError:
        if default:
            return default[0]
        raise
    return _check_value(value, f"attribute '{name}'")


def guarded_hasattr(obj: Any, name: str) -> bool:
    try:
        guarded_getattr(obj, name)
    except (AttributeError, PolicyViolation):
        return False
    return True


def guarded_getitem(obj: Any, key: Any) -> Any:
    # Some library objects turn item access into getattr (e.g. skimage's region properties).
    if isinstance(key, str) and key.startswith("_") and not isinstance(obj, (dict, list, tuple, str)):
        raise PolicyViolation(f"item '{key}' is not accessible in the runtime")
    return _check_value(obj[key], "item access")


def _is_agent_class(obj: Any) -> bool:
    return isinstance(obj, type) and getattr(obj, "__module__", None) == AGENT_MODULE


class _WriteGuard:
    """What ``_write_`` hands back for objects with attributes that must not be assigned."""

    __slots__ = ("_obj", "_refused")

    def __init__(self, obj: Any, refused: frozenset[str]) -> None:
        object.__setattr__(self, "_obj", obj)
        object.__setattr__(self, "_refused", refused)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._refused:
            raise PolicyViolation(f"attribute '{name}' cannot be set in the runtime")
        setattr(self._obj, name, value)

    def __delattr__(self, name: str) -> None:
        if name in self._refused:
            raise PolicyViolation(f"attribute '{name}' cannot be deleted in the runtime")
        delattr(self._obj, name)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._obj[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._obj[key]


def _refused_writes(obj: Any) -> frozenset[str]:
    np = _np()
    if isinstance(obj, np.ndarray):
        return frozenset({"strides"})
    if isinstance(obj, np.random.BitGenerator):
        return frozenset({"state"})
    return frozenset()


def guarded_write(obj: Any) -> Any:
    """Target of item / attribute writes: anything but modules and library classes."""
    refused = _refused_writes(obj)
    if refused:
        return _WriteGuard(obj, refused)
    if isinstance(obj, _GuardedArrayClass):
        raise PolicyViolation(f"library classes cannot be modified in the runtime ('{obj._cls.__name__}')")
    if isinstance(obj, types.ModuleType):
        raise PolicyViolation(f"modules cannot be modified in the runtime ('{obj.__name__}')")
    if isinstance(obj, type) and not _is_agent_class(obj):
        raise PolicyViolation(f"library classes cannot be modified in the runtime ('{obj.__name__}')")
    return obj


def guarded_setattr(obj: Any, name: str, value: Any) -> None:
    if type(name) is not str or name.startswith("_") or name in _refused_writes(obj):
        raise PolicyViolation(f"attribute '{name}' cannot be set in the runtime")
    setattr(guarded_write(obj), name, value)


def guarded_delattr(obj: Any, name: str) -> None:
    if type(name) is not str or name.startswith("_"):
        raise PolicyViolation(f"attribute '{name}' cannot be deleted in the runtime")
    delattr(guarded_write(obj), name)


_INPLACE_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
    "@=": operator.imatmul,
}


def inplacevar(op: str, x: Any, y: Any) -> Any:
    return _INPLACE_OPS[op](x, y)


def inplace_item(obj: Any, key: Any, op: str, value: Any) -> None:
    """``obj[key] op= value`` with ``obj`` and ``key`` evaluated once."""
    guarded_write(obj)[key] = inplacevar(op, guarded_getitem(obj, key), value)


def inplace_attr(obj: Any, name: str, op: str, value: Any) -> None:
    """``obj.name op= value``."""
    guarded_setattr(obj, name, inplacevar(op, guarded_getattr(obj, name), value))


# --------------------------------------------------------------------------------------------
# imports
# --------------------------------------------------------------------------------------------
def _private_internal(name: str) -> bool:
    """Private submodules of allowed packages, imported by their own C code at call time.

    The compiler refuses any import with an underscore component in agent source, so such
    a name reaching the guard comes from library internals (e.g. ``ndarray.mean`` importing
    ``numpy._core._methods`` through the calling frame's ``__import__``).
    """
    if name == "_strptime":  # imported by datetime.strptime / time.strptime at call time
        return True
    parts = name.split(".")
    return parts[0] in _ALLOWED_TOPLEVEL and any(p.startswith("_") for p in parts[1:])


def guarded_import(
    name: str, globals: Any = None, locals: Any = None, fromlist: Iterable[str] | None = (), level: int = 0
) -> types.ModuleType:
    if level != 0:
        raise PolicyViolation("relative imports are not allowed in the runtime")
    if type(name) is not str or any(type(item) is not str for item in fromlist or ()):
        raise PolicyViolation("import names must be plain strings")
    if name not in ALLOWED_MODULES and not _private_internal(name):
        allowed = ", ".join(sorted(m for m in ALLOWED_MODULES if "." not in m))
        raise PolicyViolation(f"import of '{name}' is not allowed in the runtime (allowed: {allowed}, and listed submodules)")
    module = builtins.__import__(name, globals, locals, fromlist or (), 0)
    for item in fromlist or ():
        if item == "*" or _blocked_name(item):
            raise PolicyViolation(f"'from {name} import {item}' is not allowed in the runtime")
        value = getattr(module, item, None)
        if value is None:
            full = f"{name}.{item}"
            if full in ALLOWED_MODULES:
                builtins.__import__(full, globals, locals, (), 0)
                value = getattr(module, item, None)
        _check_value(value, f"from {name} import {item}")
    return module


# --------------------------------------------------------------------------------------------
# compilation
# --------------------------------------------------------------------------------------------
class VisionPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer, plus: underscore-free dotted imports, no relative
    imports, and augmented assignment to items and attributes (``d[k] += 1``, ``a[1:3] *= 2``)."""

    def check_import_names(self, node: ast.ImportFrom | ast.Import) -> ast.AST:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                self.error(node, "Relative imports are not allowed.")
            if node.module and any(p.startswith("_") for p in node.module.split(".")):
                self.error(node, f'"{node.module}" is an invalid module name because it has a part starting with "_".')
        for alias in node.names:
            if any(p.startswith("_") for p in alias.name.split(".")):
                self.error(node, f'"{alias.name}" is an invalid module name because it has a part starting with "_".')
        return super().check_import_names(node)

    def _check_annotation(self, node: ast.AST | None) -> None:
        # typing / functools evaluate string annotations with eval(), outside the policy.
        if node is not None and any(isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node)):
            self.error(node, "String annotations are not allowed.")

    def visit_arg(self, node: ast.arg) -> ast.AST:
        self._check_annotation(node.annotation)
        return super().visit_arg(node)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self._check_annotation(node.returns)
        return super().visit_FunctionDef(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        target = node.target
        if isinstance(target, ast.Name):
            return super().visit_AugAssign(node)
        op = ast.Constant(_OP_TO_STR[type(node.op)])
        value = self.visit(node.value)
        if isinstance(target, ast.Subscript):
            obj = self.visit(target.value)
            key = self._slice_to_expr(self.visit(target.slice))
            call = ast.Call(ast.Name("_inplace_item_", ast.Load()), [obj, key, op, value], [])
        elif isinstance(target, ast.Attribute):
            if target.attr.startswith("_"):
                self.error(node, f'"{target.attr}" is an invalid attribute name because it starts with "_".')
                return node
            obj = self.visit(target.value)
            call = ast.Call(
                ast.Name("_inplace_attr_", ast.Load()), [obj, ast.Constant(target.attr), op, value], []
            )
        else:  # pragma: no cover - the grammar allows only the three target kinds
            self.error(node, "Unsupported augmented assignment target.")
            return node
        new = ast.Expr(call)
        ast.copy_location(new, node)
        ast.fix_missing_locations(new)
        return new

    def _slice_to_expr(self, node: ast.AST) -> ast.AST:
        if isinstance(node, ast.Slice):
            parts = [p if p is not None else ast.Constant(None) for p in (node.lower, node.upper, node.step)]
            return ast.Call(ast.Name("_slice_", ast.Load()), parts, [])
        if isinstance(node, ast.Tuple):
            return ast.Tuple([self._slice_to_expr(e) for e in node.elts], ast.Load())
        return node


_OP_TO_STR = {
    ast.Add: "+=", ast.Sub: "-=", ast.Mult: "*=", ast.Div: "/=", ast.Mod: "%=", ast.Pow: "**=",
    ast.LShift: "<<=", ast.RShift: ">>=", ast.BitOr: "|=", ast.BitXor: "^=", ast.BitAnd: "&=",
    ast.FloorDiv: "//=", ast.MatMult: "@=",
}


def compile_agent_code(source: str, filename: str) -> types.CodeType:
    """Compile agent source under the policy; raises SyntaxError naming every violation."""
    ast.parse(source, filename)  # a plain syntax error, with its line and offset
    with warnings.catch_warnings():
        # RestrictedPython warns about its own 'printed' idiom, which this runtime does not use.
        warnings.simplefilter("ignore", SyntaxWarning)
        return compile_restricted(source, filename, "exec", policy=VisionPolicy)
