"""The explain figure (the paper's Fig. 5 layout): a row per segment, per modality the
input as the model saw it and the heat map overlaid on it (I-frame | motion vectors as
a flow-colour image | residual)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybrid.explain import MODALITY_NAMES, Explanation


def flow_to_rgb(mv: np.ndarray, max_mag: float | None = None) -> np.ndarray:
    """(..., H, W, 2) motion (x right, y down) -> (..., H, W, 3) float RGB in [0, 1]:
    hue = direction, saturation = magnitude / ``max_mag`` (default: the largest),
    white = no motion (the Middlebury flow convention)."""
    from matplotlib.colors import hsv_to_rgb

    mag = np.hypot(mv[..., 0], mv[..., 1])
    top = float(mag.max()) if max_mag is None else float(max_mag)
    hue = (np.arctan2(-mv[..., 1], mv[..., 0]) / (2 * np.pi)) % 1.0  # 0 = right, 1/4 = up
    sat = np.clip(mag / top, 0, 1) if top > 0 else np.zeros_like(mag)
    return hsv_to_rgb(np.stack([hue, sat, np.ones_like(mag)], -1))


def residual_to_rgb(res: np.ndarray) -> np.ndarray:
    """(..., 3) residual in RGB units -> float RGB in [0, 1], 0 at mid grey (128)."""
    return np.clip(res + 128.0, 0, 255) / 255.0


def _base_images(expl: Explanation) -> dict[str, tuple[np.ndarray, str]]:
    inp = expl.inputs
    mag = float(np.hypot(inp["mv"][..., 0], inp["mv"][..., 1]).max())
    return {"i": (inp["iframe"] / 255.0, "I-frame"),
            "mv": (flow_to_rgb(inp["mv"], mag), f"MV (flow colour, max {mag:.1f} px)"),
            "r": (residual_to_rgb(inp["residual"]), "residual")}


def plot(expl: Explanation, path: str | Path, title: str = "") -> Path:
    """Write the figure: a row per segment; per modality the input and its heat map
    (jet, alpha 0.5, scaled to the modality's largest value over all segments) over the
    input in grey."""
    from hybrid.profiling import pyplot

    plt = pyplot()
    mods = list(expl.heat)
    S = next(iter(expl.heat.values())).shape[0]
    base = _base_images(expl)
    gops = expl.meta.get("gops")  # the GOP each segment shows (they repeat in short videos)
    fig, axes = plt.subplots(S, 2 * len(mods), figsize=(2.0 * 2 * len(mods), 2.0 * S + 0.6),
                             squeeze=False)
    for j, m in enumerate(mods):
        img, name = base[m]
        top = float(expl.heat[m].max())
        for s in range(S):
            a, b = axes[s, 2 * j], axes[s, 2 * j + 1]
            a.imshow(img[s], interpolation="nearest")
            # the overlay on the input's grey values, so that the heat colours stay
            # readable on the flow-colour image too
            b.imshow(img[s].mean(-1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            b.imshow(expl.heat[m][s], cmap="jet", alpha=0.5, vmin=0, vmax=top or 1.0,
                     interpolation="bilinear")
            if s == 0:
                a.set_title(name, fontsize=8)
                b.set_title(f"{MODALITY_NAMES[m]}: {expl.method}", fontsize=8)
            if j == 0:
                n = expl.meta.get("num_gops")
                a.set_ylabel(f"segment {s}" + (f"\nGOP {gops[s]} (0..{n - 1})" if gops else ""),
                             fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    p = float(expl.probabilities[expl.class_index])
    fig.suptitle(f"{title + ': ' if title else ''}class {expl.class_name!r} "
                 f"(p = {p:.2f}), {expl.method}", fontsize=9)
    fig.tight_layout()
    from deploy.atomic import write_file

    try:
        return write_file(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
