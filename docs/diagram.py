"""Draw the model's two partitions and the bridge: ``docs/_static/architecture.png``.

Run ``python docs/diagram.py`` after changing what the picture shows; the README and the
docs site show the PNG it writes."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parent / "_static" / "architecture.png"
HOST, SPIKE, BRIDGE, DENSE = "#e8e8e8", "#fde2c8", "#d9ecd0", "#cfe0f5"


def box(ax, x, y, w, h, colour, title, lines=(), edge="#444444"):
    ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=colour, edgecolor=edge, linewidth=1.2))
    ax.text(x + w / 2, y + h - 0.22, title, ha="center", va="top", fontsize=11,
            fontweight="bold")
    for k, line in enumerate(lines):
        ax.text(x + w / 2, y + h - 0.62 - 0.3 * k, line, ha="center", va="top", fontsize=8.5)


def arrow(ax, a, b, text="", dy=0.12):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=14, linewidth=1.3,
                                 color="#333333"))
    if text:
        ax.text((a[0] + b[0]) / 2, (a[1] + b[1]) / 2 + dy, text, ha="center", va="bottom",
                fontsize=8, color="#222222")


def main() -> None:
    fig, ax = plt.subplots(figsize=(13, 5.6), dpi=110)
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 5.9)
    ax.axis("off")

    box(ax, 0.2, 1.5, 2.3, 2.6, HOST, "host: reader",
        ["MPEG-4 Part 2, GOP 12", "no full decode:", "I-frames, motion vectors,", "residuals",
         "(hybrid.video)"])
    box(ax, 3.3, 2.95, 3.5, 2.2, SPIKE, "spiking partition",
        ["STM per modality: 3 conv-LIF layers", "soft reset, learned threshold + leak",
         "over the 11 P-frames of a GOP", "trained: lava-dl SLAYER (neuro)",
         "runs: Lava fixed_pt = Loihi bit-exact"])
    box(ax, 7.3, 2.95, 1.95, 2.2, BRIDGE, "bridge",
        ["last layer's", "membrane potentials", "v = v_int / v_scale", "one code path:",
         "training = deployment"])
    box(ax, 9.8, 0.35, 3.0, 4.8, DENSE, "dense partition",
        ["patch embeddings (4x4 grid)", "unified transformer", "multi-modal mixer", "RRDB",
         "classifier", "", "trained: PyTorch (ann)", "runs: onnxruntime"])
    box(ax, 3.3, 0.35, 5.85, 1.35, "#f6f6f6", "energy profiler and chip estimates",
        ["ACs from the spikes the STMs emit, MACs of the dense partition (deploy.energy)",
         "cores (mapping), SANA-FE neurocores, link, accelerator roofline (deploy.hardware)"],
        edge="#888888")

    arrow(ax, (2.5, 3.75), (3.3, 3.75), "MV, residual")
    arrow(ax, (6.8, 4.05), (7.3, 4.05))
    arrow(ax, (9.25, 4.05), (9.8, 4.05))
    ax.add_patch(FancyArrowPatch((2.5, 2.1), (9.8, 2.6), connectionstyle="arc3,rad=-0.12",
                                 arrowstyle="-|>", mutation_scale=14, linewidth=1.3,
                                 color="#333333"))
    ax.text(6.0, 2.55, "I-frames", fontsize=8, ha="center")
    arrow(ax, (11.3, 0.35), (11.3, 0.05))
    ax.text(11.45, 0.1, "class scores", fontsize=8, va="center")
    ax.text(0.2, 5.85, "hybrid: one model, two partitions, one bridge", fontsize=13,
            fontweight="bold", va="top")
    OUT.parent.mkdir(exist_ok=True)
    fig.savefig(OUT, bbox_inches="tight", facecolor="white")
    print(OUT)


if __name__ == "__main__":
    main()
