"""Figures 5 and 6: one video through the hybrid chip's stages (a Gantt chart), and the
energy per video by stage under each accelerator / link preset.

    python examples/chip_timeline.py [--checkpoint CKPT] [--data DATA] [--sequences N]
        [--accelerator h100-sxm] [--precision fp16] [--link pcie4-x16] [--out DIR]

The spiking stage is SANA-FE's simulation (needs the `[chip]` extra) of the STMs'
layers 2..L driven by the first layer's Lava spikes on N sequences drawn at random
(--seed) across the data; the host stages are measured on --host-videos videos; the
dense partition and the bridge are roofline / link estimates (deploy/hardware/report.py),
or, with --accelerator host-cpu, the dense partition measured with onnxruntime. Each
stage carries a 95 % interval, the spiking stage SANA-FE's calibration band.
"""
import tempfile
from pathlib import Path

from _common import dataset, load_model, parser, write

from ann.onnx_export import export_onnx
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--host-videos", type=int, default=6)
    args = p.parse_args(argv)
    model, _, ckpt = load_model(args)
    ds, _ = dataset(args, model, ckpt.get("video_size"))  # as the model was trained
    with exported_stms(model) as (paths, nets), tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(model.dense.eval(), Path(tmp) / "dense.onnx")
        rep = estimate(paths, nets, model.dense.cfg, ds, model.cfg.size,
                       accelerator(args.accelerator), args.precision, link(args.link),
                       args.sequences, seed=args.seed, host_videos=args.host_videos,
                       dense_onnx=onnx)
    variants = preset_variants(rep, model.dense.cfg)
    n = max(rep["sequences_simulated"].values())
    write(args.out, "chip_timeline", plot_timeline(rep), rep)
    write(args.out, "chip_energy_by_stage", plot_energy_by_stage(
        variants, f"Energy per video by stage (spiking: SANA-FE, {n} sequences per branch)"),
        {"variants": variants, "report": rep["per_video"]})
    return rep


if __name__ == "__main__":
    main()
