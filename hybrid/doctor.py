"""Environment report and self-checks behind ``hybrid doctor``.

``CHECKS`` lists ``(name, function, fix hint)``; each function returns ``(ok, detail)``.
Functions are referenced by dotted path and imported when run, so importing this module
stays cheap.
"""
from __future__ import annotations

import importlib
import platform
import time
from dataclasses import asdict, dataclass
from importlib import metadata

FIX_INSTALL = "run `make test` or `make demo` to (re)create .venv, or see README.md"

CHECKS: list[tuple[str, str, str]] = [
    (
        "compat",
        "neuro.selfcheck:check_compat",
        "neuro.compat must be applied before any lava import: import neuro first; "
        "reinstall lava with `pip install --no-deps --ignore-requires-python "
        "lava-nc==0.10.0 lava-dl==0.6.0`",
    ),
    (
        "lava_lif_fixed_pt",
        "neuro.selfcheck:check_lava_lif",
        "Lava's fixed_pt simulation failed: check lava-nc 0.10.0 and its needs "
        "(networkx<=2.8.7, asteval<0.10, scipy, scikit-learn)",
    ),
    (
        "slayer_block",
        "neuro.selfcheck:check_slayer_block",
        "lava-dl SLAYER failed: check lava-dl 0.6.0 and torch (CPU build 2.13.0)",
    ),
    (
        "pyav_mpeg4_mvs",
        "hybrid.video.selfcheck:check_pyav_mpeg4",
        "PyAV must encode mpeg4 and export motion vectors: `pip install 'av>=12'` "
        "(its wheels bundle FFmpeg)",
    ),
]


@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str
    fix: str
    seconds: float


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict:
    """Versions of Python and the stack; GPU name if torch sees one."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for key, dist in [("torch", "torch"), ("numpy", "numpy"), ("av", "av"), ("h5py", "h5py"),
                      ("lava-nc", "lava-nc"), ("lava-dl", "lava-dl"), ("click", "click")]:
        out[key] = _version(dist)
    try:
        import av

        out["ffmpeg"] = av.ffmpeg_version_info
    except Exception:  # reported as missing, the pyav check says why
        out["ffmpeg"] = None
    try:
        import torch

        out["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:
        out["gpu"] = None
    return out


def run_check(name: str, target: str, fix: str) -> CheckResult:
    """Run one check; an exception counts as a failure with its message as detail."""
    t0 = time.perf_counter()
    try:
        module, func = target.split(":")
        ok, detail = getattr(importlib.import_module(module), func)()
    except Exception as exc:
        ok, detail = False, f"{type(exc).__name__}: {exc}"
    return CheckResult(name, bool(ok), detail, fix, time.perf_counter() - t0)


def report(results: list[CheckResult]) -> dict:
    return {"versions": versions(), "ok": all(r.ok for r in results),
            "checks": [asdict(r) for r in results]}
