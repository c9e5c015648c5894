"""Training of the composed hybrid model: TSN-style segments, AdamW (decoupled weight
decay) or Adam (coupled, as CoViAR), a warm-up + cosine or a step learning-rate schedule,
atomic per-epoch checkpoints, ``--resume``,
a metrics CSV and plot, and DistributedDataParallel when started by ``torchrun``.

Under ``torchrun`` every rank runs :func:`train`; rank 0 alone writes files. The backend
is nccl on GPUs and gloo on CPUs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler

from deploy.artifact.inputs import decode
from hybrid import locking
from hybrid.data.loader import Loader, SeededSampler, SkipBadVideos, loader_options
from hybrid.model import HybridConfig, HybridModel
from hybrid.training import checkpoint
from hybrid.training.metrics import METRICS_NAME, plot_metrics, read_metrics, write_metrics

log = logging.getLogger(__name__)
CKPT_NAME = "checkpoint.pt"
LOCK_NAME = ".lock"  # held while a run trains (hybrid.locking)


@dataclass
class TrainConfig:
    epochs: int = 30             # total epochs (a resumed run continues up to this)
    batch_size: int = 8          # clips per step and per process
    lr: float = 1e-3             # peak learning rate
    optimizer: str = "adamw"     # "adamw" (decoupled weight decay) | "adam" (coupled, CoViAR)
    eps: float = 1e-8            # Adam's epsilon (CoViAR and the paper: 1e-3)
    weight_decay: float = 1e-4   # weight decay of weights (not biases, norms, neuron params)
    lr_steps: tuple[int, ...] = ()  # step decay x lr_decay at these epochs; () = cosine
    lr_decay: float = 0.1        # factor of each step of the step schedule
    warmup_epochs: int = 1       # linear warm-up before the cosine or step schedule
    grad_clip: float = 5.0       # max global grad norm (0 = off)
    # factor on lr for the STMs' parameters (synapses, thresholds, leaks): their weights
    # start weight_scale (10) times SLAYER's init, so Adam's scale-free steps move them
    # that many times less, relatively, than the dense partition's
    stm_lr: float = 1.0
    workers: int = 0             # DataLoader worker processes per training process
    seed: int = 0                # seeds python, numpy, torch and the samplers
    fold: int = 1                # split file number (trainlist0N / testlist0N)


class DivergedError(RuntimeError):
    """A non-finite loss: training stopped before saving the epoch (the message says
    which step, and which checkpoint was kept)."""


class Dist:
    """What this process knows of the torchrun world (a single process when not under it)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1
        if torch.cuda.is_available():
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu")
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, *values: float) -> list[float]:
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        if self.enabled:
            dist.all_reduce(t)
        return t.tolist()

    def barrier(self):
        if self.enabled:
            dist.barrier()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def lr_factor(epoch: int, cfg: TrainConfig) -> float:
    """Multiplier of the peak lr at ``epoch``: linear warm-up, then half a cosine, or
    with ``cfg.lr_steps`` CoViAR's step decay ``lr_decay ** (steps passed)``."""
    if epoch < cfg.warmup_epochs:
        return (epoch + 1) / (cfg.warmup_epochs + 1)
    if cfg.lr_steps:
        return cfg.lr_decay ** sum(epoch >= s for s in cfg.lr_steps)
    span = max(1, cfg.epochs - cfg.warmup_epochs)
    return 0.5 * (1 + math.cos(math.pi * (epoch - cfg.warmup_epochs) / span))


def make_optimizer(model: nn.Module, cfg: TrainConfig):
    """AdamW (decoupled weight decay) or Adam (L2 decay added to the gradient, as
    CoViAR's ``torch.optim.Adam(weight_decay=1e-4, eps=1e-3)``), decaying weights only
    (not biases, norms, neuron thresholds and leaks, which have their own valid ranges),
    and the lr schedule of :func:`lr_factor`."""
    if cfg.optimizer not in ("adam", "adamw"):
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {cfg.optimizer!r}")
    if not cfg.stm_lr > 0:
        raise ValueError(f"stm_lr must be > 0, got {cfg.stm_lr}")
    # (lr factor, decays) -> parameters; the STMs' get a group of their own only when
    # their lr differs, so a run's groups (and its checkpoints) are the same otherwise
    groups: dict[tuple[float, bool], list] = {}
    for name, p in model.named_parameters():
        scale = cfg.stm_lr if name.startswith(("stm_mv.", "stm_res.")) else 1.0
        groups.setdefault((scale, p.ndim >= 2), []).append(p)
    order = sorted(groups, key=lambda k: (k[0] != 1.0, not k[1]))  # dense decay first
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    opt = cls([{"params": groups[k], "weight_decay": cfg.weight_decay if k[1] else 0.0,
                "lr": cfg.lr * k[0], "lr_scale": k[0], "decays": k[1]} for k in order],
              lr=cfg.lr, eps=cfg.eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: lr_factor(e, cfg))
    return opt, sched


#: Training settings that ``--resume`` keeps from the run unless given again.
RESUMABLE = ("epochs", "lr", "eps", "weight_decay", "warmup_epochs", "lr_steps", "lr_decay",
             "batch_size")


def _plain(v):
    return tuple(v) if isinstance(v, (list, tuple)) else v


def resumed_config(cfg: TrainConfig, state: dict, given: set[str]) -> TrainConfig:
    """``cfg`` with each :data:`RESUMABLE` setting and the optimiser that is not in
    ``given`` (the options a user set) taken from the run's checkpoint ``state``: a
    resumed run keeps its own settings unless told otherwise."""
    was = state.get("train_config") or {}
    return dataclasses.replace(cfg, **{k: _plain(was[k])
                                       for k in (*RESUMABLE, "optimizer", "stm_lr")
                                       if k in was and k not in given})


def resume_schedule(optimizer, scheduler, state: dict, cfg: TrainConfig, start: int,
                    echo: Callable[[str], None] = log.info) -> None:
    """Load the optimiser and schedule of checkpoint ``state`` (``start`` epochs done); the
    epochs still to run follow ``cfg``: its :data:`RESUMABLE` settings apply from epoch
    ``start`` on (another ``epochs`` recomputes the cosine for the new total, another
    ``lr`` is the new peak; the epochs done keep the lr they had), and are echoed when they
    differ from the run's. With the run's own settings the lr, eps and weight decay are
    the ones saved, so a resumed run repeats an uninterrupted one. Another optimiser is
    refused (CheckpointError): its state is the run's optimiser's."""
    was = state.get("train_config") or {}
    if was.get("optimizer", cfg.optimizer) != cfg.optimizer:
        raise checkpoint.CheckpointError(
            f"the run was trained with --optimizer {was['optimizer']}, not {cfg.optimizer}: "
            f"resume it with --optimizer {was['optimizer']}, or start a new run")
    if was.get("stm_lr", 1.0) != cfg.stm_lr:
        raise checkpoint.CheckpointError(
            f"the run was trained with --stm-lr {was.get('stm_lr', 1.0)}, not {cfg.stm_lr}: "
            "resume it with its own, or start a new run")
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    # make_optimizer's groups (a checkpoint from before lr_scale: decaying, then not)
    scales = [g.get("lr_scale", 1.0) for g in optimizer.param_groups]
    scheduler.base_lrs = [cfg.lr * k for k in scales]
    for i, (group, k) in enumerate(zip(optimizer.param_groups, scales)):
        decay = cfg.weight_decay if group.get("decays", i == 0) else 0.0
        group.update(lr=cfg.lr * k * lr_factor(start, cfg), eps=cfg.eps, weight_decay=decay)
    changed = [f"{k} {_plain(was[k])} -> {_plain(getattr(cfg, k))}" for k in RESUMABLE
               if k in was and _plain(was[k]) != _plain(getattr(cfg, k))]
    if changed:
        echo(f"resumed with other settings than the run's, applied from epoch {start + 1} on "
             f"(the lr schedule recomputed for them; lr now "
             f"{optimizer.param_groups[0]['lr']:.3g}): {', '.join(changed)}")


def _progress_none(it, label):
    return contextlib.nullcontext(it)


def readable(batch: dict, reported: set[str]) -> bool:
    """Report (once each) the videos of ``batch`` that could not be read (its
    ``skipped`` entry, removed); False when none of the batch could be read."""
    for msg in batch.pop("skipped", []):
        if msg not in reported:
            reported.add(msg)
            log.warning("skipping a video that cannot be read: %s", msg)
    return "iframe" in batch


def step_on(loss: torch.Tensor, model: nn.Module, optimizer, grad_clip: float,
            where: str) -> None:
    """Raise DivergedError naming ``where`` on a non-finite loss; else, when training
    (``optimizer`` given), one optimiser step with the gradient clipped to ``grad_clip``."""
    if not torch.isfinite(loss):
        raise DivergedError(f"{where}: the loss is {loss.item()} (learning rate too high?)")
    if optimizer is not None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()


def run_epoch(model, loader, device, optimizer=None, grad_clip: float = 0.0,
              progress: Callable = _progress_none, label: str = "",
              reported: set[str] | None = None) -> tuple[float, int, int]:
    """One pass; trains when ``optimizer`` is given. Returns (summed loss, correct, count).
    A video that cannot be read is reported once (its message kept in ``reported``)."""
    train = optimizer is not None
    reported = set() if reported is None else reported
    model.train(train)
    loss_sum, correct, count = 0.0, 0, 0
    with torch.set_grad_enabled(train), progress(loader, label) as bar:
        for step, batch in enumerate(bar, 1):
            if not readable(batch, reported):
                continue
            b = decode(batch, device)  # uint8 codes -> normalised floats, on the device
            logits = model(b["iframe"], b["mv"], b["residual"])  # (B, K)
            loss = nn.functional.cross_entropy(logits, b["label"])
            step_on(loss, model, optimizer, grad_clip, f"{label or 'pass'}, batch {step}")
            n = b["label"].numel()
            loss_sum += loss.item() * n
            correct += int((logits.argmax(1) == b["label"]).sum())
            count += n
    return loss_sum, correct, count


def train(datasets, classes: list[str], run_dir: str | Path, model_cfg: HybridConfig,
          cfg: TrainConfig, resume: bool = False, progress: Callable = _progress_none,
          echo: Callable[[str], None] = log.info,
          on_epoch_end: Callable | None = None,
          init: dict | None = None, given: set[str] | None = None) -> tuple[HybridModel, dict]:
    """Train ``HybridModel(model_cfg)`` on ``datasets = (train_ds, val_ds)``.

    Writes ``run_dir/checkpoint.pt`` (atomically, every epoch), ``metrics.csv`` and, at the
    end, ``metrics.png``. With ``resume`` the run continues from its checkpoint (its
    model config wins over ``model_cfg``; ``cfg.epochs`` may extend the run). Returns the
    last epoch's metrics. ``on_epoch_end(epoch)`` is called after each saved epoch.
    ``init``: a model state dict to start from (fine-tuning, e.g. a float-trained model
    quantisation-aware); the optimiser and schedule start fresh. ``given``: with
    ``resume``, the settings of ``cfg`` the user set (:func:`resumed_config`: the others
    are the run's); None: all of ``cfg`` applies.
    One run per folder: while it trains, ``run_dir/.lock`` is held and a second run into
    the same folder raises :class:`hybrid.locking.LockedError` at once.
    """
    run_dir = Path(run_dir)
    if int(os.environ.get("RANK", "0")) != 0:  # under torchrun rank 0 alone writes files
        return _train(datasets, classes, run_dir, model_cfg, cfg, resume, progress, echo,
                      on_epoch_end, init, given)
    with locking.hold(run_dir / LOCK_NAME, f"run folder {run_dir}"):
        return _train(datasets, classes, run_dir, model_cfg, cfg, resume, progress, echo,
                      on_epoch_end, init, given)


def _train(datasets, classes, run_dir: Path, model_cfg, cfg, resume, progress, echo,
           on_epoch_end, init, given) -> tuple[HybridModel, dict]:
    ctx = Dist()
    ckpt_path = run_dir / CKPT_NAME
    state = checkpoint.resume_state(ckpt_path, resume)
    if state is not None:
        model_cfg = HybridConfig.from_dict(state["model_config"])
        cfg = cfg if given is None else resumed_config(cfg, state, given)
        if state["classes"] != list(classes):
            raise checkpoint.CheckpointError(
                f"{ckpt_path}: checkpoint classes {state['classes'][:5]}... differ from the "
                f"dataset's {list(classes)[:5]}...")
    if model_cfg.num_classes != len(classes):
        raise ValueError(f"model has {model_cfg.num_classes} outputs but the dataset "
                         f"{len(classes)} classes")

    seed_everything(cfg.seed)
    model = HybridModel(model_cfg).to(ctx.device)
    optimizer, scheduler = make_optimizer(model, cfg)
    start = 0
    rows = read_metrics(run_dir / METRICS_NAME) if ctx.main else []
    if state is not None:
        model.load_state_dict(state["model"])
        start = int(state["epoch"])
        rows = [r for r in rows if int(r["epoch"]) <= start]  # drop rows of unsaved epochs
        echo(f"resuming {run_dir} after epoch {start}")
        resume_schedule(optimizer, scheduler, state, cfg, start, echo)
    elif init is not None:
        model.load_state_dict(init)
    net = nn.parallel.DistributedDataParallel(model) if ctx.enabled else model

    train_ds, val_ds = SkipBadVideos(datasets[0]), SkipBadVideos(datasets[1])
    # (W, H) the training videos are read at, for predict/explain to read a video alike
    video_size = list(getattr(datasets[0], "read_size", ())) or None
    sampler = SeededSampler(DistributedSampler(train_ds, ctx.world, ctx.rank, shuffle=True,
                                               seed=cfg.seed), cfg.seed * 100 + ctx.rank)
    val_sampler = SeededSampler(DistributedSampler(val_ds, ctx.world, ctx.rank,
                                                   shuffle=False), cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = Loader(train_ds, cfg.batch_size, sampler=sampler, generator=gen,
                    drop_last=len(train_ds) >= cfg.batch_size * ctx.world,
                    **loader_options(cfg.workers, ctx.device))
    val_loader = Loader(val_ds, cfg.batch_size, sampler=val_sampler,
                        **loader_options(cfg.workers, ctx.device))
    if ctx.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    last, reported = {}, set()
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)  # the shuffle and every item's seed
        seed_everything(cfg.seed * 1000 + epoch * 10 + ctx.rank)
        lr = optimizer.param_groups[0]["lr"]
        try:
            tl, tc, tn = run_epoch(net, loader, ctx.device, optimizer, cfg.grad_clip,
                                   progress, f"epoch {epoch + 1}/{cfg.epochs}", reported)
            vl, vc, vn = run_epoch(net, val_loader, ctx.device, progress=progress,
                                   label=f"epoch {epoch + 1} held-out", reported=reported)
        except DivergedError as exc:
            kept = (f"the checkpoint of epoch {epoch} in {ckpt_path} is kept" if epoch
                    else "no epoch was saved")
            raise DivergedError(f"training stopped at {exc}; {kept}") from None
        tl, tc, tn, vl, vc, vn = ctx.all_sum(tl, tc, tn, vl, vc, vn)
        scheduler.step()
        last = {"epoch": epoch + 1, "lr": lr, "train_loss": tl / max(tn, 1),
                "train_acc": tc / max(tn, 1), "val_loss": vl / max(vn, 1),
                "val_acc": vc / max(vn, 1), "seconds": time.perf_counter() - t0}
        if ctx.main:
            # the metrics row first: a kill between the two leaves a row that --resume
            # drops (its epoch is not in the checkpoint), never a saved epoch without its row
            rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in last.items()})
            write_metrics(run_dir / METRICS_NAME, rows)
            try:
                checkpoint.save(ckpt_path, model_config=model_cfg.to_dict(),
                                train_config=dataclasses.asdict(cfg), classes=list(classes),
                                video_size=video_size, epoch=epoch + 1,
                                model=model.state_dict(), optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(), metrics=last)
            except BaseException:  # a full disk, Ctrl-C: the epoch is not saved, nor its row
                rows.pop()
                with contextlib.suppress(OSError):
                    write_metrics(run_dir / METRICS_NAME, rows)
                raise
            echo(f"epoch {epoch + 1}/{cfg.epochs}: loss {last['train_loss']:.3f} "
                 f"acc {last['train_acc']:.3f} | held-out loss {last['val_loss']:.3f} "
                 f"acc {last['val_acc']:.3f} | {last['seconds']:.1f}s")
        ctx.barrier()
        if on_epoch_end is not None:
            on_epoch_end(epoch + 1)
    if ctx.main and rows:
        plot_metrics(rows, run_dir / "metrics.png")
    return model, last
