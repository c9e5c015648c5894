"""Training checkpoints: one versioned file holding the model and its configs, the class
names, the optimiser and scheduler, written atomically.

Format (``torch.save`` of a dict of plain types and tensors, loaded with
``weights_only=True``): ``format`` = ``"hybrid-checkpoint"``, ``version`` =
:data:`VERSION`, ``model_config`` (dict), ``train_config`` (dict), ``classes`` (list),
``epoch`` (epochs completed), ``model``, ``optimizer``, ``scheduler`` (state dicts),
``metrics`` (dict of the last epoch), ``video_size`` ([W, H] the training videos were
read at: a cache's prepare size or the folder's ``--video-size``; absent in checkpoints
of earlier versions of this toolkit and of in-memory datasets). No RNG state: training
derives every epoch's random streams from ``train_config["seed"]`` and the epoch
(``hybrid.training.train``), so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import logging
import pickle
from pathlib import Path

import torch

from deploy.atomic import write_file

#: Format name and version stamped into every checkpoint.
FORMAT = "hybrid-checkpoint"
#: The checkpoint version this code writes and reads.
VERSION = 1
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's zip format starts so
PRETRAIN_KIND = "pretrain"  # ``kind`` of a `hybrid pretrain` checkpoint
log = logging.getLogger(__name__)


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
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty (0 bytes; a failed copy "
                              f"or a full disk?)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise _unreadable(path, exc) from exc
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


def load_classifier(path: str | Path) -> dict:
    """:func:`load` for the commands that need a trained classifier (eval, predict,
    deploy, explain, profile, ...): a `hybrid pretrain` checkpoint is refused, saying
    what it is and how to fine-tune it."""
    ckpt = load(path)
    if ckpt.get("kind") == PRETRAIN_KIND:
        raise CheckpointError(
            f"{path}: a `hybrid pretrain` checkpoint (the backbone and its pretext heads, "
            f"no classifier): fine-tune it first with `hybrid train DATA -o RUN --init "
            f"{path}`, then use RUN/checkpoint.pt")
    return ckpt


def _unreadable(path: Path, exc: Exception) -> CheckpointError:
    """The one-line error for a file ``torch.load`` refused; torch's own (long, and
    advising an unsafe load) is logged at debug level (``hybrid -vv``) and chained."""
    log.debug("torch.load(%s) failed", path, exc_info=exc)
    with open(path, "rb") as f:
        torch_file = f.read(4) == ZIP_MAGIC
    more = "; `hybrid -vv ...` shows torch's error"
    if not torch_file:
        return CheckpointError(f"not a hybrid checkpoint: {path} (not a file torch.save "
                               f"writes{more})")
    if isinstance(exc, pickle.UnpicklingError):
        return CheckpointError(f"not a hybrid checkpoint: {path} (a torch file holding "
                               f"objects other than plain types and tensors{more})")
    return CheckpointError(f"{path}: truncated or damaged checkpoint "
                           f"({path.stat().st_size:,} bytes: a failed copy or download?{more})")


def resume_state(path: str | Path, resume: bool) -> dict | None:
    """The checkpoint a run folder resumes from: loaded when ``resume``, None for a new
    run. Raises CheckpointError when ``resume`` finds none, FileExistsError when a new
    run would overwrite one."""
    path = Path(path)
    if resume:
        if not path.is_file():
            raise CheckpointError(f"{path}: --resume given but there is no checkpoint in "
                                  "this run folder")
        return load(path)
    if path.is_file():
        raise FileExistsError(f"{path} exists: pass --resume to continue that run, or "
                              "choose another output folder")
    return None


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, shortened; never fails (some
    exceptions have an empty message)."""
    lines = str(exc).strip().splitlines()
    return lines[0][:limit] if lines else "no message"
