"""Where the model looks: a heat map per modality and segment for one class (the paper's
Fig. 5), at the finest feature map of each modality.

- MV and residual: the maps each patch embedding reads, i.e. the STMs' last-layer
  membrane potentials that the bridge carries, (S, C', h, w) (with the ablations: the
  ConvLSTM's hidden state, or the accumulated P-frame itself without STM). They come
  out of :meth:`hybrid.model.HybridModel.forward_spiking` explicitly and go into the dense partition
  as leaves that collect gradients: no hooks.
- I-frame: ``saliency`` is the patch embedding's input gradient (Simonyan et al. 2014,
  ``max |d y / d x|`` over RGB); ``gradcam`` is Grad-CAM at the patch-embedding tokens (the
  I-frame's only feature map, the 4x4 grid). The tokens are computed by the patch
  embedding itself; their gradient is recovered exactly from the input gradient, since
  the embedding is linear and non-overlapping: ``d y / d p = W^T (d y / d tok)`` per
  patch ``p``, solved for ``d y / d tok`` by least squares (exact while ``W^T`` is
  injective, checked).

Methods (``y`` = the class's logit, summed over the clips of a video):

- ``gradcam`` (Selvaraju et al., ICCV 2017): ``ReLU(sum_c alpha_c A_c)`` with
  ``alpha_c`` = the spatial mean of ``d y / d A_c``, per segment;
- ``saliency``: ``max_c |d y / d A_c|`` (the MV / residual maps: at the STM voltages).

Maps are resampled onto the crop by :func:`upsample` with each map's own geometry (a
stride-``s`` conv chain with padding k // 2 centres feature ``i`` on pixel ``s * i``;
patch ``g`` of size ``k`` on pixel ``g * k + (k - 1) / 2 - pad``), not by a generic
resize that would shift them by half a feature.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from deploy.artifact.inputs import decode_sample
from hybrid.data.dataset import COVIAR_NORM
from hybrid.data.transforms import Normalization
from hybrid.model import HybridModel
from hybrid.training.evaluate import crop_boxes, views

METHODS = ("gradcam", "saliency")
MODALITY_NAMES = {"i": "I-frame", "mv": "motion vectors", "r": "residual"}
FORMAT, VERSION = "hybrid-explain", 1  # the NPZ file's stamp


class ExplainError(Exception):
    """An explanation that cannot be made; the message says why."""


@dataclass
class Explanation:
    """Heat maps of one video for one class. Per modality ``m`` in ``maps``: (S, h, w)
    at the feature map's resolution; in ``heat``: (S, H, W) on the crop. ``inputs``:
    what the model saw, for display: ``iframe`` (S, H, W, 3) uint8 RGB, ``mv``
    (S, H, W, 2) float32 px (the GOP's last accumulated P-frame), ``residual``
    (S, H, W, 3) float32 RGB units (likewise)."""

    method: str
    class_index: int
    classes: list[str]
    probabilities: np.ndarray  # (K,) mean softmax over the clips
    maps: dict[str, np.ndarray]
    heat: dict[str, np.ndarray]
    inputs: dict[str, np.ndarray]
    meta: dict = field(default_factory=dict)  # video, segments, checkpoint

    @property
    def class_name(self) -> str:
        return self.classes[self.class_index]


# ---- geometry


def interp_matrix(n_out: int, n_in: int, step: float, offset: float) -> np.ndarray:
    """(n_out, n_in) linear interpolation from features centred on pixels
    ``offset + step * i`` to pixels 0..n_out-1, clamped at the ends."""
    pos = np.clip((np.arange(n_out) - offset) / step, 0, n_in - 1)
    lo = np.minimum(np.floor(pos).astype(int), max(n_in - 2, 0))
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1 - frac
    if n_in > 1:
        m[np.arange(n_out), lo + 1] += frac
    return m


def upsample(maps: np.ndarray, out_hw: tuple[int, int], step: tuple[float, float],
             offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(..., h, w) feature maps -> (..., H, W) on the pixels, bilinear (separable)."""
    ry = interp_matrix(out_hw[0], maps.shape[-2], step[0], offset[0])
    rx = interp_matrix(out_hw[1], maps.shape[-1], step[1], offset[1])
    return np.einsum("Yh,...hw,Xw->...YX", ry, maps, rx)


def pframe_geometry(model: HybridModel) -> tuple[float, float]:
    """(step, offset) in pixels of the MV / residual maps the patch embeddings read."""
    cfg = model.cfg
    if cfg.temporal == "none":
        return 1.0, 0.0
    if cfg.temporal == "lstm":
        return float(cfg.lstm_geometry(2).stride), 0.0
    return float(np.prod(cfg.stm_config(2).strides)), 0.0


def patch_geometry(model: HybridModel) -> tuple[tuple[float, float], tuple[float, float]]:
    """((step_y, step_x), (offset_y, offset_x)) of the I-frame's patch-token grid."""
    emb = model.dense.embed["i"]
    (kh, kw), (left, _, top, _) = emb.kernel, emb.pad
    return (kh, kw), ((kh - 1) / 2 - top, (kw - 1) / 2 - left)


# ---- the methods


def gradcam(act: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) activations and gradients -> (N, h, w) Grad-CAM."""
    alpha = grad.mean(dim=(2, 3), keepdim=True)  # (N, C, 1, 1)
    return torch.relu((alpha * act).sum(1))


def saliency(grad: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) gradients -> (N, h, w) ``max |gradient|`` over channels."""
    return grad.abs().amax(1)


def token_gradient(embed, grad_x: torch.Tensor) -> torch.Tensor:
    """The patch embedding's output gradient (N, g*g, D) from its input gradient
    (N, C, H, W): per patch, ``grad_p = W^T grad_tok`` over the patch's real (not padded)
    pixels, solved exactly by least squares. Raises ExplainError when ``W^T`` restricted
    to a patch's pixels is not injective (then the token gradient is not determined)."""
    (kh, kw), g = embed.kernel, embed.grid
    N, C = grad_x.shape[:2]
    gp = torch.nn.functional.pad(grad_x, embed.pad).double()  # padded pixels: gradient 0
    real = torch.nn.functional.pad(torch.ones(1, 1, *grad_x.shape[-2:]), embed.pad) > 0
    gp = gp.reshape(N, C, g, kh, g, kw).permute(2, 4, 1, 3, 5, 0).reshape(g * g, -1, N)
    real = real.expand(1, C, -1, -1).reshape(C, g, kh, g, kw).permute(1, 3, 0, 2, 4)
    real = real.reshape(g * g, -1)
    w_t = embed.proj.weight.detach().flatten(1).double().T  # (C*kh*kw, D)
    out = []
    for p in range(g * g):
        a = w_t[real[p]]  # (pixels, D)
        if torch.linalg.matrix_rank(a) < a.shape[1]:
            raise ExplainError(
                f"Grad-CAM of the I-frame needs the patch embedding's {a.shape[1]} outputs "
                f"determined by a patch's {a.shape[0]} pixels (rank "
                f"{int(torch.linalg.matrix_rank(a))}); use --method saliency")
        out.append(torch.linalg.lstsq(a, gp[p][real[p]]).solution.T)  # (N, D)
    return torch.stack(out, 1).float()  # (N, g*g, D)


def _iframe_map(model: HybridModel, x: torch.Tensor, grad_x: torch.Tensor,
                method: str) -> tuple[torch.Tensor, tuple, tuple]:
    """(N, h, w) map of the I-frame, with its (step, offset) geometry."""
    if method == "saliency":
        return saliency(grad_x), (1.0, 1.0), (0.0, 0.0)
    embed, g = model.dense.embed["i"], model.dense.cfg.grid
    with torch.no_grad():
        tok = embed(x)  # (N, g*g, D), the tokens the model used
    grad_tok = token_gradient(embed, grad_x)

    def grid(t):  # (N, g*g, D) -> (N, D, g, g)
        return t.transpose(1, 2).reshape(t.shape[0], -1, g, g)

    step, offset = patch_geometry(model)
    return gradcam(grid(tok), grid(grad_tok)), step, offset


def class_logits(model: HybridModel, sample: dict) -> tuple[torch.Tensor, dict]:
    """The dense partition's logits (clips, K) of one sample's views, with the leaves
    (``i``: the I-frames, ``mv`` / ``r``: the maps the patch embeddings read) holding
    gradients once a score is backpropagated."""
    b = views(sample, model.cfg.segments, model.cfg.size, 1)
    with torch.no_grad():
        v_mv, v_res, _ = model.forward_spiking(b["mv"], b["residual"])
    leaves = {"i": b["iframe"], "mv": v_mv, "r": v_res}
    leaves = {m: leaves[m].detach().clone().requires_grad_(True) for m in model.cfg.modalities}
    with torch.enable_grad():
        logits = model.dense(leaves.get("i"), leaves.get("mv"), leaves.get("r"))
    return logits, leaves


def explain(model: HybridModel, sample: dict, class_index: int | None = None,
            method: str = "gradcam", classes: list[str] | None = None,
            norm: Normalization = COVIAR_NORM) -> Explanation:
    """Heat maps of ``sample`` (a :class:`~hybrid.data.dataset.CompressedVideoDataset`
    item: S segments, S a multiple of the model's) for ``class_index`` (default: the
    predicted class, the argmax of the softmax averaged over the clips)."""
    if method not in METHODS:
        raise ExplainError(f"method must be one of {METHODS}, got {method!r}")
    model.eval()
    K = model.cfg.num_classes
    classes = list(classes) if classes is not None else [str(k) for k in range(K)]
    S, k = sample["iframe"].shape[0], model.cfg.segments
    if S % k:
        raise ExplainError(f"{S} segments is not a multiple of the model's {k}")
    logits, leaves = class_logits(model, sample)
    probs = torch.softmax(logits.detach(), 1).mean(0)
    c = int(probs.argmax()) if class_index is None else int(class_index)
    if not 0 <= c < K:
        raise ExplainError(f"class index {c} outside 0..{K - 1}")
    logits[:, c].sum().backward()
    H, W = model.cfg.size
    step, _ = pframe_geometry(model)
    maps, heat = {}, {}
    for m, leaf in leaves.items():
        act, grad = leaf.detach().flatten(0, 1), leaf.grad.flatten(0, 1)  # (clips*k, C, h, w)
        if m == "i":
            a, st, off = _iframe_map(model, act, grad, method)
        else:
            a, st, off = (gradcam(act, grad) if method == "gradcam" else saliency(grad),
                          (step, step), (0.0, 0.0))
        a = _segment_order(a.reshape(-1, k, *a.shape[1:]))  # (S, h, w)
        maps[m] = a.numpy().astype(np.float32)
        heat[m] = upsample(maps[m].astype(np.float64), (H, W), st, off).astype(np.float32)
    return Explanation(method, c, classes, probs.numpy(), maps, heat,
                       display_inputs(sample, model.cfg.size, norm))


def _segment_order(per_clip: torch.Tensor) -> torch.Tensor:
    """(clips, k, ...) maps of interleaved clips (clip j holds segments j, j + clips,
    ...; :func:`hybrid.training.evaluate.views`) -> (S, ...) in segment order."""
    return per_clip.transpose(0, 1).reshape(-1, *per_clip.shape[2:])  # [i*clips + j] = [j, i]


def display_inputs(sample: dict, size: tuple[int, int],
                   norm: Normalization = COVIAR_NORM) -> dict[str, np.ndarray]:
    """The model's centre crop of each modality, un-normalised for display: the
    I-frame RGB, and the GOP's last accumulated MV (px) and residual (RGB units)."""
    H, W = sample["iframe"].shape[-2:]
    (y, x), = crop_boxes(H, W, size[0], size[1], 1)

    def crop(t):
        return t[..., y:y + size[0], x:x + size[1]].numpy()

    mean, std = np.asarray(norm.mean)[:, None, None], np.asarray(norm.std)[:, None, None]
    rgb = (crop(sample["iframe"]) * std + mean) * 255.0  # (S, 3, H, W)
    mv = ((crop(sample["mv"][:, -1]) + 0.5) * 255.0 - 128.0) * (norm.mv_bound / 127.5)
    res = (crop(sample["residual"][:, -1]) * std + 0.5) * 255.0 - 128.0
    return {"iframe": np.clip(np.rint(rgb), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1),
            "mv": mv.astype(np.float32).transpose(0, 2, 3, 1),
            "residual": res.astype(np.float32).transpose(0, 2, 3, 1)}


def mass_inside(heat: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Share of a non-negative map's total inside ``box`` = (top, left, bottom, right),
    pixels of the map; NaN for an all-zero map."""
    top, left, bottom, right = box
    total = float(np.asarray(heat, np.float64).sum())
    return float(heat[..., top:bottom, left:right].sum() / total) if total > 0 else float("nan")


# ---- input and file


def training_video_size(ckpt: dict) -> tuple[int, int] | None:
    """(W, H) the checkpoint's model was trained on, where the checkpoint records it
    (``video_size``, written by :func:`hybrid.training.train.train`); None where it does not."""
    size = ckpt.get("video_size")
    return (int(size[0]), int(size[1])) if size else None


def own_video_size(video: str | Path) -> tuple[int, int]:
    """(W, H) of ``video`` itself, each side rounded down to even (the MPEG-4 encoder's
    need) and at least 16: reading it at this size never scales it up (but a side
    below 16 px)."""
    from hybrid.video.probe import probe

    info = probe(video, with_types=False)
    return max(16, info.width // 2 * 2), max(16, info.height // 2 * 2)


SHORT_VIDEO_ROWS = 4  # segments up to this x the model's are allowed whatever the GOPs


def read_video(model: HybridModel, video: str | Path, segments: int | None = None,
               video_size: tuple[int, int] | None = None, transcode: bool = True
               ) -> tuple[dict, dict]:
    """One video as ``hybrid predict`` reads it: any video FFmpeg reads (transcoded in
    process when not MPEG-4 GOP 12 at ``video_size``, W x H, default the video's own
    size: :func:`own_video_size`; unless ``transcode`` is False), ``segments`` GOPs
    (default: the model's) sampled for evaluation, centre-cropped. Returns (sample,
    meta): meta's ``gops`` are the GOP indices the segments show, in order (they repeat
    when the video has fewer GOPs than segments), ``num_gops`` the video's,
    ``video_size`` the size read. Raises the dataset's UNREADABLE errors (naming the
    file) or ExplainError."""
    from hybrid.data.dataset import CompressedVideoDataset
    from hybrid.data.transforms import sample_segments
    from hybrid.video.seek import gop_index
    from hybrid.video.transcode import as_mpeg4

    s = segments or model.cfg.segments
    if s % model.cfg.segments:
        raise ExplainError(f"--segments {s} must be a multiple of the model's "
                           f"{model.cfg.segments}")
    size = tuple(video_size) if video_size else own_video_size(video)
    with as_mpeg4(video, size, allow_transcode=transcode) as path:
        n = len(gop_index(path))  # packets only; the dataset samples the same way
        k = model.cfg.segments
        most = k * max(-(-n // k), SHORT_VIDEO_ROWS)  # every GOP once; a short video more
        if s > most:  # more only repeat GOPs (--segments 300 ran 150 s at 1.6 GB)
            raise ExplainError(f"--segments {s}: the video has {n} GOPs; at most {most} "
                               f"segments (each GOP once, rounded up to a multiple of the "
                               f"model's {k}, or {SHORT_VIDEO_ROWS * k} on a short video); "
                               "more only repeat GOPs")
        ds = CompressedVideoDataset.one_video(path, s, crop=model.cfg.size[0],
                                              video_size=size)
        sample = decode_sample(ds[0])  # the loader's uint8 codes -> the model's floats
    return sample, {"gops": sample_segments(n, s, train=False), "num_gops": n,
                    "video_size": list(size)}


# ---- file


def save(expl: Explanation, path: str | Path) -> Path:
    """The maps, heat maps and display inputs as one NPZ (versioned, written atomically)."""
    from deploy.atomic import write_file

    meta = {"format": FORMAT, "version": VERSION, "method": expl.method,
            "class_index": expl.class_index, "class": expl.class_name,
            "classes": expl.classes, "modalities": list(expl.maps), **expl.meta}
    arrays = {"meta": np.asarray(json.dumps(meta)), "probabilities": expl.probabilities}
    arrays |= {f"map_{m}": a for m, a in expl.maps.items()}
    arrays |= {f"heat_{m}": a for m, a in expl.heat.items()}
    arrays |= {f"input_{k}": a for k, a in expl.inputs.items()}
    return write_file(path, lambda f: np.savez_compressed(f, **arrays))


def load(path: str | Path) -> Explanation:
    """Read a file written by :func:`save`; ExplainError naming the file otherwise."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        meta = json.loads(str(d["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        raise ExplainError(f"{path}: not a readable explain file ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise ExplainError(f"{path}: format {meta.get('format')!r} version "
                           f"{meta.get('version')}, expected {FORMAT!r} version {VERSION}")
    mods = meta["modalities"]
    extra = {k: v for k, v in meta.items() if k not in (
        "format", "version", "method", "class_index", "class", "classes", "modalities")}
    return Explanation(meta["method"], meta["class_index"], meta["classes"],
                       d["probabilities"], {m: d[f"map_{m}"] for m in mods},
                       {m: d[f"heat_{m}"] for m in mods},
                       {k[6:]: v for k, v in d.items() if k.startswith("input_")}, extra)
