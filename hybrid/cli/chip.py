"""``hybrid chip``: time and energy of every stage of a video on the hybrid chip."""
from __future__ import annotations

import json
from pathlib import Path

import click

from hybrid.cli.common import fold_option, json_option, progress_bar
from hybrid.cli.options import model_video_size_option


class TargetType(click.ParamType):
    """A preset of deploy/hardware/targets.py by name (accelerator or link)."""

    def __init__(self, kind: str):
        self.kind = kind
        self.name = kind

    def convert(self, value, param, ctx):
        from deploy.hardware import targets
        from deploy.presets import PresetError

        if not isinstance(value, str):
            return value
        try:
            return getattr(targets, self.kind)(value)
        except PresetError as exc:
            self.fail(str(exc), param, ctx)


class BoardType(click.ParamType):
    """A neuromorphic system preset of deploy/hardware/boards.py by name."""

    name = "board"

    def convert(self, value, param, ctx):
        from deploy.hardware.boards import board
        from deploy.presets import PresetError

        if not isinstance(value, str):
            return value
        try:
            return board(value)
        except PresetError as exc:
            self.fail(str(exc), param, ctx)


@click.command(name="chip")
@click.argument("artifact", type=click.Path())
@click.argument("data", type=click.Path(exists=True))
@click.option("--neuro", type=click.Choice(["loihi"]), default="loihi", show_default=True,
              help="Neurocore architecture for SANA-FE (its own loihi.yaml, inputs moved "
                   "to 4 tiles: deploy/hardware/neurocores/loihi_arch.py) and the energy preset "
                   "of the first "
                   "STM layer.")
@click.option("--board", type=BoardType(), multiple=True,
              help="Neuromorphic system the STMs are placed on: loihi (one chip), "
                   "kapoho-bay (2 chips), nahuku-32 (32 chips) (deploy/hardware/boards.py). "
                   "Default: one chip when a copy of the STMs fits it, else nahuku-32; too "
                   "few chips: one chip time-multiplexed with weight reloads. Several with "
                   "--sweep (default there: every Loihi board).")
@click.option("--accelerator", type=TargetType("accelerator"), multiple=True,
              default=["h100-sxm"], show_default=True,
              help="Accelerator of the dense partition: h100-sxm, a100-sxm, jetson-orin, "
                   "tianjic-ann (deploy/hardware/targets.py names each source), or host-cpu: "
                   "this machine, measured with onnxruntime on the artifact's dense.onnx. "
                   "Several with --sweep.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "int8"]), multiple=True,
              default=["fp16"], show_default=True,
              help="Precision of the dense partition. Several with --sweep.")
@click.option("--link", type=TargetType("link"), multiple=True, default=["pcie4-x16"],
              show_default=True,
              help="Link carrying the bridge: pcie4-x16, 10gbe, on-chip. Several with --sweep.")
@click.option("--batch", type=click.IntRange(1), multiple=True, default=[1], show_default=True,
              help="With --sweep: videos pipelined through the stages, the accelerator "
                   "running this many at a time (deploy/hardware/sweep.py). Several allowed.")
@click.option("--sweep", is_flag=True,
              help="Record the spikes and simulate the neurocores once, then cost every "
                   "combination of --board, --accelerator, --precision, --link and --batch "
                   "given; writes chip_sweep.json, chip_sweep.txt and chip_pareto.png "
                   "(latency against energy per video, the paper's GPU point beside) into "
                   "--plot DIR.")
@click.option("--sequences", type=click.IntRange(1), default=4, show_default=True,
              help="P-frame sequences per STM branch to simulate (about a second each "
                   "at 2x56x56 on SANA-FE).")
@fold_option("Split whose test videos are read (as hybrid run).")
@model_video_size_option
@click.option("--seed", type=int, default=0, show_default=True,
              help="Draws the simulated sequences and the videos timed on the host.")
@click.option("--host-videos", type=click.IntRange(1), default=6, show_default=True,
              help="Videos whose host stages (transcode, extraction) are timed, warm.")
@click.option("--threads", type=click.IntRange(1), default=1, show_default=True,
              help="onnxruntime threads for the host-cpu accelerator.")
@click.option("--host-batch", type=click.IntRange(1), default=8, show_default=True,
              help="Pipelined batch at which host-cpu is also measured (onnxruntime).")
@json_option()
@click.option("--plot", type=click.Path(file_okay=False), default=None,
              help="Folder for chip_timeline.png (a Gantt chart of one video).")
def chip_cmd(artifact, data, neuro, board, accelerator, precision, link, batch, sweep,
             sequences, fold, video_size, seed, host_videos, threads, host_batch, as_json,
             plot):
    """Time and energy per video on the hybrid chip: extraction on the host (measured),
    the STMs on neurocores (simulated by SANA-FE, an optional extra), the bridge over a
    link and the dense partition on an accelerator (estimated), latency and pipelined
    throughput, and whether the model fits a Tianjic chip.

    ARTIFACT: a `hybrid deploy` folder. Its mapping.json places the STMs' neurons on
    cores when it maps onto --neuro's chip (`hybrid deploy --chip loihi`); one for another
    chip (the default loihi2) is not reused: a note on stderr names both chips and a
    mapping for --neuro is computed. DATA: a dataset folder or a `hybrid prepare`
    cache (its test split, as `hybrid run`), or one video.
    """
    from deploy.artifact.folder import ArtifactError, load_artifact
    from deploy.hardware.boards import BOARDS
    from deploy.hardware.sweep import Axes

    if sweep:
        if not plot:
            raise click.UsageError("--sweep writes chip_sweep.json, chip_sweep.txt and "
                                   "chip_pareto.png into --plot DIR: give one")
        try:
            axes = Axes(list(board) or [b for b in BOARDS.values()
                                        if b.chip == neuro and b.simulated],
                        list(accelerator), list(dict.fromkeys(precision)), list(link),
                        list(dict.fromkeys(batch)))
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    else:
        for name, vals in (("board", board), ("accelerator", accelerator),
                           ("precision", precision), ("link", link), ("batch", batch)):
            if len(vals) > 1:
                raise click.BadParameter(f"{len(vals)} given; several only with --sweep",
                                         param_hint=f"--{name}")
        if batch != (1,):
            raise click.BadParameter("the report is of one video (batch 1); other batches "
                                     "only with --sweep", param_hint="--batch")
        board, accelerator, precision, link = (board[0] if board else None, accelerator[0],
                                               precision[0], link[0])
        if (accelerator.name == "host-cpu" and click.get_current_context()
                .get_parameter_source("precision").name == "DEFAULT"):
            precision = "fp32"  # what onnxruntime runs on a CPU
    from deploy.hardware.neurocores.simulation import MissingExtra, stock_loihi
    from hybrid.data.splits import SplitError
    from hybrid.ondevice.artifacts import open_input, reading_size
    from neuro.export import StmFileError

    try:
        stock_loihi()  # SANA-FE installed, and its Loihi file one chip_arch reads
    except MissingExtra as exc:
        raise click.ClickException(str(exc)) from None
    try:
        art = load_artifact(artifact)
        nets = dict(art.networks)  # read from the bytes load_artifact verified
        paths = nets  # what the Lava runs build (never the folder's files again)
        mpath, mapping = art.mapping_path, art.mapping
        dense_cfg = art.dense_torch().cfg
    except (ArtifactError, StmFileError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    if not nets:
        raise click.ClickException(f"{artifact}: the artifact has no spiking partition")
    if not sweep and board is not None and (board.chip != neuro or not board.simulated):
        raise click.BadParameter(
            f"{board.name} ({board.title}) holds {board.chip!r} chips, which have no published "
            f"per-event figures; the neurocore simulation models {neuro!r} (SANA-FE's "
            "loihi.yaml): choose loihi, kapoho-bay or nahuku-32", param_hint="--board")
    if not sweep and precision not in accelerator.peak_ops:
        raise click.BadParameter(f"{accelerator.name} has no {precision} peak; choose "
                                 f"{', '.join(accelerator.peak_ops)}", param_hint="--precision")
    video_size, warning = reading_size(art, video_size)
    if warning:
        click.echo(f"warning: {warning}", err=True)
    try:
        ds, _, _ = open_input(art, data, fold, video_size)
    except (SplitError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    from deploy.hardware.neurocores.simulation import tilings_from_mapping
    from deploy.hardware.render import render
    from hybrid.ondevice.chip_report import estimate, mapping_note, plot_timeline
    from hybrid.ondevice.energy import save

    note = mapping_note(mapping, neuro, str(mpath))
    if note:  # remapped: say so before the simulation, on stderr (stdout may be --json)
        click.echo(f"note: {note}", err=True)
    elif mapping is not None:
        try:
            for m, net in nets.items():
                tilings_from_mapping(mapping, m, len(net.layers))
        except ValueError as exc:
            raise click.ClickException(f"{mpath}: {exc}") from None

    if sweep:
        _sweep(paths, nets, dense_cfg, ds, art, axes, sequences, mapping, neuro, data, plot,
               as_json)
        return
    try:
        rep = estimate(paths, nets, dense_cfg, ds, art.inputs.crop, accelerator, precision,
                       link, sequences, mapping, neuro, bridge_bytes=art.bridge_bytes_per_video,
                       progress=progress_bar, board=board, seed=seed, host_videos=host_videos,
                       dense_onnx=art.blobs["dense-onnx"], threads=threads, batch=host_batch)
    except ValueError as exc:
        raise click.ClickException(f"{data}: {exc}") from None
    if plot:
        out = Path(plot)
        out.mkdir(parents=True, exist_ok=True)
        save(plot_timeline(rep), out / "chip_timeline.png")
        rep["plots"] = [str(out / "chip_timeline.png")]
    click.echo(json.dumps(rep, indent=2) if as_json else render(rep))


def _sweep(paths, nets, dense_cfg, ds, art, axes, sequences, mapping, neuro, data, plot,
           as_json):
    from deploy.hardware.sweep import table
    from hybrid.ondevice import sweep as sw

    try:
        sw.runnable(axes, neuro)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        res = sw.run(paths, nets, dense_cfg, ds, art.inputs.crop, axes, sequences, mapping,
                     neuro, art.bridge_bytes_per_video, progress=progress_bar,
                     dense_onnx=art.blobs["dense-onnx"])
    except ValueError as exc:
        raise click.ClickException(f"{data}: {exc}") from None
    files = sw.write(res, Path(plot))
    if as_json:
        click.echo(json.dumps(res | {"files": [str(f) for f in files]}, indent=2))
        return
    click.echo(table(res["points"]))
    click.echo(f"\n{len(res['points'])} of {res['combinations']} combinations "
               f"({len(res['skipped'])} cannot run: see chip_sweep.json); recording the spikes "
               f"and simulating the neurocores {res['record_s']:.1f} s, evaluating every "
               f"combination {res['evaluate_s']:.2f} s; * Pareto-optimal")
    click.echo("wrote " + ", ".join(str(f) for f in files))
