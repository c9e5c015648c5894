"""Make lava-nc 0.10 and lava-dl 0.6 importable on this platform.

Applied once, before any ``lava`` import (``neuro/__init__.py`` calls :func:`apply`).
Two problems are fixed, and nothing in site-packages is edited:

1. ``lava.magma.compiler.var_model`` declares dataclass fields with a mutable default
   instance (``x: ByteEncoder = ByteEncoder()``). Python 3.11 rejects that. A
   ``sys.meta_path`` finder for that one module rewrites those defaults to
   ``field(default_factory=ByteEncoder)`` before executing the source.
2. ``lava.lib.dl.slayer`` imports ``slayer.object_detection``, which needs torchvision
   (no CPU build exists here). When torchvision is missing, that module gets a
   placeholder that raises a clear ImportError on any attribute use.

Both fixes are no-ops where not needed (Python 3.10, torchvision installed).
:func:`status` reports what was applied (used by ``hybrid doctor``).
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types

VAR_MODEL = "lava.magma.compiler.var_model"
OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"
_MUTABLE_DEFAULT = re.compile(r"^(\s+\w+: ByteEncoder) = ByteEncoder\(\)\s*$", re.M)

_state = {"var_model_hook": False, "object_detection_placeholder": False}


def _needs_var_model_fix() -> bool:
    return sys.version_info >= (3, 11)


def _has_torchvision() -> bool:
    return importlib.util.find_spec("torchvision") is not None


class _VarModelLoader(importlib.machinery.SourceFileLoader):
    """Source loader that rewrites the mutable ByteEncoder defaults.

    It always compiles from source (never reads or writes the ``__pycache__`` entry),
    so the installed files and their bytecode cache stay untouched.
    """

    def get_code(self, fullname):  # noqa: D102
        path = self.get_filename(fullname)
        src = importlib.util.decode_source(self.get_data(path))
        fixed = _MUTABLE_DEFAULT.sub(
            r"\1 = __import__('dataclasses').field(default_factory=ByteEncoder)", src
        )
        return compile(fixed, path, "exec", dont_inherit=True)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Finds ``lava.magma.compiler.var_model`` and hands it to :class:`_VarModelLoader`."""

    def find_spec(self, fullname, path, target=None):  # noqa: D102
        if fullname != VAR_MODEL:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _VarModelLoader(fullname, spec.origin)
        return spec


class _Placeholder(types.ModuleType):
    """Stands in for slayer.object_detection when torchvision is missing."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{OBJECT_DETECTION}.{name} needs torchvision, which is not installed; "
            "this toolkit does not use slayer's object detection"
        )


def apply() -> dict:
    """Install the fixes this interpreter needs. Idempotent; returns :func:`status`."""
    if _needs_var_model_fix() and not any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        if VAR_MODEL in sys.modules:
            raise RuntimeError(f"{VAR_MODEL} was imported before neuro.compat.apply()")
        sys.meta_path.insert(0, _VarModelFinder())
    _state["var_model_hook"] = any(isinstance(f, _VarModelFinder) for f in sys.meta_path)
    if not _has_torchvision() and OBJECT_DETECTION not in sys.modules:
        placeholder = _Placeholder(OBJECT_DETECTION)
        placeholder.__file__ = None
        sys.modules[OBJECT_DETECTION] = placeholder
    current = sys.modules.get(OBJECT_DETECTION)
    _state["object_detection_placeholder"] = isinstance(current, _Placeholder)
    return status()


def status() -> dict:
    """What :func:`apply` did: which fixes are active and why."""
    return {
        "python": ".".join(map(str, sys.version_info[:3])),
        "var_model_fix_needed": _needs_var_model_fix(),
        "var_model_hook": _state["var_model_hook"],
        "torchvision": _has_torchvision(),
        "object_detection_placeholder": _state["object_detection_placeholder"],
    }
