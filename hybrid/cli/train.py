"""``hybrid train``, ``hybrid eval`` and ``hybrid predict``."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click

from hybrid.cli.options import (
    PAPER,
    apply_preset,
    given,
    given_conflicts,
    model_config,
    model_options,
    paper,
    preset_option,
)
from hybrid.cli.types import VIDEO_SIZE, FiniteFloatRange

# = hybrid.video.transcode.DEFAULT_SIZE, prepare's (not imported: keeps --help instant;
# tests/test_data.py checks they agree)
DEFAULT_VIDEO_SIZE = (340, 256)


VIEWS_HELP = ("SEGMENTSxCROPS. SEGMENTS must be a multiple of the segments the model was "
              "trained with (--segments of train, e.g. 3 allows 3, 6, 9, ...): the video is "
              "cut into SEGMENTS uniform segments, read as SEGMENTS / model-segments "
              "interleaved clips. CROPS is 1 (centre), 3 (start, centre, end of the longer "
              "side) or 5 (four corners and centre).")


def progress_bar(it, label):
    """click progress bar on stderr for training and evaluation loops."""
    return click.progressbar(it, label=label, file=click.get_text_stream("stderr"),
                             show_pos=True)


def _views(ctx, param, value):
    if value is None or isinstance(value, tuple):  # a preset's value
        return value
    try:
        s, c = (int(v) for v in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"expected SEGMENTSxCROPS like 8x1, got {value!r}") from None
    if s < 1 or c not in (1, 3, 5):
        raise click.BadParameter(f"segments must be >= 1 and crops 1, 3 or 5, got {value}")
    return s, c


def _steps(ctx, param, value):
    if value is None or isinstance(value, tuple):
        return value
    try:
        steps = tuple(int(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter(f"expected epochs like 5,10,15, got {value!r}") from None
    if any(s < 1 for s in steps) or list(steps) != sorted(steps):
        raise click.BadParameter(f"epochs must be increasing and >= 1, got {value!r}")
    return steps


def _open(data: str, split: str, segments: int, train: bool, crop, fold: int, seed: int,
          video_size=DEFAULT_VIDEO_SIZE):
    """(dataset, classes) for a dataset folder or a `hybrid prepare` cache; user errors
    become ClickExceptions."""
    from hybrid.data.dataset import open_split
    from hybrid.data.splits import SplitError

    try:
        ds, classes = open_split(data, split, segments, train, crop, fold, seed,
                                 video_size=video_size)
    except (SplitError, OSError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    if not len(ds):
        raise click.ClickException(f"{data}: the {split} split of fold {fold} is empty")
    return ds, classes


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("-o", "--out", "run_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder: checkpoint.pt, metrics.csv, metrics.png.")
@preset_option
@model_options
@click.option("--video-size", type=VIDEO_SIZE, default=None,
              help="WIDTHxHEIGHT a dataset folder's videos are resized to [default: the "
                   "videos' own size (the most common one where they differ; with --resume "
                   "the run's), so small videos are not upscaled; a cache keeps the size it "
                   "was prepared at]." + paper("x".join(map(str, PAPER.video_size))))
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True,
              help="Training epochs (given with --resume: the new total, the lr "
                   "schedule recomputed for it from the resumed epoch on)." + paper(PAPER.epochs))
@click.option("--resume", is_flag=True,
              help="Continue the run in OUT with its settings; --epochs, --lr, --eps, "
                   "--weight-decay, --warmup-epochs, --lr-steps given apply from the resumed "
                   "epoch on (the lr schedule recomputed); --optimizer must be the run's.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True,
              help="Clips per step and per process.")
@click.option("--optimizer", type=click.Choice(["adamw", "adam"]), default="adamw",
              show_default=True,
              help="AdamW (decoupled weight decay) or Adam (L2 decay in the gradient, as "
                   "CoViAR)." + paper(PAPER.optimizer))
@click.option("--lr", type=FiniteFloatRange(0, min_open=True), default=1e-3, show_default=True,
              help="Peak learning rate." + paper(PAPER.lr))
@click.option("--eps", type=FiniteFloatRange(0, min_open=True), default=1e-8,
              show_default=True, help="Adam's epsilon." + paper(PAPER.eps))
@click.option("--weight-decay", type=FiniteFloatRange(0), default=1e-4, show_default=True,
              help="Weight decay of the weights." + paper(PAPER.weight_decay))
@click.option("--lr-steps", callback=_steps, default="", metavar="E1,E2,...",
              help="Step schedule: lr x 0.1 at each of these epochs [default: none, warm-up "
                   "+ cosine]." + paper(",".join(map(str, PAPER.lr_steps))))
@click.option("--stm-lr", type=FiniteFloatRange(0, min_open=True), default=1.0,
              show_default=True,
              help="Factor on --lr for the STMs' synapses, thresholds and leaks (their "
                   "weights start 10x SLAYER's init, so at 1 Adam moves them 10x less, "
                   "relatively, than the dense partition's; docs/benchmarks.md: STM "
                   "training diagnostics).")
@click.option("--warmup-epochs", type=click.IntRange(0), default=1, show_default=True,
              help="Linear warm-up epochs." + paper(PAPER.warmup_epochs))
@click.option("--quant", type=click.Choice(["float", "qat"]), default="float",
              show_default=True, help="STM numerics: float, or Loihi fixed point (QAT).")
@click.option("--fold", type=click.IntRange(1, 3), default=1, show_default=True,
              help="Split to train on (UCF-101 and HMDB-51 have 3).")
@click.option("--workers", type=click.IntRange(0), default=None,
              help="DataLoader worker processes per training process (0: load in the "
                   "training process) [default: the cores this process may use].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--init", "init_path", type=click.Path(dir_okay=False), default=None,
              help="Start from this checkpoint's weights and model config (its variant, "
                   "segments, size, modalities, ...; --quant applies; a model option given "
                   "that differs from it is an error), with a fresh optimiser: "
                   "e.g. fine-tune a float-trained model with --quant qat, or a `hybrid "
                   "pretrain` backbone (its classifier starts fresh).")
@click.pass_context
def train(ctx, data, run_dir, resume, quant, fold, workers, seed, init_path, **opts):
    """Train the hybrid model on DATA (a dataset folder or a `hybrid prepare` cache).

    The defaults are the demo's (tiny, CPU); `--preset paper` is the paper's UCF-101
    setting (docs/paper.md), any option beside it overriding its value.

    Multi-process: `torchrun --nproc_per_node=N -m hybrid train ...` (gloo on CPU,
    nccl on GPU); the batch size is per process.
    """
    from hybrid.locking import LockedError
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.train import DivergedError, TrainConfig
    from hybrid.training.train import train as run_train

    p = apply_preset(ctx, opts)
    tcfg = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"], lr=p["lr"],
                       optimizer=p["optimizer"], eps=p["eps"], weight_decay=p["weight_decay"],
                       lr_steps=p["lr_steps"], warmup_epochs=p["warmup_epochs"],
                       stm_lr=p["stm_lr"],
                       workers=len(os.sched_getaffinity(0)) if workers is None else workers,
                       seed=seed, fold=fold)
    segments, size, video_size = p["segments"], p["size"], p["video_size"]
    init = None
    if init_path is not None:  # its model config wins: data are opened to fit it
        init_cfg, init, init_classes = _init_from(init_path, quant, resume)
        segments, size = init_cfg.segments, init_cfg.size[0]
        if conflicts := given_conflicts(ctx, p, init_cfg):
            raise click.UsageError(f"--init {init_path} trains the checkpoint's model, but "
                                   f"{'; '.join(conflicts)}: drop those options, or train "
                                   "from scratch without --init")
    if resume and (run_cfg := _run_model(run_dir)) is not None:  # its model: data fit it
        segments, size = run_cfg.segments, run_cfg.size[0]
        if conflicts := given_conflicts(ctx, p, run_cfg):
            raise click.UsageError(f"--resume continues the model of {run_dir}, but "
                                   f"{'; '.join(conflicts)}: drop those options, or start a "
                                   "new run")
    if video_size is None:
        video_size = _default_video_size(data, fold, run_dir if resume else None)
    train_ds, classes = _open(data, "train", segments, True, size, fold, seed, video_size)
    val_ds, _ = _open(data, "test", segments, False, size, fold, seed, video_size)
    mcfg = model_config(p, len(classes), quant)
    if init is not None and init_classes is None:  # a `hybrid pretrain` backbone
        from hybrid.pretraining.pretrain import finetune_init

        try:
            init_cfg, init = finetune_init({"kind": "pretrain", "model": init,
                                            "model_config": init_cfg.to_dict()},
                                           len(classes), seed, quant)
        except CheckpointError as exc:
            raise click.ClickException(f"{init_path}: {exc}") from exc
    if init is not None:
        if init_classes is not None and init_classes != list(classes):
            raise click.ClickException(f"{init_path}: trained on classes {init_classes[:4]}"
                                       f"..., {data} has {list(classes)[:4]}...")
        mcfg = init_cfg
    click.echo(f"{len(train_ds)} training and {len(val_ds)} held-out videos, "
               f"{len(classes)} classes", err=True)
    try:
        _, last = run_train((train_ds, val_ds), classes, run_dir, mcfg, tcfg, resume=resume,
                         progress=progress_bar, echo=lambda m: click.echo(m, err=True),
                         init=init, given=given(ctx, opts))
    except (CheckpointError, FileExistsError, LockedError, DivergedError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:  # a run folder that cannot be written (read-only, not a folder)
        raise click.ClickException(f"{run_dir}: cannot write the run ({exc})") from exc
    if last:
        click.echo(json.dumps(last))


def _default_video_size(data: str, fold: int, run_dir: str | None) -> tuple[int, int]:
    """The size a folder's videos are read at when --video-size is not given: the run's
    (``--resume``, where its checkpoint records one), else the videos' own
    (:func:`hybrid.data.native.native_size`), said on stderr. A cache is read at its
    prepare size whatever this returns."""
    from hybrid.data.native import native_size
    from hybrid.data.sources import STORES, detect_layout, load_split
    from hybrid.data.splits import SplitError
    from hybrid.training import checkpoint
    from hybrid.training.train import CKPT_NAME

    if run_dir is not None and (Path(run_dir) / CKPT_NAME).is_file():
        try:
            recorded = checkpoint.load(Path(run_dir) / CKPT_NAME).get("video_size")
        except checkpoint.CheckpointError as exc:
            raise click.ClickException(str(exc)) from exc
        if recorded:
            return int(recorded[0]), int(recorded[1])
    try:
        if detect_layout(data) in STORES:  # read at their prepare size
            return DEFAULT_VIDEO_SIZE
        items, _ = load_split(data, "train", fold)
    except SplitError as exc:
        raise click.ClickException(str(exc)) from exc
    found = native_size(data, items)
    if found.size is None:
        click.echo(f"videos read at {'x'.join(map(str, DEFAULT_VIDEO_SIZE))} ("
                   f"{found.describe()}; --video-size to choose)", err=True)
        return DEFAULT_VIDEO_SIZE
    click.echo(f"videos read at {found.describe()} (--video-size to resize)", err=True)
    return found.size


def _run_model(run_dir: str):
    """The model config of run folder ``run_dir``'s checkpoint, None without one."""
    from pathlib import Path

    from hybrid.model import HybridConfig
    from hybrid.training import checkpoint
    from hybrid.training.train import CKPT_NAME

    path = Path(run_dir) / CKPT_NAME
    if not path.is_file():
        return None
    try:
        return HybridConfig.from_dict(checkpoint.load(path)["model_config"])
    except (checkpoint.CheckpointError, KeyError, ValueError, TypeError) as exc:
        raise click.ClickException(f"{path}: {exc}") from exc


def _init_from(path: str, quant: str, resume: bool):
    """(model config with ``quant``, state dict, classes) of ``--init`` checkpoint ``path``."""
    import dataclasses

    from hybrid.model import HybridConfig
    from hybrid.training import checkpoint

    if resume:
        raise click.UsageError("--init starts a new run; --resume continues one: pick one")
    try:
        ck = checkpoint.load(path)
        cfg = dataclasses.replace(HybridConfig.from_dict(ck["model_config"]), quant=quant)
    except (checkpoint.CheckpointError, ValueError, TypeError) as exc:
        raise click.ClickException(str(exc)) from exc
    if ck.get("kind") == "pretrain":  # no classes: the classifier starts fresh
        return cfg, ck["model"], None
    return cfg, ck["model"], list(ck["classes"])


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("data", type=click.Path(exists=True))
@preset_option
@click.option("--views", callback=_views, default="3x1", show_default=True,
              help=VIEWS_HELP + paper("x".join(map(str, PAPER.views))))
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--fold", type=click.Choice(["1", "2", "3", "all"]), default="1",
              show_default=True,
              help="Split to evaluate. 'all': every split DATA has, each with the model "
                   "trained on it (CHECKPOINT holds '{fold}', e.g. runs/split{fold}/"
                   "checkpoint.pt), and their mean, as the paper reports.")
@click.option("--video-size", type=VIDEO_SIZE, default=None,
              help="WIDTHxHEIGHT a dataset folder's videos are resized to [default: the size "
                   "the checkpoint's training videos were read at, where it records it, else "
                   f"{'x'.join(map(str, DEFAULT_VIDEO_SIZE))}]."
                   + paper("x".join(map(str, PAPER.video_size))))
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Confusion-matrix PNG [default: confusion.png beside the checkpoint].")
@click.option("--quant", type=click.Choice(["float", "qat"]), default=None,
              help="STM numerics: float, or Loihi fixed point emulated in torch (qat) "
                   "[default: the checkpoint's].")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def evaluate(ctx, checkpoint, data, split, fold, plot, quant, as_json, **opts):
    """Multi-view evaluation of CHECKPOINT on DATA: top-1, top-5, per-class accuracy and
    a confusion-matrix plot; with `--fold all`, each split and the mean over them."""
    from hybrid.data.sources import load_split
    from hybrid.data.splits import SplitError

    p = apply_preset(ctx, opts)
    if plot:  # an explicit --plot: its folder is made now, before a long evaluation
        try:
            Path(plot).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create its folder ({exc})",
                                     param_hint="--plot") from exc
    if fold == "all":
        if "{fold}" not in checkpoint:
            raise click.BadParameter("--fold all evaluates each split with the model trained "
                                     "on it: put {fold} in CHECKPOINT's path, e.g. "
                                     "runs/split{fold}/checkpoint.pt", param_hint="CHECKPOINT")
        folds = []
        for k in (1, 2, 3):
            try:
                load_split(data, split, k)
                folds.append(k)
            except SplitError:
                pass
    else:
        folds = [int(fold)]
    per_fold = {}
    for k in folds:
        ck = checkpoint.replace("{fold}", str(k))
        out = Path(plot) if plot else Path(ck).with_name("confusion.png")
        if plot and len(folds) > 1:
            out = out.with_name(f"{out.stem}_fold{k}{out.suffix}")
        per_fold[k] = _evaluate_one(ck, data, p["views"], split, k, p["video_size"], out,
                                    quant)
    if len(folds) == 1 and fold != "all":
        _report(per_fold[folds[0]], as_json)
        _plot_errors(per_fold, asked=bool(plot))
        return
    mean = {m: sum(r[m] for r in per_fold.values()) / len(per_fold) for m in ("top1", "top5")}
    if as_json:
        click.echo(json.dumps({"views": per_fold[folds[0]]["views"], "mean": mean,
                               "folds": {str(k): r for k, r in per_fold.items()}}, indent=2))
        return
    for k, r in per_fold.items():
        click.echo(f"fold {k}: {r['videos']} videos, top-1 {r['top1']:.4f}, "
                   f"top-5 {r['top5']:.4f} ({r['plot']})")
    click.echo(f"mean over {len(per_fold)} folds, views {per_fold[folds[0]]['views']}: "
               f"top-1 {mean['top1']:.4f}, top-5 {mean['top5']:.4f}")
    _plot_errors(per_fold, asked=bool(plot))


def _plot_errors(per_fold: dict, asked: bool) -> None:
    """After the results: a plot asked for by --plot that could not be written is an
    error; the default one beside a read-only checkpoint a warning."""
    errors = [r["plot_error"] for r in per_fold.values() if r.get("plot_error")]
    if errors and asked:
        raise click.ClickException("; ".join(errors))
    for e in errors:
        click.echo(f"warning: {e} (choose a place with --plot)", err=True)


def _evaluate_one(checkpoint: str, data: str, views: tuple[int, int], split: str, fold: int,
                  video_size, plot: Path, quant: str | None = None) -> dict:
    """Evaluate one checkpoint on one split of DATA; writes the confusion-matrix plot."""
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.evaluate import evaluate as run_eval
    from hybrid.training.evaluate import load_model, plot_confusion

    try:
        model, classes, ckpt = load_model(checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    trained = (ckpt.get("train_config") or {}).get("fold")
    if split == "test" and trained is not None and int(trained) != fold:
        raise click.ClickException(
            f"{checkpoint} was trained on split {trained}; the test videos of split {fold} "
            f"are training videos of split {trained}")
    video_size = video_size or tuple(ckpt.get("video_size") or DEFAULT_VIDEO_SIZE)
    s, c = views
    if s % model.cfg.segments:
        raise click.BadParameter(f"{s} segments is not a multiple of the model's "
                                 f"{model.cfg.segments}", param_hint="--views")
    ds, data_classes = _open(data, split, s, False, _eval_crop(model.cfg.size[0], c), fold, 0,
                             video_size)
    if data_classes != classes:
        raise click.ClickException(f"{data} has classes {data_classes[:4]}... but "
                                   f"{checkpoint} was trained on {classes[:4]}...")
    res = run_eval(model, ds, classes, n_crops=c, progress=progress_bar, quant=quant)
    res["views"], res["fold"] = f"{s}x{c}", fold
    try:  # a plot that cannot be written must not lose the evaluation
        plot_confusion(res, plot)
        res["plot"] = str(plot)
    except OSError as exc:
        res["plot"], res["plot_error"] = None, f"could not write the confusion matrix: {exc}"
    return res


def _report(res: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({k: v for k, v in res.items() if k != "confusion"} |
                              {"confusion": res["confusion"]}, indent=2))
        return
    for msg in res["skipped"]:
        click.echo(f"skipped: {msg}", err=True)
    click.echo(f"{res['videos']} videos, views {res['views']}, STMs {res['quant']}: "
               f"top-1 {res['top1']:.4f}, top-5 {res['top5']:.4f}"
               + (f"; confusion matrix in {res['plot']}" if res["plot"] else ""))
    for name, acc in res["per_class"].items():
        click.echo(f"  {name:<24} {'-' if acc is None else f'{acc:.3f}'}")


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
@click.option("--video-size", type=VIDEO_SIZE, default=None,
              help="WIDTHxHEIGHT the video is resized to [default: the size the "
                   "checkpoint's training videos were read at, where it records it, else "
                   f"{'x'.join(map(str, DEFAULT_VIDEO_SIZE))}]; a video already MPEG-4 GOP "
                   "12 at this size is read as it is.")
@click.option("--transcode/--no-transcode", default=True, show_default=True,
              help="Transcode a video that is not MPEG-4 Part 2 GOP 12 with I/P frames at "
                   "--video-size in process (temporary file, removed afterwards), or "
                   "refuse it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def predict(checkpoint, video, top, segments, video_size, transcode, as_json):
    """Class names of VIDEO (any video FFmpeg reads) with probabilities, from CHECKPOINT."""
    from hybrid.data.dataset import UNREADABLE, CompressedVideoDataset
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.evaluate import load_model, predict_scores
    from hybrid.video.transcode import as_mpeg4

    try:
        model, classes, ckpt = load_model(checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    video_size = video_size or tuple(ckpt.get("video_size") or DEFAULT_VIDEO_SIZE)
    s = segments or model.cfg.segments
    if s % model.cfg.segments:
        raise click.BadParameter(f"must be a multiple of the model's {model.cfg.segments}",
                                 param_hint="--segments")
    try:
        with as_mpeg4(video, video_size, allow_transcode=transcode) as path:
            ds = CompressedVideoDataset.one_video(path, s, crop=model.cfg.size[0],
                                                  video_size=video_size)
            sample = ds[0]
    except UNREADABLE as exc:
        raise click.ClickException(str(exc)) from exc
    p = predict_scores(model, sample)
    k = min(top, len(classes))
    vals, idx = p.topk(k)
    ranked = [{"class": classes[i], "probability": float(v)} for v, i in zip(vals, idx)]
    if as_json:
        click.echo(json.dumps({"video": str(video), "top": ranked}, indent=2))
    else:
        for r in ranked:
            click.echo(f"{r['probability']:.4f}  {r['class']}")
