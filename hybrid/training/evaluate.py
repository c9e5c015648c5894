"""Multi-view evaluation and prediction with a trained checkpoint.

Views "S x C": S segments sampled uniformly over the video and C spatial crops. A model
trained with ``k`` segments sees the S segments as S / k clips of interleaved segments
(clip j takes segments j, j + S/k, ...), so each clip spans the whole video; the
softmax scores of all clips and crops are averaged. C is 1 (centre), 3 (start, centre,
end of the longer side) or 5 (four corners and centre).
"""
from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from deploy.artifact.inputs import decode_sample
from deploy.atomic import write_file
from hybrid.data.dataset import UNREADABLE, CompressedVideoDataset, open_split
from hybrid.data.transforms import CropConfig
from hybrid.model import HybridConfig, HybridModel
from hybrid.training import checkpoint
from hybrid.training.views import CROPS
from hybrid.video.transcode import as_mpeg4

log = logging.getLogger(__name__)


def load_model(path: str | Path) -> tuple[HybridModel, list[str], dict]:
    """Model (eval mode, CPU) and class names from a checkpoint; CheckpointError on a bad file."""
    ckpt = checkpoint.load_classifier(path)
    try:
        cfg = HybridConfig.from_dict(ckpt["model_config"])
        model = HybridModel(cfg)
        model.load_state_dict(ckpt["model"])
    except (ValueError, TypeError, RuntimeError, KeyError) as exc:
        # load_state_dict's first line only says that it failed; the next one says why
        why = [w.strip() for w in str(exc).splitlines()[1:2] if w.strip()]
        raise checkpoint.CheckpointError(f"{path}: checkpoint does not fit this toolkit's "
                                         f"model ({type(exc).__name__}: "
                                         f"{why[0][:300] if why else checkpoint.first_line(exc)}"
                                         ")") from exc
    model.eval()
    return model, list(ckpt["classes"]), ckpt


def eval_crop(size: int, n_crops: int) -> CropConfig:
    """The dataset crop for evaluation: 1 crop -> the centre crop at the training size;
    3 or 5 -> the whole short-side square at size / 0.875, cut into crops later
    (TSN's and CoViAR's protocol)."""
    if n_crops == 1:
        return CropConfig(size=size)
    return CropConfig(size=round(size / 0.875), eval_fraction=1.0)


def open_views(data: str | Path, split: str, views: tuple[int, int], segments: int,
               size: int, fold: int = 1, video_size: tuple[int, int] | None = None,
               ) -> tuple[CompressedVideoDataset, list[str]]:
    """(dataset, classes) of ``split`` read for evaluation at ``views`` (S, C) of a model
    trained on ``segments`` segments of ``size`` px crops; ValueError when S is not a
    multiple of the model's segments."""
    s, c = views
    if s % segments:
        raise ValueError(f"views {s}x{c}: {s} segments is not a multiple of the model's "
                         f"{segments}")
    kw = {} if video_size is None else {"video_size": tuple(video_size)}
    return open_split(data, split, s, False, eval_crop(size, c), fold, 0, **kw)


def render(res: dict) -> list[str]:
    """The text lines of one evaluation's result (:func:`evaluate` plus ``views`` and
    ``plot``)."""
    lines = [f"{res['videos']} videos, views {res['views']}, STMs {res['quant']}: "
             f"top-1 {res['top1']:.4f}, top-5 {res['top5']:.4f}"
             + (f"; confusion matrix in {res['plot']}" if res.get("plot") else "")]
    lines += [f"  {name:<24} {'-' if acc is None else f'{acc:.3f}'}"
              for name, acc in res["per_class"].items()]
    return lines


def read_video(video: str | Path, segments: int, crop: int, video_size: tuple[int, int],
               transcode: bool = True) -> dict:
    """One video file (any FFmpeg reads) as an evaluation sample of ``segments`` segments
    centre-cropped to ``crop``: transcoded in process to MPEG-4 GOP 12 at ``video_size``
    when it is not in that form (a temporary file, removed), or refused without
    ``transcode``."""
    with as_mpeg4(video, video_size, allow_transcode=transcode) as path:
        ds = CompressedVideoDataset.one_video(path, segments, crop=crop,
                                              video_size=video_size)
        return ds[0]


def crop_boxes(h: int, w: int, ch: int, cw: int, n: int) -> list[tuple[int, int]]:
    """Top-left corners of ``n`` crops of size (ch, cw) inside (h, w)."""
    if n not in CROPS:
        raise ValueError(f"crops must be one of {CROPS}, got {n}")
    if not (ch <= h and cw <= w):
        raise ValueError(f"crop {ch}x{cw} larger than frame {h}x{w}")
    cy, cx = (h - ch) // 2, (w - cw) // 2
    if n == 1:
        return [(cy, cx)]
    if n == 3:
        if w - cw >= h - ch:
            return [(cy, 0), (cy, cx), (cy, w - cw)]
        return [(0, cx), (cy, cx), (h - ch, cx)]
    return [(0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw), (cy, cx)]


def views(sample: dict, model_segments: int, crop: tuple[int, int], n_crops: int) -> dict:
    """All clips x crops of one sample as a batch. ``sample`` holds iframe (S, 3, H, W),
    mv (S, T, 2, H, W), residual (S, T, 3, H, W) for S = a multiple of ``model_segments``,
    as floats (a dataset's uint8 codes are decoded first)."""
    if sample["iframe"].dtype == torch.uint8:
        sample = decode_sample(sample)
    S = sample["iframe"].shape[0]
    if S % model_segments != 0:
        raise ValueError(f"views: {S} segments is not a multiple of the model's "
                         f"{model_segments} segments")
    k = S // model_segments
    H, W = sample["iframe"].shape[-2:]
    out = {"iframe": [], "mv": [], "residual": []}
    for j in range(k):
        idx = torch.arange(j, S, k)
        for y, x in crop_boxes(H, W, crop[0], crop[1], n_crops):
            for key in out:
                out[key].append(sample[key][idx][..., y:y + crop[0], x:x + crop[1]])
    return {key: torch.stack(v) for key, v in out.items()}


@torch.no_grad()
def predict_scores(model: HybridModel, sample: dict, n_crops: int = 1,
                   quant: str | None = None) -> torch.Tensor:
    """Class probabilities (K,) of one sample, averaged over its views; STMs in mode
    ``quant`` ("float" or "qat"; default: the model's own)."""
    b = views(sample, model.cfg.segments, model.cfg.size, n_crops)
    return torch.softmax(model(b["iframe"], b["mv"], b["residual"], quant=quant), dim=1).mean(0)


def evaluate(model: HybridModel, dataset, classes: list[str], n_crops: int = 1,
             progress: Callable | None = None, quant: str | None = None) -> dict:
    """top-1, top-5, per-class accuracy and the confusion matrix over ``dataset``, STMs
    in mode ``quant`` (default: the model's own); videos that cannot be read are
    reported (``skipped``) and left out."""
    K = len(classes)
    conf = np.zeros((K, K), np.int64)
    top5 = 0
    skipped: list[str] = []
    it = range(len(dataset))
    with (progress(it, "evaluating") if progress else contextlib.nullcontext(it)) as bar:
        for i in bar:
            try:
                sample = dataset[i]
            except UNREADABLE as exc:
                log.warning("skipping a video that cannot be read: %s", exc)
                skipped.append(str(exc))
                continue
            p = predict_scores(model, sample, n_crops, quant)
            label = int(sample["label"])
            conf[label, int(p.argmax())] += 1
            top5 += int(label in p.topk(min(5, K)).indices.tolist())
    n = int(conf.sum())
    per_class = {c: (float(conf[k, k] / conf[k].sum()) if conf[k].sum() else None)
                 for k, c in enumerate(classes)}
    return {"top1": float(np.trace(conf) / max(n, 1)), "top5": top5 / max(n, 1),
            "videos": n, "skipped": skipped, "quant": quant or model.cfg.quant,
            "per_class": per_class, "confusion": conf.tolist(),
            "classes": list(classes)}


def plot_confusion(result: dict, path: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf = np.asarray(result["confusion"], dtype=float)
    norm = conf / np.maximum(conf.sum(1, keepdims=True), 1)
    K = len(result["classes"])
    fig, ax = plt.subplots(figsize=(1.2 + 0.45 * K, 1 + 0.45 * K))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(K), result["classes"], rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(K), result["classes"], fontsize=8)
    for i in range(K):
        for j in range(K):
            if conf[i, j]:
                ax.text(j, i, int(conf[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true",
           title=f"top-1 {result['top1']:.3f}, top-5 {result['top5']:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    # staged and renamed: a full disk leaves the old plot or none, never half of one
    write_file(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
