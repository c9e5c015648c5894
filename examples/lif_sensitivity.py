"""Figure 5: the LIF's temporal sensitivity (the appendix's Fig. 1): membrane potential
and spikes of one neuron with a trained model's threshold and leak, for a low-rate and
a high-rate train of equal input pulses.

    python examples/lif_sensitivity.py [--checkpoint CKPT] [--layer stm_mv.1] [--out DIR]

The pulse amplitude is chosen from the neuron's own threshold and leak so that pulses
every ``--high`` steps reach the threshold and pulses every ``--low`` steps decay away
first (the window is a * [1 - (1 - leak)^p] >= threshold for period p).
"""
import torch
from _common import load_model, parser, write

from hybrid.ondevice.energy import pyplot
from neuro.neuron import lif_dynamics


def main(argv=None) -> dict:
    p = parser(__doc__, data=False)
    p.add_argument("--layer", default="stm_mv.1", help="BRANCH.LAYER, branch stm_mv or stm_res")
    p.add_argument("--low", type=int, default=5, help="low rate: a pulse every N steps")
    p.add_argument("--high", type=int, default=2, help="high rate: a pulse every N steps")
    p.add_argument("--steps", type=int, default=44)
    args = p.parse_args(argv)
    assert 1 <= args.high < args.low, "--high must be a shorter period than --low"
    model, _, _ = load_model(args)
    branch, k = args.layer.split(".")
    neuron = getattr(model, branch).stm.blocks[int(k) - 1].neuron
    theta, leak = float(neuron.threshold.detach()), float(neuron.leak.detach())

    def reach(period):  # the peak a pulse train of unit pulses settles to, per unit amplitude
        return 1 / (1 - (1 - leak) ** period)

    amp = theta * 2 / (reach(args.high) + reach(args.low))  # between the two windows
    runs = {}
    for name, period in (("low", args.low), ("high", args.high)):
        a = torch.zeros(args.steps)
        a[::period] = amp
        s, v = lif_dynamics(a, torch.tensor(theta), torch.tensor(leak), neuron.width)
        runs[name] = {"period": period, "input": a.tolist(), "v": v.tolist(),
                      "spikes": [int(t) for t in torch.nonzero(s).flatten()]}
    plt = pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(7.0, 5.2), sharex=True)
    for ax, (name, r) in zip(axes, runs.items()):
        xs, ys = [], []  # each step: the potential before the reset, then after it
        for t, v in enumerate(r["v"]):
            xs += [t, t]
            ys += [v + theta * (t in r["spikes"]), v]
        ax.plot(xs, ys, color="tab:blue", lw=1.2, label="membrane potential v")
        ax.axhline(theta, color="tab:red", ls="--", lw=1, label=f"threshold {theta:.3f}")
        ax.vlines([i for i, x in enumerate(r["input"]) if x], 0, amp, color="tab:gray",
                  lw=1.5, alpha=0.6, label=f"input pulse {amp:.3f}")
        ax.scatter(r["spikes"], [theta * 1.15] * len(r["spikes"]), marker="v",
                   color="black", label="output spike", zorder=3)
        ax.set(ylabel="v", title=f"{name}-rate input, a pulse every {r['period']} steps: "
               f"{len(r['spikes'])} spikes")
        ax.set_ylim(min(-0.05 * theta, min(r["v"]) - 0.05), theta * 1.3)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    h2, l2 = axes[1].get_legend_handles_labels()
    handles += [h for h, lab in zip(h2, l2) if lab not in labels]
    labels += [lab for lab in l2 if lab not in labels]
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=8)
    axes[-1].set_xlabel("timestep")
    fig.suptitle(f"LIF temporal sensitivity, {args.layer} of {args.checkpoint} "
                 f"(leak {leak:.3f}, threshold {theta:.3f})", fontsize=9)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    numbers = {"layer": args.layer, "threshold": theta, "leak": leak, "amplitude": amp,
               "runs": runs}
    write(args.out, "lif_sensitivity", fig, numbers)
    return numbers


if __name__ == "__main__":
    main()
