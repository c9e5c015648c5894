"""Figure 1: operations per layer, spike-driven ACs against dense MACs (log scale),
coloured by partition, for a checkpoint on its held-out videos.

    python examples/ops_per_layer.py [--checkpoint CKPT] [--data DATA] [--out DIR]
"""
from _common import parser, profile, write

from deploy.presets import energy_preset
from hybrid.ondevice.energy import plot_ops


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--preset", default="45nm-fp32", help="energy preset for the JSON's energies")
    args = p.parse_args(argv)
    *_, prof = profile(args)
    rep = prof.report(energy_preset(args.preset))
    write(args.out, "ops_per_layer", plot_ops(rep), rep)
    return rep


if __name__ == "__main__":
    main()
