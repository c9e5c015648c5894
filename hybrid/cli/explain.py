"""``hybrid explain``: where the model looks, per modality and segment (the paper's Fig. 5)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from hybrid.cli.types import VIDEO_SIZE


@click.command()
@click.argument("checkpoint", type=click.Path())
@click.argument("video", type=click.Path())
@click.option("-o", "--out", "out", type=click.Path(file_okay=False), required=True,
              help="Folder for explain.png and maps.npz (created; files in it replaced).")
@click.option("--class", "class_name", default=None,
              help="Class to explain [default: the predicted one].")
@click.option("--method", type=click.Choice(["gradcam", "saliency"]), default="gradcam",
              show_default=True,
              help="Grad-CAM at each modality's finest feature map (MV / residual: the "
                   "STM voltages the bridge carries; I-frame: the patch tokens), or the "
                   "gradient magnitude there (I-frame: at its pixels).")
@click.option("--segments", type=int, default=None,
              help="Segments to sample, a multiple of the model's [default: the model's].")
@click.option("--video-size", type=VIDEO_SIZE, default=None,
              help="WIDTHxHEIGHT the video is resized to before the centre crop [default: "
                   "the size the model was trained at, where the checkpoint records it; "
                   "otherwise the video's own size, sides rounded down to even (never "
                   "scaled up)].")
@click.option("--transcode/--no-transcode", default=True, show_default=True,
              help="Transcode a video not in the reader's form in process, or refuse it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def explain(checkpoint, video, out, class_name, method, segments, video_size, transcode,
            as_json):
    """Heat maps of where CHECKPOINT's model looks in VIDEO (any video FFmpeg reads), per
    modality (I-frame, motion vectors, residual) and segment, for the predicted class or
    --class: OUT/explain.png (a row per segment, as the paper's Fig. 5) and
    OUT/maps.npz (the maps at feature and crop resolution, and the inputs shown)."""
    from deploy.atomic import as_one
    from hybrid.data.dataset import UNREADABLE
    from hybrid.explain import maps as ex
    from hybrid.explain.plot import plot
    from hybrid.training.checkpoint import CheckpointError
    from hybrid.training.evaluate import load_model

    try:
        model, classes, ckpt = load_model(checkpoint)
    except CheckpointError as exc:
        raise click.ClickException(str(exc)) from exc
    index = None
    if class_name is not None:
        if class_name not in classes:
            raise click.ClickException(f"--class {class_name!r} is not a class of "
                                       f"{checkpoint} (classes: {', '.join(classes)})")
        index = classes.index(class_name)
    k = model.cfg.segments
    if segments is not None and (segments < 1 or segments % k):
        raise click.ClickException(f"--segments {segments}: must be a positive multiple of "
                                   f"the model's {k} segments ({k}, {2 * k}, {3 * k}, ...)")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise click.ClickException(f"{out}: exists and is not a folder")
    try:
        size = video_size or ex.training_video_size(ckpt)  # None: the video's own
        sample, read = ex.read_video(model, video, segments, size, transcode)
        expl = ex.explain(model, sample, index, method, classes)
    except UNREADABLE as exc:
        raise click.ClickException(str(exc)) from exc
    except ex.ExplainError as exc:
        raise click.ClickException(f"{video}: {exc}") from exc
    expl.meta = {"video": str(video), "checkpoint": str(checkpoint),
                 "segments": int(sample["iframe"].shape[0]), **read}
    if len(set(read["gops"])) < len(read["gops"]):
        click.echo(f"warning: {video} has {read['num_gops']} GOPs, fewer than the "
                   f"{expl.meta['segments']} segments: segments repeat GOPs (GOPs shown: "
                   f"{', '.join(map(str, read['gops']))}; each row of the figure is "
                   f"labelled with its GOP)", err=True)
    out.mkdir(parents=True, exist_ok=True)
    with as_one():  # both files or neither (a full disk: the earlier pair stays)
        npz = ex.save(expl, out / "maps.npz")
        png = plot(expl, out / "explain.png", title=Path(video).name)
    res = {"video": str(video), "class": expl.class_name,
           "probability": float(expl.probabilities[expl.class_index]),
           "predicted": classes[int(expl.probabilities.argmax())], "method": method,
           "segments": expl.meta["segments"], "gops": read["gops"],
           "num_gops": read["num_gops"], "video_size": read["video_size"], "figure": str(png),
           "maps": str(npz)}
    if as_json:
        click.echo(json.dumps(res, indent=2))
    else:
        click.echo(f"{res['class']} (p = {res['probability']:.3f}; predicted "
                   f"{res['predicted']}), {method}, video read at "
                   f"{'x'.join(map(str, res['video_size']))}: {png}, {npz}")
