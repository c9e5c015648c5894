"""``hybrid pretrain``: self-supervised pretraining on IMRNet's pretext tasks."""
from __future__ import annotations

import json

import click

from hybrid.cli.common import fold_option, progress_bar, user_errors, video_size_option
from hybrid.cli.options import given, given_conflicts, model_config, model_options
from hybrid.cli.types import LEARNING_RATE, FiniteFloatRange

# = hybrid.pretraining.tasks.TASKS (not imported: a fast --help)
TASKS = ("pmsp", "ctp", "ctp-binary")


def _tasks(ctx, param, value):
    tasks = tuple(t.strip() for t in value.split(",") if t.strip())
    bad = set(tasks) - set(TASKS)
    if not tasks or bad:
        raise click.BadParameter(f"expected a comma-separated subset of {','.join(TASKS)}, "
                                 f"got {value!r}")
    if {"ctp", "ctp-binary"} <= set(tasks):
        raise click.BadParameter("pick one of ctp (three types) and ctp-binary")
    return tasks


def _levels(ctx, param, value):
    try:
        levels = tuple(tuple(int(v) for v in part.lower().split("x"))
                       for part in value.split(",") if part.strip())
    except ValueError:
        levels = ()
    if not levels or any(len(lv) != 2 or lv[0] < 2 or lv[1] < 1 for lv in levels):
        raise click.BadParameter(f"expected GRIDxCHUNKS,... like 2x3,4x1 (grid >= 2, "
                                 f"chunks >= 1), got {value!r}")
    return levels


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("-o", "--out", "run_dir", type=click.Path(file_okay=False), required=True,
              help="Run folder: checkpoint.pt (the backbone, for `hybrid train --init`), "
                   "metrics.csv.")
@click.option("--tasks", callback=_tasks, default="pmsp,ctp", show_default=True,
              help="Pretext tasks: pmsp (pyramidal motion statistics), ctp (I-/P-frame "
                   "correspondence: aligned, shifted, swapped) or ctp-binary (aligned or not).")
@click.option("--levels", callback=_levels, default="2x3,4x1", show_default=True,
              help="PMSP pyramid levels GRIDxCHUNKS: a GRIDxGRID spatial grid over CHUNKS "
                   "temporal chunks of the clip's P-frames.")
@click.option("--hidden", type=click.IntRange(1), default=64, show_default=True,
              help="Hidden width of the 2-layer MLP heads.")
@model_options
@video_size_option("WIDTHxHEIGHT a dataset folder's videos are resized to [default: the videos' "
                   "own size, or the run's with --resume; as `train`].", default=None)
@click.option("--epochs", type=click.IntRange(1), default=10, show_default=True,
              help="Pretraining epochs (given with --resume: the new total, the lr "
                   "schedule recomputed for it from the resumed epoch on).")
@click.option("--resume", is_flag=True, help="Continue the run in --out.")
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True)
@click.option("--lr", type=LEARNING_RATE, default=1e-3, show_default=True)
@click.option("--weight-decay", type=FiniteFloatRange(0), default=1e-4, show_default=True)
@click.option("--warmup-epochs", type=click.IntRange(0), default=1, show_default=True)
@fold_option("Split: its training videos are pretrained on, its test videos give "
            "the held-out pretext accuracies (their labels are not read).")
@click.option("--workers", type=click.IntRange(0), default=0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def pretrain(data, run_dir, tasks, levels, hidden, video_size, epochs, resume, batch_size,
             lr, weight_decay, warmup_epochs, fold, workers, seed, **opts):
    """Pretrain the hybrid model (STMs + dense encoder) on DATA without labels.

    Prints the pretext accuracies per epoch on the training clips and on held-out ones,
    beside chance. Fine-tune with `hybrid train DATA -o RUN2 --init RUN/checkpoint.pt`
    (the model options then come from the checkpoint).
    """
    from hybrid.data.dataset import open_split
    from hybrid.data.splits import SplitError
    from hybrid.locking import LockedError
    from hybrid.pretraining.pretrain import PretrainConfig
    from hybrid.pretraining.pretrain import pretrain as run_pretrain
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.runs import default_video_size
    from hybrid.training.train import DivergedError, TrainConfig, resumed_config

    mcfg = model_config(opts, 1, "float")  # no classes: the classifier is dropped
    try:
        pcfg = PretrainConfig(tasks=tasks, levels=levels, hidden=hidden)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    tcfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=lr,
                       weight_decay=weight_decay, warmup_epochs=warmup_epochs,
                       workers=workers, seed=seed, fold=fold)
    if resume:  # the checkpoint's geometry opens the data
        from hybrid.model import HybridConfig
        from hybrid.training import checkpoint
        from hybrid.training.train import CKPT_NAME

        try:
            ck = checkpoint.load(f"{run_dir}/{CKPT_NAME}")
        except CheckpointError as exc:
            raise click.ClickException(str(exc)) from exc
        mcfg = HybridConfig.from_dict(ck["model_config"])
        ctx = click.get_current_context()
        if conflicts := given_conflicts(ctx, opts, mcfg):
            raise click.UsageError(f"--resume continues the model of {run_dir}, but "
                                   f"{'; '.join(conflicts)}: drop those options, or start a "
                                   "new run")
        tcfg = resumed_config(tcfg, ck, given(click.get_current_context(), {
            "epochs": epochs, "lr": lr, "weight_decay": weight_decay,
            "warmup_epochs": warmup_epochs}))
    with user_errors(SplitError, CheckpointError):
        if video_size is None:
            video_size, note = default_video_size(data, fold, run_dir if resume else None)
            if note:
                click.echo(note, err=True)
        train_ds, _ = open_split(data, "train", mcfg.segments, True, mcfg.size[0], fold,
                                 seed, video_size=video_size)
        val_ds, _ = open_split(data, "test", mcfg.segments, False, mcfg.size[0], fold, seed,
                               video_size=video_size)
    click.echo(f"{len(train_ds)} training and {len(val_ds)} held-out videos (labels unused)",
               err=True)
    try:
        _, last = run_pretrain((train_ds, val_ds), run_dir, mcfg, pcfg, tcfg, resume=resume,
                               progress=progress_bar, echo=lambda m: click.echo(m, err=True))
    except (CheckpointError, FileExistsError, LockedError, DivergedError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    except OSError as exc:
        raise click.ClickException(f"{run_dir}: cannot write the run ({exc})") from exc
    if last:
        click.echo(json.dumps(last))
