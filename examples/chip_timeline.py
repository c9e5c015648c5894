"""Figures 5 and 6: one video through the hybrid chip's stages (a Gantt chart), and the
energy per video by stage under each accelerator / link preset.

    python examples/chip_timeline.py [--checkpoint CKPT] [--data DATA] [--sequences N]
        [--accelerator h100-sxm] [--precision fp16] [--link pcie4-x16] [--out DIR]

The spiking stage is SANA-FE's simulation (needs the `[chip]` extra) of the STMs'
layers 2..L driven by the first layer's Lava spikes on N sequences of the data; the
dense partition and the bridge are roofline / link estimates (deploy/hardware/report.py).
"""
from _common import dataset, load_model, parser, write

from deploy.hardware.targets import accelerator, link
from hybrid.ondevice.chip_report import (
    estimate,
    exported_stms,
    plot_energy_by_stage,
    plot_timeline,
    preset_variants,
)


def main(argv=None) -> dict:
    p = parser(__doc__)
    p.add_argument("--sequences", type=int, default=4)
    p.add_argument("--accelerator", default="h100-sxm")
    p.add_argument("--precision", default="fp16")
    p.add_argument("--link", default="pcie4-x16")
    args = p.parse_args(argv)
    model, _, _ = load_model(args)
    ds, _ = dataset(args, model)
    with exported_stms(model) as (paths, nets):
        rep = estimate(paths, nets, model.dense.cfg, ds, model.cfg.size,
                       accelerator(args.accelerator), args.precision, link(args.link),
                       args.sequences, data_is_cache=str(args.data).endswith(".h5"))
    variants = preset_variants(rep, model.dense.cfg)
    n = max(rep["sequences_simulated"].values())
    write(args.out, "chip_timeline", plot_timeline(rep), rep)
    write(args.out, "chip_energy_by_stage", plot_energy_by_stage(
        variants, f"Energy per video by stage (spiking: SANA-FE, {n} sequences per branch)"),
        {"variants": variants, "report": rep["per_video"]})
    return rep


if __name__ == "__main__":
    main()
