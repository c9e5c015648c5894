"""``hybrid profile``: spike-driven ACs against dense MACs per layer, and energy."""
from __future__ import annotations

import json
from pathlib import Path

import click

from hybrid.cli.common import (
    DEFAULT_VIDEO_SIZE,
    VIEWS_HELP,
    fold_option,
    json_option,
    progress_bar,
    user_errors,
    views_option,
)
from hybrid.cli.options import model_video_size_option


class PresetType(click.ParamType):
    """An energy preset: a built-in name, or a JSON file with the preset's keys."""

    name = "preset"

    def convert(self, value, param, ctx):
        from deploy.presets import EnergyPreset, PresetError, energy_preset

        if isinstance(value, EnergyPreset):
            return value
        try:
            return energy_preset(value)
        except PresetError as exc:
            self.fail(str(exc), param, ctx)


@click.command()
@click.argument("source", type=click.Path(exists=True))
@click.argument("data", type=click.Path(exists=True))
@click.option("--preset", type=PresetType(), default="45nm-fp32", show_default=True,
              help="Energy preset: 45nm-fp32 (the paper's), 45nm-fp16, 45nm-int8, loihi, "
                   "or a JSON file (keys name, mac_j, ac_j[, neuron_j, event_driven, source]).")
@views_option(default=None, help=VIEWS_HELP + " [default: the model's segments x 1]")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True)
@fold_option()
@click.option("--videos", type=click.IntRange(1), default=None,
              help="Profile only the first N videos of the split.")
@model_video_size_option
@click.option("--spikes", type=click.Choice(["torch", "lava"]), default=None,
              help="Spike source: the torch STMs (a checkpoint's numerics; a deploy "
                   "folder's STM files in fixed point), or the STMs on Lava fixed_pt (a "
                   "checkpoint's export; a deploy folder as `hybrid run` runs it) "
                   "[default: torch for a checkpoint, lava for a deploy folder].")
@click.option("--quant", type=click.Choice(["float", "qat"]), default=None,
              help="A checkpoint's torch STMs in float or fixed point (qat, bit-exact to "
                   "Lava) [default: the checkpoint's own].")
@json_option()
@click.option("--plots", type=click.Path(file_okay=False), default=None,
              help="Folder for ops_per_layer.png and energy_by_partition.png.")
def profile(source, data, preset, views, split, fold, videos, video_size, spikes, quant,
            as_json, plots):
    """Operations and energy of the model in SOURCE (a training checkpoint, or a `hybrid
    deploy` folder) on the videos of DATA (a dataset folder or a `hybrid prepare` cache),
    per layer and per video.

    Spiking layers count ACs from the spikes the STMs actually emit on these videos
    (exact fan-out per spike); the first STM layer (analog input), the bridge and the
    dense partition count MACs. Every view (clips x crops) of a video is counted.
    """
    from deploy.artifact.folder import ArtifactError, load_artifact
    from deploy.energy.render import render
    from hybrid.data.splits import SplitError
    from hybrid.ondevice.artifacts import reading_size
    from hybrid.ondevice.energy import (
        energy_by_preset,
        plot_energy,
        plot_ops,
        profile_artifact,
        profile_model,
        save,
    )
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.evaluate import load_model, open_views

    folder = Path(source).is_dir()
    if quant is not None and (folder or spikes == "lava"):
        raise click.BadParameter("applies to a checkpoint's torch STMs only (a deploy "
                                 "folder and --spikes lava are fixed point)",
                                 param_hint="--quant")
    spikes = spikes or ("lava" if folder else "torch")
    try:
        if folder:
            art = load_artifact(source)
            segments, size = art.inputs.segments, art.inputs.crop[0]
            video_size, warning = reading_size(art, video_size)
            if warning:
                click.echo(f"warning: {warning}", err=True)
        else:
            model, _, ckpt = load_model(source)
            segments, size = model.cfg.segments, model.cfg.size[0]
            video_size = video_size or tuple(ckpt.get("video_size") or DEFAULT_VIDEO_SIZE)
    except (ArtifactError, CheckpointError) as exc:
        raise click.ClickException(str(exc)) from exc
    s, c = views or (segments, 1)
    if s % segments:
        raise click.BadParameter(f"{s} segments is not a multiple of the model's "
                                 f"{segments}", param_hint="--views")
    with user_errors(SplitError):
        ds, _ = open_views(data, split, (s, c), segments, size, fold, video_size)
    try:
        if folder:
            prof = profile_artifact(art, ds, c, limit=videos, progress=progress_bar,
                                    spikes=spikes)
        else:
            prof = profile_model(model, ds, c, limit=videos, progress=progress_bar,
                                 spikes=spikes, quant=quant)
    except ValueError as exc:
        raise click.ClickException(f"{data}: {exc}") from exc
    rep = prof.report(preset)
    rep["source"], rep["spikes"] = ("deploy" if folder else "checkpoint"), spikes
    if not folder:
        rep["quant"] = quant or model.cfg.quant
    if plots:
        out = Path(plots)
        out.mkdir(parents=True, exist_ok=True)
        save(plot_ops(rep), out / "ops_per_layer.png")
        save(plot_energy(energy_by_preset(prof), rep["videos"], rep["views"]),
             out / "energy_by_partition.png")
        rep["plots"] = [str(out / "ops_per_layer.png"), str(out / "energy_by_partition.png")]
    click.echo(json.dumps(rep, indent=2) if as_json else render(rep))
