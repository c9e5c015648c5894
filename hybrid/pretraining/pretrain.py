"""Self-supervised pretraining of the hybrid model on IMRNet's pretext tasks (PMSP, CTP;
:mod:`hybrid.pretraining.tasks`), without labels, then fine-tuning from it.

The backbone is the hybrid model itself (its STMs and the dense partition up to the
pooled, layer-normed features; its classifier is replaced by ``nn.Identity``); the
pretext heads (:mod:`ann.pretext`) sit on those features and are dropped afterwards.

``RUN/checkpoint.pt`` (:mod:`hybrid.training.checkpoint`, atomic, every epoch) has ``kind`` =
``"pretrain"``, the backbone's ``model_config`` (its ``num_classes`` unused), ``model``
(the backbone's state dict, no classifier), ``heads`` (the pretext heads, for
``--resume``), ``pretrain_config``, ``train_config``, ``optimizer``, ``scheduler``,
``epoch``, ``metrics``; ``classes`` is empty (no labels were used).
:func:`finetune_init` turns it into a ``hybrid train --init`` start: the backbone's
weights and a fresh classifier, initialised exactly as a run from scratch would.

One process (no DDP); every epoch's random streams derive from the seed and the epoch as
in :mod:`hybrid.training.train`, so a resumed run repeats an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DistributedSampler

from ann.pretext import MLPHead, PMSPHead
from deploy.artifact.inputs import decode
from hybrid import locking
from hybrid.data.loader import Loader, SeededSampler, SkipBadVideos, loader_options
from hybrid.model import HybridConfig, HybridModel
from hybrid.pretraining.tasks import (
    CTP_TYPES,
    DEFAULT_LEVELS,
    IGNORE,
    TASKS,
    apply_ctp,
    ctp_classes,
    draw_ctp,
    pmsp_targets,
)
from hybrid.training import checkpoint
from hybrid.training.metrics import METRICS_NAME, read_metrics, write_metrics
from hybrid.training.train import (
    CKPT_NAME,
    LOCK_NAME,
    DivergedError,
    TrainConfig,
    make_optimizer,
    resume_schedule,
    seed_everything,
)

log = logging.getLogger(__name__)
KIND = checkpoint.PRETRAIN_KIND
HEAD_KEYS = ("dense.head.weight", "dense.head.bias")  # the classifier, not pretrained
EVAL_SEED = 12345  # the held-out clips' CTP draws, the same every epoch


@dataclass
class PretrainConfig:
    tasks: tuple[str, ...] = ("pmsp", "ctp")  # subset of TASKS; 'ctp' xor 'ctp-binary'
    levels: tuple[tuple[int, int], ...] = DEFAULT_LEVELS  # PMSP pyramid: (grid, chunks)
    hidden: int = 64  # hidden width of every 2-layer MLP head

    def __post_init__(self):
        self.tasks = tuple(self.tasks)
        self.levels = tuple((int(g), int(c)) for g, c in self.levels)
        if not (self.tasks and set(self.tasks) <= set(TASKS)):
            raise ValueError(f"tasks {self.tasks} must be a non-empty subset of {TASKS}")
        if not (not {"ctp", "ctp-binary"} <= set(self.tasks)):
            raise ValueError("pick one of 'ctp' (three types) and 'ctp-binary' (aligned or not)")
        if self.hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {self.hidden}")

    @property
    def ctp(self) -> str | None:
        return next((t for t in self.tasks if t.startswith("ctp")), None)

    def names(self) -> list[str]:
        """Metric names: one per PMSP level, then the CTP task."""
        out = [f"pmsp_{g}x{g}_{c}" for g, c in self.levels] if "pmsp" in self.tasks else []
        return out + ([self.ctp.replace("-", "_")] if self.ctp else [])

    def chance(self) -> dict[str, float]:
        out = ({f"pmsp_{g}x{g}_{c}": 1 / g**2 for g, c in self.levels}
               if "pmsp" in self.tasks else {})
        if self.ctp:
            out[self.ctp.replace("-", "_")] = 1 / ctp_classes(self.ctp)
        return out


class PretrainModel(nn.Module):
    """The backbone (a :class:`~hybrid.model.HybridModel` without its classifier) and the
    pretext heads. ``forward(iframe, mv, residual)`` -> {metric name: logits}: PMSP (B, chunks,
    grid**2) per level, CTP (B, types)."""

    def __init__(self, model_cfg: HybridConfig, cfg: PretrainConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = HybridModel(model_cfg)
        self.backbone.dense.head = nn.Identity()  # dropped: pretraining knows no classes
        F = model_cfg.dense_config().filters
        if cfg.ctp:
            if model_cfg.segments < 2:
                raise ValueError(f"CTP shifts P-frames between segments: it needs --segments >= "
                                 f"2, got "
                f"{model_cfg.segments}")
        if "pmsp" in cfg.tasks:
            steps = model_cfg.segments * model_cfg.timesteps
            for g, c in cfg.levels:
                if not (c <= steps and g <= min(model_cfg.size)):
                    raise ValueError(f"PMSP level {g}x{g} over {c} chunks does not fit clips of "
                                     f"{steps} "
                    f"P-frames at {model_cfg.size[0]} px")
        self.pmsp = PMSPHead(F, cfg.hidden, cfg.levels) if "pmsp" in cfg.tasks else None
        self.ctp = MLPHead(F, cfg.hidden, ctp_classes(cfg.ctp)) if cfg.ctp else None

    def features(self, iframe, mv, residual) -> torch.Tensor:
        """(B, F): the backbone's pooled, layer-normed features (the classifier's input)."""
        m = self.backbone
        v_mv, v_res, _ = m.forward_spiking(mv, residual)
        x = m.dense.forward_features(iframe if "i" in m.cfg.modalities else None, v_mv, v_res)
        return m.dense.head_norm(x)

    def forward(self, iframe, mv, residual) -> dict[str, torch.Tensor]:
        f = self.features(iframe, mv, residual)
        logits = (self.pmsp(f) if self.pmsp is not None else []) + (
            [self.ctp(f)] if self.ctp is not None else [])
        return dict(zip(self.cfg.names(), logits, strict=True))


def make_batch(batch: dict, cfg: PretrainConfig, gen: torch.Generator,
               ctp_kind: int | None = None):
    """(inputs, targets) of a decoded clip batch (:func:`deploy.artifact.inputs.decode`) without
    using its labels: the CTP transform applied (when asked; drawn per clip, or
    ``ctp_kind``, an index into CTP_TYPES, for every clip), then the PMSP labels of the
    motion vectors the model sees."""
    iframe, mv, res = batch["iframe"], batch["mv"], batch["residual"]
    targets = {}
    if cfg.ctp:
        if ctp_kind is None:
            kind, _ = draw_ctp(mv.shape[0], cfg.ctp, gen)
        else:
            kind = torch.full((mv.shape[0],), ctp_kind, dtype=torch.long)
        mv, res, applied = apply_ctp(mv, res, kind, gen)
        # the label of the transform applied (a batch of one clip is shifted, not swapped);
        # with ``ctp_kind``, a clip that could not get that type is left out (IGNORE)
        label = (applied > 0).long() if cfg.ctp == "ctp-binary" else applied
        if ctp_kind is not None:
            label = torch.where(applied == kind, label, IGNORE)
        targets[cfg.ctp.replace("-", "_")] = label
    if "pmsp" in cfg.tasks:
        names = [n for n in cfg.names() if n.startswith("pmsp")]
        targets.update(zip(names, pmsp_targets(mv, cfg.levels)))
    return (iframe, mv, res), targets


def losses(logits: dict, targets: dict) -> tuple[torch.Tensor, dict[str, tuple[int, int]]]:
    """Sum of the tasks' cross-entropies (a PMSP level's: mean over its answered chunks)
    and (correct, answered) per metric."""
    total, counts = 0.0, {}
    for name, y in targets.items():
        z = logits[name]
        z2, y2 = (z.flatten(0, 1), y.flatten()) if z.dim() == 3 else (z, y)
        keep = y2 != IGNORE
        if keep.any():
            total = total + nn.functional.cross_entropy(z2[keep], y2[keep])
        counts[name] = (int((z2.argmax(-1)[keep] == y2[keep]).sum()), int(keep.sum()))
    return total, counts


def run_epoch(model: PretrainModel, loader, gen: torch.Generator, optimizer=None,
              grad_clip: float = 0.0, progress: Callable | None = None, label: str = "",
              ctp_kind: int | None = None, counts_out: dict | None = None):
    """One pass; trains when ``optimizer`` is given. Returns (mean loss, {name: acc});
    ``ctp_kind`` as :func:`make_batch`; ``counts_out`` receives {name: [correct, answered]}."""
    from hybrid.training.train import _progress_none, readable, step_on

    train = optimizer is not None
    model.train(train)
    loss_sum, batches, hits, reported = 0.0, 0, {}, set()
    with torch.set_grad_enabled(train), (progress or _progress_none)(loader, label) as bar:
        for step, batch in enumerate(bar, 1):
            if not readable(batch, reported):
                continue
            inputs, targets = make_batch(decode(batch), model.cfg, gen, ctp_kind)
            loss, counts = losses(model(*inputs), targets)
            if not torch.is_tensor(loss):  # no task had an answer in this batch
                continue
            step_on(loss, model, optimizer, grad_clip, f"{label or 'pass'}, batch {step}")
            loss_sum += loss.item()
            batches += 1
            for k, (c, n) in counts.items():
                h = hits.setdefault(k, [0, 0])
                h[0] += c
                h[1] += n
    if counts_out is not None:
        counts_out.update(hits)
    return loss_sum / max(batches, 1), {k: c / max(n, 1) for k, (c, n) in hits.items()}


def evaluate(model: PretrainModel, dataset, batch_size: int = 8, seed: int = EVAL_SEED,
             progress: Callable | None = None) -> dict[str, float]:
    """Pretext accuracies on ``dataset`` (held-out clips). Balanced: every clip is seen
    under every CTP type (aligned, shifted, swapped), so a constant answer scores the
    chance level exactly; the CTP accuracy is the mean of the per-type accuracies (for
    'ctp-binary': the mean of the aligned one and the transformed ones'), PMSP's is that
    of the aligned clips (the videos as they are). Shifts fixed by ``seed``."""
    loader = Loader(SkipBadVideos(dataset), batch_size, shuffle=False,
                    **loader_options(0, torch.device("cpu")))
    gen = torch.Generator().manual_seed(seed)
    ctp = model.cfg.ctp
    per_type = []
    for kind in range(len(CTP_TYPES) if ctp else 1):
        counts: dict = {}
        acc = run_epoch(model, loader, gen, progress=progress, label="held-out",
                        ctp_kind=kind if ctp else None, counts_out=counts)[1]
        if kind == 0:
            out = acc
        if ctp:
            c, n = counts.get(ctp.replace("-", "_"), (0, 0))
            per_type.append(c / max(n, 1))
    if ctp:
        name = ctp.replace("-", "_")
        out[name] = (sum(per_type) / len(per_type) if ctp == "ctp" else
                     (per_type[0] + sum(per_type[1:]) / (len(per_type) - 1)) / 2)
    return out


def pretrain(datasets, run_dir: str | Path, model_cfg: HybridConfig, cfg: PretrainConfig,
             tcfg: TrainConfig, resume: bool = False, progress: Callable | None = None,
             echo: Callable[[str], None] = log.info) -> tuple[PretrainModel, dict]:
    """Pretrain on ``datasets = (train, held_out)`` (their labels are never read); writes
    ``run_dir/checkpoint.pt`` every epoch and ``metrics.csv`` (loss, train and held-out
    accuracy per task). ``resume`` continues from the checkpoint (its configs win;
    ``tcfg.epochs`` may extend the run). Returns the model and the last epoch's metrics."""
    run_dir = Path(run_dir)
    with locking.hold(run_dir / LOCK_NAME, f"run folder {run_dir}"):
        return _pretrain(datasets, run_dir, model_cfg, cfg, tcfg, resume, progress, echo)


def _pretrain(datasets, run_dir, model_cfg, cfg, tcfg, resume, progress, echo):
    ckpt_path = run_dir / CKPT_NAME
    state = checkpoint.resume_state(ckpt_path, resume)
    if state is not None:
        if state.get("kind") != KIND:
            raise checkpoint.CheckpointError(f"{ckpt_path}: a training checkpoint, not a "
                                             "pretraining one: resume it with `hybrid train`")
        model_cfg = HybridConfig.from_dict(state["model_config"])
        cfg = PretrainConfig(**state["pretrain_config"])
    seed_everything(tcfg.seed)
    model = PretrainModel(model_cfg, cfg)
    optimizer, scheduler = make_optimizer(model, tcfg)
    start, rows = 0, read_metrics(run_dir / METRICS_NAME)
    if state is not None:
        model.backbone.load_state_dict(state["model"])
        for name, sd in state["heads"].items():
            getattr(model, name).load_state_dict(sd)
        start = int(state["epoch"])
        rows = [r for r in rows if int(r["epoch"]) <= start]
        echo(f"resuming {run_dir} after epoch {start}")
        resume_schedule(optimizer, scheduler, state, tcfg, start, echo)
    train_ds, val_ds = datasets
    # (W, H) the videos are read at, recorded so `train --init` and `--resume` read alike
    video_size = list(getattr(train_ds, "read_size", ())) or None
    # as hybrid.training.train: the shuffle and every item's seed from (seed, epoch, index), in
    # whichever (persistent) worker reads it
    sampler = SeededSampler(DistributedSampler(train_ds, 1, 0, shuffle=True, seed=tcfg.seed),
                            tcfg.seed * 100)
    loader = Loader(SkipBadVideos(train_ds), tcfg.batch_size, sampler=sampler,
                    drop_last=len(train_ds) >= tcfg.batch_size,
                    generator=torch.Generator().manual_seed(tcfg.seed),
                    **loader_options(tcfg.workers, torch.device("cpu")))
    run_dir.mkdir(parents=True, exist_ok=True)
    last = {}
    for epoch in range(start, tcfg.epochs):
        t0 = time.perf_counter()
        epoch_seed = tcfg.seed * 1000 + epoch * 10  # as hybrid.training.train: resumable streams
        seed_everything(epoch_seed)
        sampler.set_epoch(epoch)
        task_gen = torch.Generator().manual_seed(epoch_seed + 1)
        lr = optimizer.param_groups[0]["lr"]
        try:
            loss, acc = run_epoch(model, loader, task_gen, optimizer, tcfg.grad_clip, progress,
                                  f"pretrain epoch {epoch + 1}/{tcfg.epochs}")
        except DivergedError as exc:
            kept = (f"the checkpoint of epoch {epoch} in {ckpt_path} is kept" if epoch
                    else "no epoch was saved")
            raise DivergedError(f"pretraining stopped at {exc}; {kept}") from None
        val = evaluate(model, val_ds, tcfg.batch_size, progress=progress)
        scheduler.step()
        last = {"epoch": epoch + 1, "lr": lr, "loss": loss,
                **{f"train_{k}": v for k, v in acc.items()},
                **{f"val_{k}": v for k, v in val.items()},
                "seconds": time.perf_counter() - t0}
        rows.append({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in last.items()})
        write_metrics(run_dir / METRICS_NAME, rows, list(rows[0]))
        heads = {n: getattr(model, n).state_dict() for n in ("pmsp", "ctp")
                 if getattr(model, n) is not None}
        try:
            checkpoint.save(ckpt_path, kind=KIND, model_config=model_cfg.to_dict(),
                            pretrain_config=dataclasses.asdict(cfg),
                            train_config=dataclasses.asdict(tcfg), classes=[],
                            epoch=epoch + 1, video_size=video_size,
                            model=model.backbone.state_dict(), heads=heads,
                            optimizer=optimizer.state_dict(),
                            scheduler=scheduler.state_dict(), metrics=last)
        except BaseException:  # a full disk, Ctrl-C: the epoch is not saved, nor its row
            rows.pop()
            with contextlib.suppress(OSError):
                write_metrics(run_dir / METRICS_NAME, rows, list(last))
            raise
        echo(f"pretrain epoch {epoch + 1}/{tcfg.epochs}: loss {loss:.3f} | "
             + ", ".join(f"{k} {acc.get(k, 0):.2f}/{val.get(k, 0):.2f}" for k in cfg.names())
             + " (train/held-out; chance "
             + ", ".join(f"{v:.2f}" for v in cfg.chance().values())
             + f") | {last['seconds']:.1f}s")
    return model, last


def is_pretrain(ck: dict) -> bool:
    return ck.get("kind") == KIND


def finetune_init(ck: dict, num_classes: int, seed: int, quant: str | None = None
                  ) -> tuple[HybridConfig, dict]:
    """(model config, full state dict) to fine-tune a pretraining checkpoint ``ck`` on
    ``num_classes`` classes: the backbone's weights, and the classifier of a fresh model
    built as :func:`hybrid.training.train.train` builds one from scratch with ``seed`` (so from
    scratch and from pretraining differ only in the backbone's start)."""
    if not (is_pretrain(ck)):
        raise ValueError("not a pretraining checkpoint")
    cfg = dataclasses.replace(HybridConfig.from_dict(ck["model_config"]),
                              num_classes=num_classes,
                              **({"quant": quant} if quant else {}))
    seed_everything(seed)
    state = HybridModel(cfg).state_dict()
    missing = set(state) - set(ck["model"])
    extra = set(ck["model"]) - set(state)
    if missing != set(HEAD_KEYS) or extra:
        raise checkpoint.CheckpointError(
            f"the pretrained backbone does not fit the model: missing {sorted(missing)[:4]}, "
            f"unexpected {sorted(extra)[:4]}")
    state.update(ck["model"])
    return cfg, state
