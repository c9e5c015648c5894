"""The model's inputs: uint8 codes -> normalised float32, on the device.

Loaders (``hybrid.data``) hand over what the model sees as 8-bit codes, cropped but not
resized: the I-frame's RGB, the motion vectors' CoViAR codes ``clip(trunc(mv * 127.5 /
bound) + 128, 0, 255)`` and the residuals' ``clip(r + 128, 0, 255)``, each in a square
buffer of side M whose top-left ``(h, w)`` is the crop, with ``box = (h, w, flip, size)``
per sample. :func:`decode` is the one place that turns them into CoViAR's normalised
floats, resized to ``size`` and flipped (a flip negates MV x): training, evaluation,
prediction and the deployed runtime all call it, so they cannot drift.

It lives in ``ann`` (torch only) so that ``hybrid`` and ``deploy`` can both import it.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB; CoViAR's I-frame and residual scaling
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB


def _geometry(x: torch.Tensor, h: int, w: int, flip: bool, size: int,
              is_mv: bool) -> torch.Tensor:
    """(N, C, M, M) -> (N, C, size, size): crop the top-left (h, w), resize bilinearly,
    flip (negating channel 0 when ``is_mv``), as ``hybrid.data.transforms.apply_box``."""
    x = x[..., :h, :w]
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if flip:
        x = x.flip(-1)
        if is_mv:
            x[:, 0].neg_()
    return x


def decode(batch: dict, device: torch.device | str | None = None,
           mean: tuple[float, float, float] = IMAGENET_MEAN,
           std: tuple[float, float, float] = IMAGENET_STD) -> dict:
    """A batch of codes -> the model's float inputs on ``device``.

    ``batch``: ``iframe`` (B, S, 3, M, M), ``mv`` (B, S, T, 2, M, M), ``residual``
    (B, S, T, 3, M, M), all uint8, ``box`` (B, 4) int (h, w, flip, size), and any other
    entries (moved as they are). Returns ``iframe`` (B, S, 3, C, C), ``mv`` (B, S, T, 2,
    C, C), ``residual`` (B, S, T, 3, C, C) float32 with C = size, and the others."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items() if k != "box"}
    for k in ("iframe", "mv", "residual"):
        assert out[k].dtype == torch.uint8, f"decode: {k} must be uint8 codes, got {out[k].dtype}"
    dev = out["iframe"].device
    m = torch.tensor(mean, dtype=torch.float32, device=dev).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32, device=dev).view(3, 1, 1)
    floats = {"iframe": (out["iframe"].float() / 255.0 - m) / s,
              "mv": out["mv"].float() / 255.0 - 0.5,
              "residual": (out["residual"].float() / 255.0 - 0.5) / s}
    boxes = batch["box"].tolist()
    sizes = {b[3] for b in boxes}
    assert len(sizes) == 1, f"decode: one output size per batch, got {sorted(sizes)}"
    (size,) = sizes
    for k, x in floats.items():
        lead, (c, mm) = x.shape[:-3], x.shape[-3:-1]
        rows = [_geometry(xb.reshape(-1, c, mm, mm), h, w, bool(f), size, k == "mv")
                for xb, (h, w, f, _) in zip(x, boxes)]
        out[k] = torch.stack(rows).reshape(lead + (c, size, size))
    return out
