"""The built-in demo behind ``hybrid demo`` (the README's main-job command):
make a synthetic action dataset, train the ``tiny`` hybrid model on CPU, evaluate it on
the held-out split, predict one video, then deploy the model to a partitioned artifact
and run that video through it on the simulated hybrid chip. Everything lands in one
output folder.

:func:`run_smoke` is the foundation's quick PyAV + torch + Lava smoke test.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class DemoConfig:
    classes: int = 8            # synthetic classes (pairs share appearance, differ in motion)
    per_class: int = 24         # videos per class (every 4th is held out)
    video_size: tuple[int, int] = (128, 96)  # (W, H) of the synthetic videos
    frames: int = 36            # frames per video (3 GOPs)
    epochs: int = 40            # training epochs
    batch_size: int = 8         # clips per step
    lr: float = 2e-3            # peak learning rate
    segments: int = 3           # TSN segments per clip
    size: int = 48              # crop side, px
    modalities: tuple[str, ...] = ("i", "mv", "r")  # model inputs (ablations)
    seed: int = 0               # dataset and training seed


def datasets(root: Path, segments: int, size: int, seed: int = 0,
             video_size: tuple[int, int] = DemoConfig.video_size):
    """(train, held-out) datasets and class names of a dataset folder (videos at
    ``video_size``, as the demo's cache) or cache."""
    from hybrid.data.dataset import open_split

    train_ds, classes = open_split(root, "train", segments, True, size, seed=seed,
                                   video_size=video_size)
    return (train_ds, open_split(root, "test", segments, False, size,
                                 video_size=video_size)[0]), classes


def make_data(out: Path, cfg: DemoConfig, echo: Callable[[str], None]) -> tuple[Path, Path]:
    """Synthesise the dataset (once) and prepare it into ``hybrid prepare``'s default
    store, the video cache (resumable). Returns (dataset folder, video cache folder)."""
    from hybrid.data.videocache import prepare_videos
    from hybrid.video.synth import SynthConfig, make_dataset

    data, cache = out / "data", out / "cache"
    t0 = time.perf_counter()
    if (data / "testlist01.txt").is_file():
        echo(f"[1/5] synthetic dataset: reusing {data}")
    else:
        s = make_dataset(data, cfg.classes, cfg.per_class, cfg.seed,
                         SynthConfig(size=cfg.video_size, frames=cfg.frames))
        echo(f"[1/5] synthetic dataset: {s['videos']} MPEG-4 videos, {cfg.classes} classes "
             f"({s['train']} train / {s['test']} held out)")
    r = prepare_videos(data, cache, cfg.video_size, workers=2)
    if r["failed"]:
        raise RuntimeError(f"{len(r['failed'])} synthetic videos failed to prepare: "
                           f"{r['failed'][:2]}")
    echo(f"      video cache of {r['prepared']} videos with their GOP index in {cache} "
         f"({r['already_done']} already there; {r['bytes'] / r['source_bytes']:.2f}x the "
         f"videos' bytes) in {time.perf_counter() - t0:.1f}s")
    return data, cache


def train_eval(data: Path, run: Path, cfg: DemoConfig, echo: Callable[[str], None],
               progress: Callable | None = None) -> dict:
    """Train (resuming if ``run`` holds a checkpoint) and evaluate; returns the results."""
    from hybrid.model import HybridConfig
    from hybrid.training.evaluate import evaluate, plot_confusion
    from hybrid.training.train import TrainConfig, train

    (train_ds, val_ds), classes = datasets(data, cfg.segments, cfg.size, cfg.seed)
    mcfg = HybridConfig(variant="tiny", num_classes=len(classes), segments=cfg.segments,
                        size=(cfg.size, cfg.size), modalities=tuple(cfg.modalities))
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, seed=cfg.seed)
    t0 = time.perf_counter()
    kw = {"progress": progress} if progress else {}
    model, _ = train((train_ds, val_ds), classes, run, mcfg, tcfg,
                     resume=(run / "checkpoint.pt").is_file(), echo=echo, **kw)
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = evaluate(model.eval(), val_ds, classes)
    res.update(train_seconds=train_s, eval_seconds=time.perf_counter() - t0,
               modalities=list(cfg.modalities), epochs=cfg.epochs)
    plot_confusion(res, run / "confusion.png")
    (run / "eval.json").write_text(json.dumps(res, indent=2))
    return res


def run_demo(out: str | Path, cfg: DemoConfig | None = None,
             echo: Callable[[str], None] = log.info, progress: Callable | None = None) -> dict:
    """Synthesise, train, evaluate, predict; re-running resumes where it stopped."""
    cfg = cfg or DemoConfig()
    from hybrid.training.evaluate import load_model, predict_scores

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data, cache = make_data(out, cfg, echo)
    echo(f"[2/5] training the tiny hybrid model for {cfg.epochs} epochs on CPU "
         f"(segments {cfg.segments}, crops {cfg.size}x{cfg.size})")
    res = train_eval(cache, out / "run", cfg, echo, progress)
    echo(f"[3/5] held-out top-1 {res['top1']:.3f}, top-5 {res['top5']:.3f} "
         f"({res['videos']} videos; training {res['train_seconds']:.0f}s); "
         f"confusion matrix: {out / 'run' / 'confusion.png'}")
    model, classes, _ = load_model(out / "run" / "checkpoint.pt")
    (_, val_ds), _ = datasets(data, cfg.segments, cfg.size,  # straight from the videos
                              video_size=cfg.video_size)
    rel, label = val_ds.items[0]
    p = predict_scores(model, val_ds[0])
    top = p.topk(3)
    ranked = [(classes[i], float(v)) for v, i in zip(top.values, top.indices)]
    echo(f"[4/5] predict {rel} (true: {classes[label]}): "
         + ", ".join(f"{c} {v:.2f}" for c, v in ranked))
    deployed = deploy_and_run(out / "run" / "checkpoint.pt", out / "deploy", data / rel,
                              cfg.video_size, echo)
    summary = {"top1": res["top1"], "top5": res["top5"], "train_seconds": res["train_seconds"],
               "prediction": {"video": rel, "true": classes[label], "top": ranked},
               "deployed": deployed}
    (out / "demo.json").write_text(json.dumps(summary, indent=2))
    return summary


def deploy_and_run(checkpoint: Path, out: Path, video: Path, video_size: tuple[int, int],
                   echo: Callable[[str], None]) -> dict:
    """``hybrid deploy`` the checkpoint to ``out`` (replacing an older one), then ``hybrid
    run`` one video (resized to ``video_size`` as in training) through it with
    ``--compare``; returns that video's record."""
    from deploy.runtime.pool import run_videos
    from hybrid.ondevice.artifacts import SKIP, deploy_checkpoint, open_input

    art = deploy_checkpoint(checkpoint, out, overwrite=True)
    size = sum(f["bytes"] for f in art.manifest["files"])
    ds, names, _ = open_input(art, video, video_size=video_size)
    rep = run_videos(art, ds, names, top=3, compare=True, skip=SKIP)
    if not rep["videos"]:
        raise RuntimeError(f"the deployed model could not run {video}: {rep['skipped']}")
    v = rep["videos"][0]
    c = v["compare"]
    echo(f"[5/5] deployed to {out} ({len(art.manifest['files'])} files, {size / 1e6:.2f} MB); "
         f"ran {video.name} on the simulated hybrid chip (Lava fixed_pt + onnxruntime): "
         + ", ".join(f"{t['class']} {t['probability']:.2f}" for t in v["top"])
         + f"; vs torch fixed point: top-1 {'same' if c['top1_agrees'] else 'DIFFERENT'}, "
         f"spikes {'identical' if c['spikes_equal'] else 'DIFFERENT'}, max logit diff "
         f"{c['max_logit_diff']:.1e}; seconds: "
         + ", ".join(f"{k} {t:.2f}" for k, t in v["seconds"].items()))
    return v


def run_smoke(out: str | Path, echo: Callable[[str], None] = log.info) -> dict:
    """Encode a moving-square MPEG-4 clip, read its block motion with PyAV, pool it per
    16x16 block with torch, drive one Lava LIF neuron per block with it (``fixed_pt``),
    and write ``smoke.json`` to ``out``. Moving blocks must spike, static ones not."""
    import torch

    import neuro  # noqa: F401  (lava compatibility first)
    from hybrid.video.selfcheck import decode_block_motion, encode_moving_square
    from neuro.selfcheck import run_fixed_pt

    from lava.proc.lif.process import LIF

    w, h, steps = 64, 48, 20
    types, motions = decode_block_motion(encode_moving_square(12, (w, h)))
    grid = torch.zeros(1, 1, h // 8, w // 8)  # (1, 1, H/8, W/8) |motion| on the 8 px grid
    for m in motions:
        for x, y, dx, dy in m:
            grid[0, 0, min(y // 8, h // 8 - 1), min(x // 8, w // 8 - 1)] += abs(dx) + abs(dy)
    per_block = torch.nn.functional.avg_pool2d(grid, 2).flatten()  # 16x16 blocks
    echo(f"pyav+torch: {''.join(t[0] for t in types)}, block motion {per_block.tolist()}")

    bias = (per_block * 50).round().clamp(0, 4000).to(torch.int64).numpy()
    lif = LIF(shape=bias.shape, bias_mant=bias, bias_exp=6, vth=200, du=4095, dv=0)
    spikes = run_fixed_pt(lif, "s_out", steps).sum(axis=0)
    moving = bias > 0
    result = {"blocks": int(bias.size), "moving_blocks": int(moving.sum()),
              "spikes_moving": int(spikes[moving].sum()),
              "spikes_static": int(spikes[~moving].sum())}
    echo(f"lava fixed_pt: {result}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "smoke.json").write_text(json.dumps(result, indent=2))
    if result["moving_blocks"] == 0 or result["spikes_moving"] == 0 or result["spikes_static"]:
        raise RuntimeError(f"smoke run gave an unexpected result: {result}")
    return result
