"""Training checkpoints: one versioned file holding the model and its configs, the class
names, the optimiser, scheduler and RNG states, written atomically.

Format (``torch.save`` of a dict of plain types and tensors, loaded with
``weights_only=True``): ``format`` = ``"hybrid-checkpoint"``, ``version`` =
:data:`VERSION`, ``model_config`` (dict), ``train_config`` (dict), ``classes`` (list),
``epoch`` (epochs completed), ``model``, ``optimizer``, ``scheduler`` (state dicts),
``rng`` (dict), ``metrics`` (dict of the last epoch).
"""
from __future__ import annotations

from pathlib import Path

import torch

from deploy.atomic import write_file

FORMAT = "hybrid-checkpoint"
VERSION = 1


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message names the file and why."""


def save_atomic(obj: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over it:
    a kill at any moment leaves either the old file or the new one, never half of one."""
    write_file(path, lambda f: torch.save(obj, f))


def save(path: str | Path, **fields) -> None:
    save_atomic({"format": FORMAT, "version": VERSION, **fields}, path)


def load(path: str | Path) -> dict:
    """Load and validate a checkpoint; raises :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200]})") from exc
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a hybrid checkpoint (format "
                              f"{ckpt.get('format') if isinstance(ckpt, dict) else type(ckpt)!r}, "
                              f"expected {FORMAT!r})")
    if ckpt.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {ckpt.get('version')} but this "
                              f"toolkit reads version {VERSION}")
    missing = {"model_config", "classes", "model", "epoch"} - set(ckpt)
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {sorted(missing)}")
    return ckpt
