"""``hybrid deploy`` (checkpoint -> partitioned artifact) and ``hybrid run`` (an artifact
on the simulated hybrid chip)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from hybrid.cli.common import fold_option, json_option
from hybrid.cli.map import CHIP_NAMES
from hybrid.cli.options import model_video_size_option


@click.command()
@click.argument("checkpoint", type=click.Path(dir_okay=False))
@click.option("-o", "--out", type=click.Path(file_okay=False), required=True,
              help="Artifact folder to write (must not exist, unless --force).")
@click.option("--force", is_flag=True, help="Replace an existing OUT, an earlier artifact "
                                            "(once the new one is complete).")
@click.option("--chip", type=click.Choice(CHIP_NAMES), default="loihi2", show_default=True,
              help="Chip preset the STMs are mapped onto (mapping.json; see `hybrid map`).")
@click.option("--nir", "with_nir", is_flag=True,
              help="Also export each STM branch as NIR (stm_mv.nir, stm_r.nir; `nir` extra).")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
def deploy(checkpoint, out, force, chip, with_nir, as_json):
    """Cut the trained model in CHECKPOINT at its partition boundary and write one
    artifact folder: a Lava-ready HDF5 per STM, the dense partition as ONNX and torch
    files, the bridge and input specs, the class names, the STMs' core mapping
    (mapping.json), with --nir their NIR graphs, and a checksummed manifest."""
    from deploy.artifact.folder import ArtifactError
    from hybrid.ondevice.artifacts import NotDeployable, deploy_checkpoint
    from hybrid.training.checkpoint import CheckpointError

    exists = (f"{out} exists: pass --force to replace it (once the new artifact is "
              "complete), or choose another folder")
    if Path(out).exists() and not force:  # before the checkpoint is read
        raise click.ClickException(exists)
    if with_nir:
        try:
            import nir  # noqa: F401
        except ImportError as e:
            raise click.ClickException(f"--nir needs the 'nir' package "
                                       f"(pip install 'hybrid-snn-video[nir]'): {e}") from e
    try:
        art = deploy_checkpoint(checkpoint, out, overwrite=force, chip=chip, nir=with_nir)
    except FileExistsError as exc:  # made by another process meanwhile
        raise click.ClickException(exists) from exc
    except (CheckpointError, NotDeployable, ArtifactError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(art.manifest, indent=2))
        return
    for f in art.manifest["files"]:
        click.echo(f"  {f['path']:<12} {f['role']:<12} {f['bytes']:>10,} B  {f['sha256'][:12]}")
    for m, b in art.bridges.items():
        click.echo(f"  bridge {m}: {b.source} -> dense '{b.target}', (S, C, H, W) {b.layout}, "
                   f"v = v_int / {b.v_scale:g}, {b.bytes_per_video:,} B a video")
    mp = art.mapping
    click.echo(f"  mapping: {mp['cores_used']} of {mp['cores_total']} cores on "
               f"{mp['chip_title']}, fits: {'yes' if mp['fits'] else 'no'} "
               f"(`hybrid map {art.path}` for every layer)")
    if art.nir_paths:
        click.echo("  NIR: a reader runs soft reset, fixed point, delays and the readout "
                   f"differently (`hybrid nir {art.path} -o DIR` lists how)")
    click.echo(f"deployed {checkpoint} to {art.path}")


@click.command()
@click.argument("artifact", type=click.Path())
@click.argument("source", metavar="INPUT", type=click.Path(exists=True))
@click.option("--top", type=click.IntRange(1), default=5, show_default=True)
@click.option("--compare", is_flag=True,
              help="Also run the torch model in fixed point (qat) on the same inputs: top-1 "
                   "agreement, largest logit difference, spikes equal per layer.")
@click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
              help="Processes, each with its own Lava runtime; videos are sharded over them.")
@fold_option("Split fold of a dataset folder or cache (its test split is run).")
@model_video_size_option
@click.option("--conv", type=click.Choice(["fused", "im2col", "lava"]), default="fused",
              show_default=True,
              help="Lava layer processes: one ConvLIF per layer, or Lava's Conv Process with "
                   "neuro's exact im2col model or Lava's own.")
@json_option()
def run(artifact, source, top, compare, workers, fold, video_size, conv, as_json):
    """Run the deployed ARTIFACT on the simulated hybrid chip (STMs in Lava fixed_pt, the
    bridge, the dense partition in onnxruntime) on INPUT: one video (any format FFmpeg
    reads), or the test split of a dataset folder or `hybrid prepare` cache (with
    accuracy). Per video: top classes, spikes per layer, seconds per stage."""
    from deploy.artifact.folder import ArtifactError, load_artifact
    from deploy.runtime.pool import RunWorkerError, run_videos
    from hybrid.data.splits import SplitError
    from hybrid.ondevice.artifacts import SKIP, open_input, reading_size

    try:
        art = load_artifact(artifact)
        video_size, warning = reading_size(art, video_size)
        if warning:
            click.echo(f"warning: {warning}", err=True)
        ds, names, labels = open_input(art, source, fold, video_size)
    except (ArtifactError, SplitError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from exc
    try:
        with click.progressbar(length=len(names), label="running", show_pos=True,
                               file=click.get_text_stream("stderr")) as bar:
            rep = run_videos(art, ds, names, labels, workers=workers, top=top,
                             compare=compare, conv=conv, skip=SKIP, progress=bar.update)
    except RunWorkerError as exc:
        raise click.ClickException(str(exc)) from None
    for s in rep["skipped"]:
        click.echo(f"skipped: {s['error']}", err=True)
    if not rep["videos"]:
        raise click.ClickException(f"{source}: no video could be run")
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    for v in rep["videos"]:
        best = v["top"][0]
        truth = f" (true: {v['label']})" if "label" in v else ""
        spikes = ", ".join(f"{m} {s}" for m, s in v["spikes"].items())
        secs = " ".join(f"{k} {t:.3f}" for k, t in v["seconds"].items())
        line = f"{v['video']}: {best['class']} {best['probability']:.3f}{truth} | spikes {spikes}"
        if "compare" in v:
            c = v["compare"]
            line += (f" | torch qat: top-1 {'same' if c['top1_agrees'] else 'DIFFERS'}, "
                     f"spikes {'equal' if c['spikes_equal'] else 'DIFFER'}, "
                     f"max logit diff {c['max_logit_diff']:.2e}")
        click.echo(f"{line} | s: {secs}")
    per = " ".join(f"{k} {t:.3f}" for k, t in rep["seconds_per_video"].items())
    click.echo(f"{len(rep['videos'])} videos on {rep['workers']} worker(s) in "
               f"{rep['wall_seconds']:.1f}s; per video (s): {per}")
    if "top1" in rep:
        click.echo(f"top-1 {rep['top1']:.4f}")
    if compare:
        click.echo(f"vs torch qat: top-1 agreement {rep['agreement']:.4f}, spikes equal "
                   f"{rep['spikes_equal']}, max logit diff {rep['max_logit_diff']:.2e}")
