"""Figure 2: energy per video by partition (spiking, bridge, dense) under each energy
preset (45 nm fp32 / fp16 / int8, Loihi), stacked bars.

    python examples/energy_by_preset.py [--checkpoint CKPT] [--data DATA] [--out DIR]
"""
from _common import parser, profile, write

from deploy.presets import ENERGY_PRESETS
from hybrid.ondevice.energy import energy_by_preset, plot_energy


def main(argv=None) -> dict:
    args = parser(__doc__).parse_args(argv)
    *_, prof = profile(args)
    data = energy_by_preset(prof)
    numbers = {"videos": len(prof.videos), "views": prof.views, "energy_j": data,
               "presets": {n: p.to_dict() for n, p in ENERGY_PRESETS.items()}}
    write(args.out, "energy_by_preset", plot_energy(data, len(prof.videos), prof.views), numbers)
    return numbers


if __name__ == "__main__":
    main()
