"""``hybrid train``, ``hybrid eval`` and ``hybrid predict``."""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import click

from hybrid.cli.common import (
    DEFAULT_VIDEO_SIZE,
    VIEWS_HELP,
    fold_option,
    json_option,
    progress_bar,
    user_errors,
    video_size_option,
    views_option,
)
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
from hybrid.cli.types import LEARNING_RATE, FiniteFloatRange


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


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("-o", "--out", "run_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder: checkpoint.pt, metrics.csv, metrics.png.")
@preset_option
@model_options
@video_size_option("WIDTHxHEIGHT a dataset folder's videos are resized to [default: the "
                   "videos' own size (the most common one where they differ; with --resume "
                   "the run's), so small videos are not upscaled; a cache keeps the size it "
                   "was prepared at]." + paper("x".join(map(str, PAPER.video_size))),
                   default=None)
@click.option("--epochs", type=click.IntRange(1), default=30, show_default=True,
              help="Training epochs (given with --resume: the new total, the lr "
                   "schedule recomputed for it from the resumed epoch on)." + paper(PAPER.epochs))
@click.option("--resume", is_flag=True,
              help="Continue the run in OUT with its settings; --epochs, --lr, --eps, "
                   "--weight-decay, --warmup-epochs, --lr-steps given apply from the resumed "
                   "epoch on (the lr schedule recomputed); --optimizer must be the run's.")
@click.option("--batch-size", type=click.IntRange(1), default=None,
              help="Clips per step and per process [default: 8, or on a small training set "
                   "the largest size giving 32 steps an epoch, at least 2 (said on stderr); "
                   "with --resume the run's].")
@click.option("--optimizer", type=click.Choice(["adamw", "adam"]), default="adamw",
              show_default=True,
              help="AdamW (decoupled weight decay) or Adam (L2 decay in the gradient, as "
                   "CoViAR)." + paper(PAPER.optimizer))
@click.option("--lr", type=LEARNING_RATE, default=1e-3, show_default=True,
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
@fold_option("Split to train on (UCF-101 and HMDB-51 have 3).")
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
    from hybrid.data.dataset import open_split
    from hybrid.data.splits import SplitError
    from hybrid.locking import LockedError
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.runs import (
        DEFAULT_BATCH,
        default_batch_size,
        default_video_size,
        init_from,
        run_model_config,
    )
    from hybrid.training.train import DivergedError, TrainConfig
    from hybrid.training.train import train as run_train

    p = apply_preset(ctx, opts)
    tcfg = TrainConfig(epochs=p["epochs"], batch_size=p["batch_size"] or DEFAULT_BATCH,
                       lr=p["lr"],
                       optimizer=p["optimizer"], eps=p["eps"], weight_decay=p["weight_decay"],
                       lr_steps=p["lr_steps"], warmup_epochs=p["warmup_epochs"],
                       stm_lr=p["stm_lr"],
                       workers=len(os.sched_getaffinity(0)) if workers is None else workers,
                       seed=seed, fold=fold)
    segments, size, video_size = p["segments"], p["size"], p["video_size"]
    init = init_classes = None
    if init_path is not None:  # its model config wins: data are opened to fit it
        if resume:
            raise click.UsageError("--init starts a new run; --resume continues one: pick one")
        with user_errors(CheckpointError):
            init_cfg, init, init_classes = init_from(init_path, quant)
        segments, size = init_cfg.segments, init_cfg.size[0]
        if conflicts := given_conflicts(ctx, p, init_cfg):
            raise click.UsageError(f"--init {init_path} trains the checkpoint's model, but "
                                   f"{'; '.join(conflicts)}: drop those options, or train "
                                   "from scratch without --init")
    with user_errors(CheckpointError):
        run_cfg = run_model_config(run_dir) if resume else None
    if run_cfg is not None:  # the run's model: data are opened to fit it
        segments, size = run_cfg.segments, run_cfg.size[0]
        if conflicts := given_conflicts(ctx, p, run_cfg):
            raise click.UsageError(f"--resume continues the model of {run_dir}, but "
                                   f"{'; '.join(conflicts)}: drop those options, or start a "
                                   "new run")
    with user_errors(SplitError, CheckpointError):
        if video_size is None:
            video_size, note = default_video_size(data, fold, run_dir if resume else None)
            if note:
                click.echo(note, err=True)
        train_ds, classes = open_split(data, "train", segments, True, size, fold, seed,
                                       video_size=video_size)
        val_ds, _ = open_split(data, "test", segments, False, size, fold, seed,
                               video_size=video_size)
    if p["batch_size"] is None and run_cfg is None:  # a resumed run keeps its own
        batch, note = default_batch_size(len(train_ds), int(os.environ.get("WORLD_SIZE", 1)))
        tcfg = dataclasses.replace(tcfg, batch_size=batch)
        if note:
            click.echo(note, err=True)
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


@click.command("eval")
@click.argument("checkpoint", type=click.Path())
@click.argument("data", type=click.Path(exists=True))
@preset_option
@views_option(help=VIEWS_HELP + paper("x".join(map(str, PAPER.views))))
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@click.option("--fold", type=click.Choice(["1", "2", "3", "all"]), default="1",
              show_default=True,
              help="Split to evaluate. 'all': every split DATA has, each with the model "
                   "trained on it (CHECKPOINT holds '{fold}', e.g. runs/split{fold}/"
                   "checkpoint.pt), and their mean, as the paper reports.")
@video_size_option("WIDTHxHEIGHT a dataset folder's videos are resized to [default: the size "
                   "the checkpoint's training videos were read at, where it records it, else "
                   f"{'x'.join(map(str, DEFAULT_VIDEO_SIZE))}]."
                   + paper("x".join(map(str, PAPER.video_size))), default=None)
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Confusion-matrix PNG [default: confusion.png beside the checkpoint].")
@click.option("--quant", type=click.Choice(["float", "qat"]), default=None,
              help="STM numerics: float, or Loihi fixed point emulated in torch (qat) "
                   "[default: the checkpoint's].")
@json_option()
@click.pass_context
def evaluate(ctx, checkpoint, data, split, fold, plot, quant, as_json, **opts):
    """Multi-view evaluation of CHECKPOINT on DATA: top-1, top-5, per-class accuracy and
    a confusion-matrix plot; with `--fold all`, each split and the mean over them."""
    from hybrid.data.splits import SplitError
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.evaluate import render
    from hybrid.training.runs import (
        eval_folds,
        evaluate_checkpoint,
        over_folds,
        plot_path,
        render_folds,
    )

    p = apply_preset(ctx, opts)
    if plot:  # an explicit --plot: its folder is made now, before a long evaluation
        try:
            Path(plot).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create its folder ({exc})",
                                     param_hint="--plot") from exc
    try:
        folds = eval_folds(data, split, fold, checkpoint)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="CHECKPOINT") from exc
    per_fold = {}
    for k in folds:
        ck = checkpoint.replace("{fold}", str(k))
        with user_errors(CheckpointError, SplitError):
            per_fold[k] = evaluate_checkpoint(ck, data, p["views"], split, k,
                                              p["video_size"],
                                              plot_path(ck, plot, k, len(folds)), quant,
                                              progress=progress_bar)
    if len(folds) == 1 and fold != "all":
        res = per_fold[folds[0]]
        if as_json:
            click.echo(json.dumps({k: v for k, v in res.items() if k != "confusion"} |
                                  {"confusion": res["confusion"]}, indent=2))
        else:
            for msg in res["skipped"]:
                click.echo(f"skipped: {msg}", err=True)
            click.echo("\n".join(render(res)))
    else:
        rep = over_folds(per_fold)
        click.echo(json.dumps(rep, indent=2) if as_json else "\n".join(render_folds(rep)))
    _plot_errors(per_fold, asked=bool(plot))


def _plot_errors(per_fold: dict, asked: bool) -> None:
    """After the results: a plot asked for by --plot that could not be written is an
    error; the default one beside a read-only checkpoint a warning."""
    errors = [r["plot_error"] for r in per_fold.values() if r.get("plot_error")]
    if errors and asked:
        raise click.ClickException("; ".join(errors))
    for e in errors:
        click.echo(f"warning: {e} (choose a place with --plot)", err=True)


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("video", type=click.Path())
@click.option("--top", type=click.IntRange(1), default=5, show_default=True)
@click.option("--segments", type=click.IntRange(1), default=None,
              help="Segments to sample [default: the model's].")
@video_size_option("WIDTHxHEIGHT the video is resized to [default: the size the "
                   "checkpoint's training videos were read at, where it records it, else "
                   f"{'x'.join(map(str, DEFAULT_VIDEO_SIZE))}]; a video already MPEG-4 GOP "
                   "12 at this size is read as it is.", default=None)
@click.option("--transcode/--no-transcode", default=True, show_default=True,
              help="Transcode a video that is not MPEG-4 Part 2 GOP 12 with I/P frames at "
                   "--video-size in process (temporary file, removed afterwards), or "
                   "refuse it.")
@json_option()
def predict(checkpoint, video, top, segments, video_size, transcode, as_json):
    """Class names of VIDEO (any video FFmpeg reads) with probabilities, from CHECKPOINT."""
    from hybrid.data.dataset import UNREADABLE
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.evaluate import load_model, predict_scores, read_video

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
        sample = read_video(video, s, model.cfg.size[0], video_size, transcode)
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
