"""The explain figure (the paper's Fig. 5 layout): a row per segment, per modality the
input as the model saw it and the heat map overlaid on it (I-frame | motion vectors as
a flow-colour image | residual)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from hybrid.explain.maps import MODALITY_NAMES, Explanation


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


def colour_scales(expl: Explanation) -> tuple[dict[str, np.ndarray], dict[str, float], str]:
    """The heat maps as the figure colours them: (normalised heat per modality, in
    [0, 1]; the value 1 stands for, per modality; what the values are and which scale).

    ``gradcam``: one scale for the whole figure, so that modalities compare. Each map is
    first made a density per crop pixel (its value x its feature cells / crop pixels):
    Grad-CAM's sum over a map's cells is its linear estimate of the modality's share of
    the logit, whatever the map's resolution (the I-frame's 4x4 tokens, the STM's finer
    grid), so per pixel the three are in the same unit (logit / px).
    ``saliency``: the gradients are with respect to different inputs (normalised pixels,
    STM voltages) with no common unit: one scale per modality, across its segments."""
    scaled, unit = {}, {}
    for m, h in expl.heat.items():
        if expl.method == "gradcam":
            cells, pixels = np.prod(expl.maps[m].shape[-2:]), np.prod(h.shape[-2:])
            scaled[m], unit[m] = h * (cells / pixels), "logit / px"
        else:
            scaled[m], unit[m] = h, ""
    if expl.method == "gradcam":
        top = max(float(v.max()) for v in scaled.values())
        tops = dict.fromkeys(scaled, top)
        what = ("Grad-CAM per crop pixel / the figure's max: one colour scale for the whole "
                "figure (comparable across modalities and segments)")
    else:
        tops = {m: float(v.max()) for m, v in scaled.items()}
        what = ("saliency max |dy/dA| / the modality's max: one colour scale per modality "
                "across segments (the modalities' gradients have different units)")
    norm = {m: v / tops[m] if tops[m] > 0 else np.zeros_like(v) for m, v in scaled.items()}
    return norm, tops, what


def figure(expl: Explanation, title: str = ""):
    """The figure: a row per segment (labelled with the GOP it shows); per modality the
    input and its heat map (jet, alpha 0.5, :func:`colour_scales`) over the input in grey;
    colour bars stating what 1 stands for."""
    from hybrid.ondevice.energy import pyplot

    plt = pyplot()
    mods = list(expl.heat)
    S = next(iter(expl.heat.values())).shape[0]
    base = _base_images(expl)
    norm, tops, what = colour_scales(expl)
    gops = expl.meta.get("gops")  # the GOP each segment shows (they repeat in short videos)
    fig, axes = plt.subplots(S, 2 * len(mods), figsize=(2.0 * 2 * len(mods), 2.0 * S + 1.6),
                             squeeze=False, layout="constrained")
    shown = {}
    for j, m in enumerate(mods):
        img, name = base[m]
        for s in range(S):
            a, b = axes[s, 2 * j], axes[s, 2 * j + 1]
            a.imshow(img[s], interpolation="nearest")
            # the overlay on the input's grey values, so that the heat colours stay
            # readable on the flow-colour image too
            b.imshow(img[s].mean(-1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            shown[m] = b.imshow(norm[m][s], cmap="jet", alpha=0.5, vmin=0, vmax=1,
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
    if expl.method == "gradcam":  # one bar for the figure
        bar = fig.colorbar(shown[mods[0]], ax=axes, location="bottom", shrink=0.5,
                           aspect=40, pad=0.02)
        bar.set_label(f"normalised Grad-CAM attribution (1 = the max, {tops[mods[0]]:.3g} "
                      "logit / px)", fontsize=8)
        bar.ax.tick_params(labelsize=7)
    else:  # one bar under each modality's heat column
        for j, m in enumerate(mods):
            bar = fig.colorbar(shown[m], ax=axes[:, 2 * j:2 * j + 2], location="bottom",
                               shrink=0.5, aspect=15, pad=0.02)
            bar.set_label(f"normalised |dy/dA| (1 = the max, {tops[m]:.3g})", fontsize=7)
            bar.ax.tick_params(labelsize=7)
    p = float(expl.probabilities[expl.class_index])
    fig.suptitle(f"{title + ': ' if title else ''}class {expl.class_name!r} "
                 f"(p = {p:.2f}), {expl.method}\ncolour: {what}", fontsize=8)
    return fig, plt


def plot(expl: Explanation, path: str | Path, title: str = "") -> Path:
    """Write :func:`figure` as a PNG (atomically)."""
    from deploy.atomic import write_file

    fig, plt = figure(expl, title)
    try:
        return write_file(path, lambda f: fig.savefig(f, format="png", dpi=110))
    finally:
        plt.close(fig)
