"""``hybrid synth``, ``hybrid inspect``, ``hybrid extract`` and ``hybrid prepare``."""
from __future__ import annotations

import json

import click

from hybrid.cli.types import VIDEO_SIZE, Shard, Size


def _user_error(e: Exception) -> click.ClickException:
    return click.ClickException(str(e))


@click.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--classes", type=click.IntRange(2, 12), default=8, show_default=True,
              help="Number of motion classes (pairs share an appearance).")
@click.option("--per-class", type=click.IntRange(2), default=12, show_default=True,
              help="Videos per class (every 4th, and at least one, held out).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=Size(minimum=32, even=True), default="128x96",
              show_default=True, help="Video size WIDTHxHEIGHT (N: NxN).")
@click.option("--frames", type=click.IntRange(12), default=36, show_default=True,
              help="Frames per video (12 per GOP; fewer: shorter clips, harder).")
@click.option("--speed", type=click.FloatRange(0, min_open=True), default=1.0,
              show_default=True,
              help="Factor on every class's motion (below 1: subtler motion, harder).")
@click.option("--distractors", type=click.IntRange(0), default=1, show_default=True,
              help="Squares moving at random over the scene.")
@click.option("--noise", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Std of per-pixel Gaussian noise (intensity units).")
@click.option("--jitter", type=click.FloatRange(0, 1), default=0.2, show_default=True,
              help="Probability of a 1 px camera shake per frame.")
@click.option("--motions", type=click.Choice(["motion", "order"]), default="motion",
              show_default=True,
              help="Class set: 'motion' (pairs differ in direction, speed, rotation, zoom; "
                   "up to 12 classes) or 'order' (pairs differ only in the order or timing "
                   "of motion inside each GOP, which ends where it would for the other "
                   "class: up/down-and-back, move-then-rest/rest-then-move, speed up/slow "
                   "down; up to 6 classes).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary.")
def synth(out, classes, per_class, seed, size, frames, speed, distractors, noise, jitter,
          motions, as_json):
    """Write a synthetic action dataset of MPEG-4 videos to OUT (folder per class,
    UCF-style classInd.txt / trainlist01.txt / testlist01.txt, synth.json). --speed,
    --distractors, --noise, --jitter, --frames and --classes make it harder.

    OUT appears complete or not at all (written beside it, then renamed). An earlier
    `hybrid synth` dataset in OUT is replaced whole; any other non-empty OUT is refused."""
    from hybrid.video.synth import SynthConfig, SynthError, make_dataset

    cfg = SynthConfig(size=size, frames=frames, speed=speed, distractors=distractors,
                      noise=noise, jitter=jitter, motions=motions)
    try:
        with click.progressbar(length=classes * per_class, label="synth",
                               file=click.get_text_stream("stderr")) as bar:
            summary = make_dataset(out, classes, per_class, seed, cfg, progress=bar.update)
    except SynthError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:  # read-only, full, not a folder
        raise click.ClickException(f"{out}: cannot write the dataset ({e})") from None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        if summary["replaced"]:
            click.echo(f"replaced the earlier synth dataset in {out} "
                       f"({summary['replaced']} videos)")
        click.echo(f"{summary['videos']} videos ({summary['train']} train, "
                   f"{summary['test']} test) of {classes} classes in {out}")


TRANSCODE = click.option(
    "--transcode/--no-transcode", default=True, show_default=True,
    help="A video that is not MPEG-4 Part 2 GOP 12 with I/P frames only (H.264, "
         "B-frames, WebM, ...) is transcoded in process to a temporary file, removed "
         "afterwards; --no-transcode refuses it instead.")


def _echo_info(info: dict, indent: str = "") -> None:
    click.echo(f"{indent}{info['path']}: {info['codec']} in {info['container']}, "
               f"{info['width']}x{info['height']}, {info['frames']} frames "
               f"({info['frames_declared']} declared), {info['corrupt_frames']} corrupt")
    click.echo(f"{indent}GOPs: {info['gops']} of sizes {info['gop_sizes']}")
    click.echo(f"{indent}frame types: {info['frame_types']}")
    mv = info["motion_vectors"]
    if mv.get("vectors"):
        click.echo(f"{indent}motion vectors: {mv['vectors']} in {mv['frames_with_vectors']} "
                   f"frames, blocks {', '.join(mv['block_sizes'])}, "
                   f"moving {mv['moving_fraction']:.1%}, mean ({mv['mean_x']:.2f}, "
                   f"{mv['mean_y']:.2f}) px, mean |mv| {mv['mean_magnitude']:.2f}, "
                   f"max {mv['max_magnitude']:.1f}")
    else:
        click.echo(f"{indent}motion vectors: none")


@click.command()
@click.argument("video", type=click.Path())
@click.option("--size", type=VIDEO_SIZE, default=None,
              help="Size to transcode to, WIDTHxHEIGHT (N: NxN) [default: 340x256].")
@TRANSCODE
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def inspect(video, size, transcode, as_json):
    """Codec, size, frame count, GOP structure, frame types and motion-vector
    statistics of VIDEO. When the reader cannot take VIDEO as it is, also what it reads
    after transcoding (what extract and predict use; `reader_form` and `transcoded` in
    JSON); with --no-transcode only VIDEO itself."""
    from hybrid.video.errors import VideoError
    from hybrid.video.probe import probe
    from hybrid.video.reader import too_short
    from hybrid.video.transcode import as_mpeg4, is_coviar_form

    try:
        info = probe(video, with_types=True, with_mvs=True).as_dict()
        info["reader_form"] = is_coviar_form(video, size)
        if not info["reader_form"] and transcode:
            with as_mpeg4(video, size) as path:
                info["transcoded"] = probe(path, with_types=True, with_mvs=True).as_dict()
            info["transcoded"]["path"] = f"{video} (transcoded)"
    except VideoError as e:
        raise _user_error(e) from None
    read = info.get("transcoded", info)
    info["reader_refuses"] = too_short(read["frames"]) if "transcoded" in info or info[
        "reader_form"] else None  # what extract and predict say of it
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    _echo_info(info)
    if info["reader_refuses"]:
        click.echo(f"reader: refuses it: {info['reader_refuses']} (extract and predict "
                   "read whole GOPs)")
    elif info["reader_form"]:
        click.echo("reader: reads it as it is (MPEG-4 Part 2, GOP 12, I/P frames)")
    elif transcode:
        click.echo("reader: transcodes it first (not MPEG-4 Part 2 GOP 12 with I/P frames"
                   + (f" at {size[0]}x{size[1]}" if size else "") + "); as read:")
        _echo_info(info["transcoded"], "  ")
    else:
        click.echo("reader: not MPEG-4 Part 2 GOP 12 with I/P frames; extract and predict "
                   "refuse it with --no-transcode")


@click.command()
@click.argument("video", type=click.Path())
@click.option("-o", "--out", type=click.Path(dir_okay=False), required=True,
              help="Output HDF5 file.")
@click.option("--accumulate/--no-accumulate", default=True, show_default=True,
              help="Trace MV and residual back to the GOP's I-frame (CoViAR).")
@click.option("--coviar/--subpixel", default=True, show_default=True,
              help="CoViAR's integer-pixel motion (exact) or sub-pixel motion.")
@click.option("--size", type=VIDEO_SIZE, default=None,
              help="Frame size WIDTHxHEIGHT (N: NxN); a video at another size is "
                   "transcoded [default: the video's own when it is MPEG-4 GOP 12, else "
                   "340x256].")
@TRANSCODE
@click.option("--json", "as_json", is_flag=True, help="Print the shapes as JSON.")
def extract(video, out, accumulate, coviar, size, transcode, as_json):
    """Write VIDEO's per-GOP I-frames, motion vectors and residuals to an HDF5 file:
    iframe (G, H, W, 3) uint8, mv (G, 11, H, W, 2), residual (G, 11, H, W, 3),
    p_frames (G,). Any video FFmpeg reads (see --transcode); GOPs are streamed to
    the file one at a time, so memory holds one GOP."""
    from pathlib import Path

    from hybrid.video.errors import VideoError
    from hybrid.video.extract import write_extract
    from hybrid.video.transcode import as_mpeg4

    try:  # the output's folder first: a bad path fails before the extraction
        Path(out).parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise click.BadParameter(f"cannot create its folder ({e})", param_hint="-o") from None
    try:
        with as_mpeg4(video, size, allow_transcode=transcode) as path:
            shapes = write_extract(path, out, accumulate, coviar, source=video)
    except VideoError as e:
        raise _user_error(e) from None
    except OSError as e:
        raise click.ClickException(f"{out}: cannot write ({e})") from None
    if as_json:
        click.echo(json.dumps({"out": out, "accumulate": accumulate, "coviar": coviar,
                               "transcoded": str(path) != str(video), "shapes": shapes},
                              indent=2))
    else:
        click.echo(f"{out}: " + ", ".join(f"{k} {tuple(v)}" for k, v in shapes.items()))


STORES = ("video", "arrays")


@click.command()
@click.argument("data", type=click.Path(exists=True))
@click.option("-o", "--out", type=click.Path(), required=True,
              help="The store to write (or resume): a folder (--store video) or an HDF5 "
                   "file (--store arrays).")
@click.option("--store", type=click.Choice(STORES), default="video", show_default=True,
              help="video: the videos as MPEG-4 GOP 12 with their GOP index, at most "
                   "--max-ratio x the source's bytes; loaders decode only the GOPs they "
                   "sample. arrays: an HDF5 array cache of the extracted I-frames, MVs and "
                   "residuals, nothing decoded when read, 20-50x the bytes of real H.264 "
                   "videos (5-20x of MPEG-4 ones); DATA may be a video cache (its videos "
                   "are extracted, not transcoded again).")
@click.option("--max-ratio", type=click.FloatRange(0), default=2.0, show_default=True,
              help="Video store: a transcoded video at most this x its source's bytes, by a "
                   "coarser quantiser than CoViAR's q 2 where that is over (an H.264 "
                   "source; the quantiser is recorded per video); 0: always q 2.")
@click.option("--size", type=VIDEO_SIZE, default="340x256", show_default=True,
              help="Transcode size WIDTHxHEIGHT, N: NxN (videos already MPEG-4 GOP 12 at "
                   "this size are used as they are).")
@click.option("--workers", type=click.IntRange(1), default=2, show_default=True,
              help="Worker processes for transcoding and extraction.")
@click.option("--accumulate/--no-accumulate", default=True, show_default=True,
              help="Array store: trace MV and residual back to the GOP's I-frame.")
@click.option("--coviar/--subpixel", default=True, show_default=True,
              help="Array store: CoViAR's integer-pixel motion or sub-pixel motion.")
@click.option("--compress/--no-compress", default=True, show_default=True,
              help="Array store: compressed chunks (gzip-1; smaller) or raw (fastest reads).")
@click.option("--shard", type=Shard(), default=None,
              help="Array store: prepare only part K of N disjoint, deterministic parts "
                   "(K/N, e.g. 3/8: one job of a job array); train, eval and profile read a "
                   "folder of the N shard caches as one dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def prepare(data, out, store, max_ratio, size, workers, accumulate, coviar, compress, shard,
            as_json):
    """Transcode every video of DATA (UCF-101, HMDB-51, Kinetics-400/600/700,
    Something-Something v2 or folder-per-class, detected from its files) into the store
    OUT, in parallel, and print its size against the source videos'. The default store
    (--store video) is the video cache, a folder about the sources' size; --store arrays
    extracts the model's inputs into an HDF5 array cache. Re-running skips finished
    videos; bad videos are reported and skipped (exit status 1 if any, after the rest is
    done); videos the annotations list but the disk lacks (common in Kinetics) are
    counted once and, for the array store, listed in OUT.missing.txt (docs/data.md:
    "Caches")."""
    from pathlib import Path

    if store == "video" and Path(out).suffix.lower() in (".h5", ".hdf5"):
        raise click.ClickException(
            f"{out}: an HDF5 file name, but the default store is the video cache (a "
            "folder); pass --store arrays for the HDF5 array cache, or name a folder")
    ctx = click.get_current_context()
    arrays_only = [o for o in ("accumulate", "coviar", "compress")
                   if ctx.get_parameter_source(o) is click.core.ParameterSource.COMMANDLINE]
    if store == "video" and arrays_only:
        raise click.UsageError(f"--{'/--'.join(arrays_only)}: options of the array store "
                               "(--store arrays); the video cache keeps the videos, which "
                               "train and eval read either way")
    if store == "video" and shard is not None:
        raise click.UsageError("--shard splits the array store (--store arrays) only: a video "
                               "cache (about the sources' size) is written whole by one "
                               "prepare (more --workers for speed)")
    if store == "video":
        from hybrid.data.videocache import prepare_videos

        vsum = _with_bar("video cache", lambda progress, on_start: prepare_videos(
            data, out, size, workers, progress=progress, on_start=on_start,
            max_ratio=max_ratio))
        pruned = (f", {vsum['pruned']} deleted (no longer in the splits)"
                  if vsum["pruned"] else "")
        _report(out, vsum, vsum["video_cache"], as_json,
                f"{vsum['prepared']} videos written, {vsum['already_done']} already done, "
                f"{len(vsum['failed'])} failed, of {vsum['videos']}{pruned}")
        for bad in vsum["failed"]:
            click.echo(f"skipped: {bad['error']}", err=True)
        if vsum["failed"] or vsum["video_cache"] is None:
            raise SystemExit(1)
        return
    from hybrid.data.cache import PrepareConfig
    from hybrid.data.cache import prepare as run
    from hybrid.data.videocache import as_array_source

    cfg = PrepareConfig(size=size, accumulate=accumulate, coviar=coviar, compress=compress)
    try:  # a video cache as DATA: its dataset, extracted from its copies (one transcode)
        root, videos = as_array_source(data, size)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    summary = _with_bar("prepare", lambda progress, on_start: run(
        root, out, cfg, workers, progress=progress, on_start=on_start, shard=shard,
        videos=videos))
    part = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    again = f" ({summary['changed']} again: their source changed)" if summary["changed"] else ""
    _report(f"{out}{part}", summary, summary["cache"], as_json,
            f"{summary['prepared']} prepared{again}, {summary['already_done']} already done, "
            f"{len(summary['failed'])} failed, of {summary['videos']} videos")
    if summary["missing"]:
        click.echo(f"{summary['missing']} videos listed in the annotations are not on disk "
                   f"(left out); list in {summary['missing_list']}", err=True)
    for bad in summary["failed"]:
        click.echo(f"skipped: {bad['error']}", err=True)
    if summary["failed"] or summary["cache"] is None:
        raise SystemExit(1)


def _report(where, summary: dict, written, as_json: bool, counts: str) -> None:
    """One prepare summary: the JSON, or a line naming ``where`` with ``counts`` and the
    size, or (nothing ``written``) that no video could be prepared."""
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    elif written is None:
        click.echo(f"{where}: not written: none of the {summary['videos']} videos could be "
                   f"prepared", err=True)
    else:
        src = summary.get("source_bytes") or 0
        against = (f", {summary['bytes'] / src:.2f}x the source videos' {src / 1e6:.1f} MB"
                   if src else "")
        click.echo(f"{where}: {counts}; {summary['bytes'] / 1e6:.1f} MB{against}")


def _with_bar(label: str, work):
    """``work(progress, on_start)`` with a progress bar on stderr; user errors become
    ClickExceptions."""
    from hybrid.data.splits import SplitError
    from hybrid.locking import LockedError
    from hybrid.video.extract import FormatError

    state = {}

    def start(n):
        state["bar"] = click.progressbar(length=n, label=label,
                                         file=click.get_text_stream("stderr"))
        state["bar"].__enter__()

    try:
        return work(lambda k: state["bar"].update(k), start)
    except (SplitError, FormatError, LockedError, ValueError, OSError) as e:
        raise click.ClickException(str(e)) from None
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
