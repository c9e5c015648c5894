"""``hybrid train``, ``hybrid eval`` and ``hybrid predict``."""
from __future__ import annotations

import json
from pathlib import Path

import click

from hybrid.cli.types import FiniteFloatRange


def progress_bar(it, label):
    """click progress bar on stderr for training and evaluation loops."""
    return click.progressbar(it, label=label, file=click.get_text_stream("stderr"),
                             show_pos=True)


def _views(ctx, param, value: str) -> tuple[int, int]:
    try:
        s, c = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected SEGMENTSxCROPS like 8x1, got {value!r}") from None
    if s < 1 or c not in (1, 3, 5):
        raise click.BadParameter(f"segments must be >= 1 and crops 1, 3 or 5, got {value}")
    return s, c


def _open(data: str, split: str, segments: int, train: bool, crop, fold: int, seed: int):
    """(dataset, classes) for a dataset folder or a `hybrid prepare` cache; user errors
    become ClickExceptions."""
    from hybrid.data.dataset import open_split
    from hybrid.data.splits import SplitError

    try:
        ds, classes = open_split(data, split, segments, train, crop, fold, seed)
    except (SplitError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not len(ds):
        raise click.ClickException(f"{data}: the {split} split of fold {fold} is empty")
    return ds, classes


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("-o", "--out", "run_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder: checkpoint.pt, metrics.csv, metrics.png.")
@click.option("--variant", type=click.Choice(["tiny", "base", "large"]), default="tiny",
              show_default=True, help="Dense-partition variant.")
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in OUT from its checkpoint.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--lr", type=FiniteFloatRange(0, min_open=True), default=1e-3, show_default=True)
@click.option("--weight-decay", type=FiniteFloatRange(0), default=1e-4, show_default=True)
@click.option("--segments", type=click.IntRange(1), default=3, show_default=True,
              help="TSN segments (GOPs) per clip.")
@click.option("--size", type=click.IntRange(16), default=56, show_default=True,
              help="Crop side in pixels (I-frame, MV and residual alike).")
@click.option("--quant", type=click.Choice(["float", "qat"]), default="float",
              show_default=True, help="STM numerics: float, or Loihi fixed point (QAT).")
@click.option("--modalities", default="i,mv,r", show_default=True,
              help="Comma-separated subset of i,mv,r (ablations, e.g. 'i').")
@click.option("--fold", type=click.IntRange(1, 3), default=1, show_default=True)
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True,
              help="DataLoader worker processes per training process.")
@click.option("--seed", type=int, default=0, show_default=True)
def train(data, run_dir, variant, epochs, resume, batch_size, lr, weight_decay, segments,
          size, quant, modalities, fold, workers, seed):
    """Train the hybrid model on DATA (a dataset folder or a `hybrid prepare` cache).

    Multi-process: `torchrun --nproc_per_node=N -m hybrid train ...` (gloo on CPU,
    nccl on GPU); the batch size is per process.
    """
    from hybrid.checkpoint import CheckpointError
    from hybrid.locking import LockedError
    from hybrid.model import HybridConfig
    from hybrid.train import DivergedError, TrainConfig
    from hybrid.train import train as run_train

    mods = tuple(m.strip() for m in modalities.split(",") if m.strip())
    if not mods or set(mods) - {"i", "mv", "r"}:
        raise click.BadParameter(f"must be a subset of i,mv,r, got {modalities!r}",
                                 param_hint="--modalities")
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                       workers=workers, seed=seed, fold=fold)
    train_ds, classes = _open(data, "train", segments, True, size, fold, seed)
    val_ds, _ = _open(data, "test", segments, False, size, fold, seed)
    mcfg = HybridConfig(variant=variant, num_classes=len(classes), segments=segments,
                        size=(size, size), quant=quant, modalities=mods)
    click.echo(f"{len(train_ds)} training and {len(val_ds)} held-out videos, "
               f"{len(classes)} classes", err=True)
    try:
        _, last = run_train((train_ds, val_ds), classes, run_dir, mcfg, tcfg, resume=resume,
                         progress=progress_bar, echo=lambda m: click.echo(m, err=True))
    except (CheckpointError, FileExistsError, LockedError, DivergedError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # a run folder that cannot be written (read-only, not a folder)
        raise click.ClickException(f"{run_dir}: cannot write the run ({exc})") from exc
    if last:
        click.echo(json.dumps(last))


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("data", type=click.Path(exists=True))
@click.option("--views", callback=_views, default="3x1", show_default=True,
              help="SEGMENTSxCROPS; segments a multiple of the model's.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--fold", type=click.IntRange(1, 3), default=1, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Confusion-matrix PNG [default: confusion.png beside the checkpoint].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def evaluate(checkpoint, data, views, split, fold, plot, as_json):
    """Multi-view evaluation of CHECKPOINT on DATA: top-1, top-5, per-class accuracy and
    a confusion-matrix plot."""
    from hybrid.checkpoint import CheckpointError
    from hybrid.evaluate import evaluate as run_eval
    from hybrid.evaluate import load_model, plot_confusion

    try:
        model, classes, _ = load_model(checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    if plot:  # an explicit --plot: its folder is made now, before a long evaluation
        try:
            Path(plot).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create its folder ({exc})",
                                     param_hint="--plot") from exc
    s, c = views
    if s % model.cfg.segments:
        raise click.BadParameter(f"{s} segments is not a multiple of the model's "
                                 f"{model.cfg.segments}", param_hint="--views")
    ds, data_classes = _open(data, split, s, False, _eval_crop(model.cfg.size[0], c), fold, 0)
    if data_classes != classes:
        raise click.ClickException(f"{data} has classes {data_classes[:4]}... but "
                                   f"{checkpoint} was trained on {classes[:4]}...")
    res = run_eval(model, ds, classes, n_crops=c, progress=progress_bar)
    res["views"] = f"{s}x{c}"
    asked, plot = plot, Path(plot) if plot else Path(checkpoint).with_name("confusion.png")
    try:  # a plot that cannot be written must not lose the evaluation
        plot_confusion(res, plot)
        plot_error = None
    except OSError as exc:
        plot, plot_error = None, f"could not write the confusion matrix: {exc}"
    if as_json:
        click.echo(json.dumps({k: v for k, v in res.items() if k != "confusion"} |
                              {"confusion": res["confusion"],
                               "plot": plot and str(plot)}, indent=2))
    else:
        for msg in res["skipped"]:
            click.echo(f"skipped: {msg}", err=True)
        click.echo(f"{res['videos']} videos, views {s}x{c}: top-1 {res['top1']:.4f}, "
                   f"top-5 {res['top5']:.4f}"
                   + (f"; confusion matrix in {plot}" if plot else ""))
        for name, acc in res["per_class"].items():
            click.echo(f"  {name:<24} {'-' if acc is None else f'{acc:.3f}'}")
    if plot_error and asked:  # the plot asked for by --plot: an error after the results
        raise click.ClickException(plot_error)
    if plot_error:  # the default plot beside a read-only checkpoint: a warning
        click.echo(f"warning: {plot_error} (choose a place with --plot)", err=True)


def _eval_crop(size: int, n_crops: int):
    """Dataset crop for evaluation: 1 crop -> the centre crop at the training size;
    3 or 5 -> the whole short-side square at size / 0.875, cut into crops later."""
    from hybrid.data.transforms import CropConfig

    if n_crops == 1:
        return CropConfig(size=size)
    return CropConfig(size=round(size / 0.875), eval_fraction=1.0)


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("video", type=click.Path())
@click.option("--top", type=click.IntRange(1), default=5, show_default=True)
@click.option("--segments", type=click.IntRange(1), default=None,
              help="Segments to sample [default: the model's].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def predict(checkpoint, video, top, segments, as_json):
    """Class names of VIDEO with probabilities, from CHECKPOINT."""
    from hybrid.checkpoint import CheckpointError
    from hybrid.data.dataset import UNREADABLE, CompressedVideoDataset
    from hybrid.evaluate import load_model, predict_scores

    try:
        model, classes, _ = load_model(checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    s = segments or model.cfg.segments
    if s % model.cfg.segments:
        raise click.BadParameter(f"must be a multiple of the model's {model.cfg.segments}",
                                 param_hint="--segments")
    path = Path(video)
    ds = CompressedVideoDataset(path.parent, [(path.name, 0)], s, train=False,
                                crop=model.cfg.size[0])
    try:
        sample = ds[0]
    except UNREADABLE as exc:
        raise click.ClickException(str(exc)) from exc
    p = predict_scores(model, sample)
    k = min(top, len(classes))
    vals, idx = p.topk(k)
    ranked = [{"class": classes[i], "probability": float(v)} for v, i in zip(vals, idx)]
    if as_json:
        click.echo(json.dumps({"video": str(path), "top": ranked}, indent=2))
    else:
        for r in ranked:
            click.echo(f"{r['probability']:.4f}  {r['class']}")
