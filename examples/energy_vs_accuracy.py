"""Figure 4: energy per video against top-1 accuracy, our model beside the paper's
comparison rows (as the paper's Fig. 6).

    python examples/energy_vs_accuracy.py [--checkpoint CKPT] [--data DATA] [--out DIR]

Our point is measured here: energy from the profile (the paper's 45 nm fp32 preset),
accuracy on DATA's split. The other points are the paper's UCF-101 table (energy per
video in J, top-1 %), not measured here: on another dataset (such as the synthetic
demo set) the accuracies do not compare.
"""
from _common import parser, profile, write

from deploy.presets import PAPER_PRESET, energy_preset
from hybrid.ondevice.energy import pyplot
from hybrid.training.evaluate import evaluate

# The paper's UCF-101 table (Das Biswas et al.): (energy J per video, top-1 %, views).
PAPER_ROWS = {"CoViAR": (3.422, 90.4, "8x10"), "TEAM-Net": (3.714, 94.3, "8x10"),
              "MIMO": (3.709, 89.2, "8x1"), "MM-ViT": (82.801, 93.3, "8x3"),
              "the paper (Ours)": (0.734, 95.6, "8x1")}
SOURCE = "Das Biswas et al., UCF-101 table (energy per video, top-1); secondary for ours"


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--label", default=None, help="our point's label [default: the data path]")
    args = p.parse_args(argv)
    model, classes, ds, crops, prof = profile(args)
    rep = prof.report(energy_preset(PAPER_PRESET))
    acc = evaluate(model, ds, classes, n_crops=crops)
    ours = {"energy_j": rep["per_video"]["energy_j"]["mean"], "top1": 100 * acc["top1"],
            "videos": acc["videos"], "views": rep["views"],
            "paper_reading_energy_j": rep["paper_reading"]["energy_j"]}
    label = args.label or f"this model on {args.data}"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.6, 4.4))
    for name, (e, a, _) in PAPER_ROWS.items():
        ax.scatter(e, a, s=60, color="tab:red" if "paper" in name else "tab:gray", zorder=3)
        ax.annotate(name, (e, a), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.scatter(ours["energy_j"], ours["top1"], s=90, marker="*", color="tab:blue", zorder=4)
    ax.annotate(f"{label}\n({ours['videos']} videos, views {ours['views']})",
                (ours["energy_j"], ours["top1"]), textcoords="offset points", xytext=(6, -22),
                fontsize=8, color="tab:blue")
    ax.set_xscale("log")
    ax.set_ylim(min(ours["top1"], 85) - 10, 100)
    ax.set(xlabel="energy per video (J, 45 nm fp32; log)", ylabel="top-1 accuracy (%)",
           title="Energy vs accuracy (grey/red: the paper's UCF-101 table)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    numbers = {"ours": ours | {"label": label},
               "paper_rows": {k: {"energy_j": e, "top1": a, "views": v}
                              for k, (e, a, v) in PAPER_ROWS.items()},
               "source": SOURCE, "preset": PAPER_PRESET}
    write(args.out, "energy_vs_accuracy", fig, numbers)
    return numbers


if __name__ == "__main__":
    main()
