"""Figure 7: does the STM filter sensor noise and camera jitter? The appendix's claim
(Sec. 2, Fig. 1) measured on synthetic clips: STM output spike rate and
membrane-potential energy inside the moving object against outside it, beside the same
measure of the accumulated MVs (what the model without STM sees), as noise rises.

    python examples/stm_denoising.py [--checkpoint CKPT] [--clips 14] [--rates ...]
                                     [--video-size 128x96] [--out DIR]

The method and its noise model: ``hybrid/explain/denoise.py``. The STM is the
checkpoint's MV STM with its trained weights, thresholds and leaks.
"""
import sys

from _common import load_model, parser, write

from hybrid.explain.denoise import KINDS, clean_clips, sweep
from hybrid.ondevice.energy import pyplot

MEASURES = {"stm_spike_rate": ("STM spikes (last layer)", "tab:red"),
            "stm_v_energy": ("STM membrane-potential energy", "tab:purple"),
            "mv_event_rate": ("MV events (no STM)", "tab:orange"),
            "mv_energy": ("accumulated MV energy (no STM)", "tab:gray")}


def main(argv=None) -> dict:
    p = parser(__doc__, data=False)
    p.add_argument("--clips", type=int, default=14, help="synthetic one-GOP clips")
    p.add_argument("--repeats", type=int, default=2, help="noise draws per clip and rate")
    p.add_argument("--rates", default="0,0.02,0.05,0.1,0.2,0.4",
                   help="noise events per P-frame (per block for sensor noise)")
    p.add_argument("--video-size", default="128x96",
                   help="WIDTHxHEIGHT of the clips: the model's training videos' "
                        "[default: the demo's 128x96]")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")]
    size = tuple(int(v) for v in args.video_size.lower().split("x"))
    model, _, _ = load_model(args)
    if not model.cfg.spiking or "mv" not in model.cfg.modalities:
        raise SystemExit(f"{args.checkpoint}: the model has no MV STM "
                         f"(temporal {model.cfg.temporal!r}, modalities {model.cfg.modalities})")
    clips = clean_clips(model, args.clips, size, args.seed)

    def progress(kind, r):
        print(f"  {kind} noise at rate {r}: done", file=sys.stderr)

    res = sweep(model, clips, rates, args.repeats, args.seed, progress)
    neuron = [b.neuron for b in model.stm_mv.stm.blocks]
    numbers = {"checkpoint": args.checkpoint, "video_size": list(size),
               "crop": list(model.cfg.size), "clips": [c.label for c in clips],
               "object_area": float(sum(c.inside.mean() for c in clips) / len(clips)),
               "repeats": args.repeats, "rates": rates,
               "stm_mv_threshold": [float(n.threshold.detach()) for n in neuron],
               "stm_mv_leak": [float(n.leak.detach()) for n in neuron],
               "source": "appendix Sec. 2 (Fig. 1): the claim; the measure is ours",
               "results": res}

    plt = pyplot()
    fig, axes = plt.subplots(len(KINDS), 2, figsize=(11, 10.5), squeeze=False)
    for i, kind in enumerate(KINDS):
        rows = res[kind]
        a, b = axes[i]
        for name, (label, colour) in MEASURES.items():
            ref = rows[0][name]["inside"] or 1.0  # the clean object's value
            a.plot(rates, [r[name]["inside"] / ref for r in rows], "-o", color=colour,
                   label=f"{label}: inside")
            a.plot(rates, [r[name]["outside"] / ref for r in rows], "--s", color=colour,
                   label="outside", markersize=4)
            b.plot(rates, [r[name]["selectivity"] for r in rows], "-o", color=colour, label=label)
        a.set(xlabel=f"{kind} noise rate (events per P-frame)", yscale="log",
              ylabel="relative to the clean object (inside)",
              title=f"{kind}: inside (solid) and outside (dashed) the object")
        b.axhline(0.5, color="k", lw=0.6, ls=":")
        b.set(xlabel=f"{kind} noise rate (events per P-frame)", ylim=(0.4, 1.02),
              ylabel="selectivity inside / (inside + outside)",
              title=f"{kind}: selectivity (0.5 = no preference)")
        if i == 0:
            a.legend(fontsize=6.5, ncol=2)
            b.legend(fontsize=7)
    fig.suptitle(f"STM denoising on {len(clips)} synthetic clips (object "
                 f"{100 * numbers['object_area']:.0f} % of the crop), MV STM thresholds "
                 f"{', '.join(f'{t:.2f}' for t in numbers['stm_mv_threshold'])}, leaks "
                 f"{', '.join(f'{v:.2f}' for v in numbers['stm_mv_leak'])}", fontsize=9)
    fig.tight_layout()
    write(args.out, "stm_denoising", fig, numbers)
    return numbers


if __name__ == "__main__":
    main()
