"""Figure 3: firing rate of every STM layer at every timestep (P-frame), for the motion
vector and residual branches, mean over the held-out videos' sequences.

    python examples/firing_rates.py [--checkpoint CKPT] [--data DATA] [--out DIR]
"""
from _common import parser, profile, write

from deploy.presets import energy_preset
from hybrid.ondevice.energy import pyplot

BRANCHES = {"mv": "motion vectors", "r": "residuals"}


def main(argv=None) -> dict:
    args = parser(__doc__).parse_args(argv)
    *_, prof = profile(args)
    rep = prof.report(energy_preset("45nm-fp32"))
    rates = {m: {r["name"]: r["firing_rate_per_step"] for r in rep["layers"]
                 if r["name"].startswith(f"stm.{m}.")} for m in BRANCHES}
    rates = {m: v for m, v in rates.items() if v}
    plt = pyplot()
    fig, axes = plt.subplots(1, len(rates), figsize=(5.2 * len(rates), 3.8), squeeze=False,
                             sharey=True)
    for ax, (m, layers) in zip(axes[0], rates.items()):
        for name, r in layers.items():
            ax.plot(range(1, len(r) + 1), r, marker="o", ms=3, label=f"layer {name[-1]}")
        ax.set(title=f"STM, {BRANCHES[m]}", xlabel="timestep (P-frame)",
               ylabel="spikes per neuron per step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"Firing rate per STM layer ({rep['videos']} videos, views {rep['views']})",
                 fontsize=10)
    fig.tight_layout()
    numbers = {"videos": rep["videos"], "views": rep["views"], "firing_rate_per_step": rates}
    write(args.out, "firing_rates", fig, numbers)
    return numbers


if __name__ == "__main__":
    main()
