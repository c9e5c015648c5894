"""Shared by the energy-analysis examples: options, loading a checkpoint and its data,
profiling, and writing a figure with its numbers (PNG + JSON)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_CHECKPOINT = "demo-out/run/checkpoint.pt"  # what `hybrid demo` trains
DEFAULT_DATA = "demo-out/cache"  # its video cache (`hybrid prepare`'s default store)


def parser(doc: str, data: bool = True) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT,
                   help=f"training checkpoint [default: {DEFAULT_CHECKPOINT}]")
    if data:
        p.add_argument("--data", default=DEFAULT_DATA,
                       help=f"dataset folder or `hybrid prepare` cache [default: {DEFAULT_DATA}]")
        p.add_argument("--split", default="test", choices=("test", "train"))
        p.add_argument("--views", default=None,
                       help="SEGMENTSxCROPS [default: the model's segments x 1]")
        p.add_argument("--videos", type=int, default=None,
                       help="profile only the first N videos [default: all]")
    p.add_argument("--out", default="examples-out", help="output folder [default: examples-out]")
    return p


def load_model(args):
    from hybrid.training.evaluate import load_model as load

    path = Path(args.checkpoint)
    if not path.is_file():
        raise SystemExit(f"{path}: no checkpoint (run `hybrid demo` first, or pass "
                         "--checkpoint PATH)")
    return load(path)


def dataset(args, model, video_size=None):
    """(dataset, crops) of the requested split at the requested views; a dataset
    folder's videos read at ``video_size`` (a checkpoint's recorded training size)."""
    from hybrid.training.evaluate import open_views
    from hybrid.training.views import parse_views

    try:
        s, c = parse_views(args.views) if args.views else (model.cfg.segments, 1)
        ds, _ = open_views(args.data, args.split, (s, c), model.cfg.segments,
                           model.cfg.size[0], video_size=video_size)
    except ValueError as exc:
        raise SystemExit(f"--views {args.views}: {exc}") from None
    return ds, c


def profile(args):
    """(model, classes, dataset, crops, Profile) of the checkpoint on the data."""
    from hybrid.ondevice.energy import profile_model

    model, classes, _ = load_model(args)
    ds, crops = dataset(args, model)
    return model, classes, ds, crops, profile_model(model, ds, crops, limit=args.videos)


def write(out: str | Path, stem: str, fig, numbers: dict) -> tuple[Path, Path]:
    """Save ``fig`` as OUT/STEM.png and ``numbers`` as OUT/STEM.json (atomically)."""
    import matplotlib.pyplot as plt

    from deploy.atomic import write_file

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    png, js = out / f"{stem}.png", out / f"{stem}.json"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    text = json.dumps(numbers, indent=2).encode()
    write_file(js, lambda f: f.write(text))
    print(f"wrote {png} and {js}")
    return png, js
