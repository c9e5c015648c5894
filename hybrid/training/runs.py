"""What a run folder and a checkpoint decide for a command: the model a ``--resume``
continues, the weights an ``--init`` starts from, and evaluation over one split or every
split of a dataset (``--fold all``, each with the model trained on it, as the paper
reports UCF-101 and HMDB-51).

Errors are the library's (:class:`~hybrid.training.checkpoint.CheckpointError`,
``ValueError``, :class:`~hybrid.data.splits.SplitError`); the CLI turns them into one line.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from hybrid.data.native import native_size
from hybrid.data.sources import STORES, detect_layout, load_split
from hybrid.data.splits import SplitError
from hybrid.model import HybridConfig
from hybrid.training import checkpoint
from hybrid.training.evaluate import evaluate, load_model, open_views, plot_confusion
from hybrid.training.train import CKPT_NAME
from hybrid.video.transcode import DEFAULT_SIZE

FOLD_FIELD = "{fold}"  # where --fold all puts each split's number in a checkpoint path
# ``hybrid train``'s batch size when none is given: DEFAULT_BATCH clips a step, fewer (not
# below MIN_BATCH) on a training set too small for MIN_STEPS steps an epoch at it. An epoch
# costs about the same CPU time at any of these sizes; a small set gets the optimiser
# steps it needs in its epochs (docs/benchmarks.md, "The size a folder is read at": 88
# videos at 8 a step made 330 steps in 30 epochs, loss 0.81, one class pair at chance)
DEFAULT_BATCH, MIN_BATCH, MIN_STEPS = 8, 2, 32


def run_model_config(run_dir: str | Path) -> HybridConfig | None:
    """The model config of run folder ``run_dir``'s checkpoint; None without one."""
    path = Path(run_dir) / CKPT_NAME
    if not path.is_file():
        return None
    try:
        return HybridConfig.from_dict(checkpoint.load(path)["model_config"])
    except (KeyError, ValueError, TypeError) as exc:
        raise checkpoint.CheckpointError(f"{path}: {exc}") from exc


def default_video_size(data: str | Path, fold: int, run_dir: str | Path | None,
                       ) -> tuple[tuple[int, int], str | None]:
    """(size, a line saying which, or None) a dataset folder's videos are read at when no
    size is given: the run's (``run_dir`` of a ``--resume``, where its checkpoint records one),
    else the videos' own (:func:`hybrid.data.native.native_size`), so small videos are
    never upscaled several times over. A store is read at its prepare size whatever
    this returns."""
    path = None if run_dir is None else Path(run_dir) / CKPT_NAME
    if path is not None and path.is_file():
        recorded = checkpoint.load(path).get("video_size")
        if recorded:
            size = int(recorded[0]), int(recorded[1])
            return size, f"videos read at {size[0]}x{size[1]}, the run's size"
    text = "x".join(map(str, DEFAULT_SIZE))
    if detect_layout(data) in STORES:  # read at their prepare size: nothing to say
        return DEFAULT_SIZE, None
    items, _ = load_split(data, "train", fold)
    found = native_size(data, items)
    if found.size is None:
        return DEFAULT_SIZE, f"videos read at {text} ({found.describe()}; --video-size to choose)"
    return found.size, f"videos read at {found.describe()} (--video-size to resize)"


def default_batch_size(clips: int, processes: int = 1) -> tuple[int, str | None]:
    """(batch size per process, a line saying why, or None at the usual DEFAULT_BATCH) for
    a training set of ``clips`` videos split over ``processes``: DEFAULT_BATCH, or on a
    small set the largest size that still makes MIN_STEPS steps an epoch, not below
    MIN_BATCH."""
    per = clips // max(1, processes)
    size = max(MIN_BATCH, min(DEFAULT_BATCH, per // MIN_STEPS))
    if size == DEFAULT_BATCH:
        return size, None
    return size, (f"batch size {size}: {clips} training videos make "
                  f"{max(1, per // size)} steps an epoch at it ({DEFAULT_BATCH} gives "
                  f"fewer than {MIN_STEPS}; --batch-size to choose)")


def init_from(path: str | Path, quant: str) -> tuple[HybridConfig, dict, list[str] | None]:
    """(model config with ``quant``, state dict, classes) of an ``--init`` checkpoint;
    classes are None for a ``hybrid pretrain`` backbone (its classifier starts fresh)."""
    ck = checkpoint.load(path)
    try:
        cfg = dataclasses.replace(HybridConfig.from_dict(ck["model_config"]), quant=quant)
    except (KeyError, ValueError, TypeError) as exc:
        raise checkpoint.CheckpointError(f"{path}: {exc}") from exc
    if ck.get("kind") == checkpoint.PRETRAIN_KIND:
        return cfg, ck["model"], None
    return cfg, ck["model"], list(ck["classes"])


def eval_folds(data: str | Path, split: str, fold: str, ckpt_path: str) -> list[int]:
    """The folds to evaluate: ``fold`` ('1'..'3'), or for 'all' every fold DATA has a
    ``split`` for (CHECKPOINT then names each fold's model with ``{fold}``)."""
    if fold != "all":
        return [int(fold)]
    if FOLD_FIELD not in ckpt_path:
        raise ValueError(f"{ckpt_path}: --fold all evaluates each split with the model "
                         f"trained on it: put {FOLD_FIELD} in the checkpoint's path, e.g. "
                         "runs/split{fold}/checkpoint.pt")
    folds = []
    for k in (1, 2, 3):
        try:
            load_split(data, split, k)
            folds.append(k)
        except SplitError:
            pass
    return folds


def evaluate_checkpoint(ckpt_path: str | Path, data: str | Path, views: tuple[int, int],
                        split: str, fold: int, video_size, plot: Path,
                        quant: str | None = None, progress: Callable | None = None) -> dict:
    """Evaluate one checkpoint on one split of DATA and write its confusion-matrix plot
    (a plot that cannot be written leaves ``plot_error``, never loses the result)."""
    model, classes, ckpt = load_model(ckpt_path)
    video_size = video_size or tuple(ckpt.get("video_size") or DEFAULT_SIZE)
    trained = (ckpt.get("train_config") or {}).get("fold")
    if split == "test" and trained is not None and int(trained) != fold:
        raise ValueError(f"{ckpt_path} was trained on split {trained}; the test videos of "
                         f"split {fold} are training videos of split {trained}")
    ds, data_classes = open_views(data, split, views, model.cfg.segments,
                                      model.cfg.size[0], fold, video_size)
    if data_classes != classes:
        raise ValueError(f"{data} has classes {data_classes[:4]}... but {ckpt_path} was "
                         f"trained on {classes[:4]}...")
    res = evaluate(model, ds, classes, n_crops=views[1], progress=progress, quant=quant)
    res["views"], res["fold"] = f"{views[0]}x{views[1]}", fold
    try:
        plot_confusion(res, plot)
        res["plot"] = str(plot)
    except OSError as exc:
        res["plot"], res["plot_error"] = None, f"could not write the confusion matrix: {exc}"
    return res


def plot_path(ckpt_path: str, plot: str | None, fold: int, n_folds: int) -> Path:
    """Where fold ``fold``'s confusion matrix goes: ``plot`` (suffixed per fold when
    there are several), else confusion.png beside the checkpoint."""
    if not plot:
        return Path(ckpt_path).with_name("confusion.png")
    out = Path(plot)
    return out.with_name(f"{out.stem}_fold{fold}{out.suffix}") if n_folds > 1 else out


def over_folds(per_fold: dict[int, dict]) -> dict:
    """The JSON report of several folds: views, mean top-1/top-5, and each fold's result."""
    mean = {m: sum(r[m] for r in per_fold.values()) / len(per_fold) for m in ("top1", "top5")}
    first = next(iter(per_fold.values()))
    return {"views": first["views"], "mean": mean,
            "folds": {str(k): r for k, r in per_fold.items()}}


def render_folds(rep: dict) -> list[str]:
    """The text lines of :func:`over_folds`' report."""
    lines = [f"fold {k}: {r['videos']} videos, top-1 {r['top1']:.4f}, top-5 "
             f"{r['top5']:.4f} ({r['plot']})" for k, r in rep["folds"].items()]
    m = rep["mean"]
    lines.append(f"mean over {len(rep['folds'])} folds, views {rep['views']}: "
                 f"top-1 {m['top1']:.4f}, top-5 {m['top5']:.4f}")
    return lines
