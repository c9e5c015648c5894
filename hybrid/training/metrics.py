"""The per-epoch metrics of a training run: ``metrics.csv`` (written atomically, one row
an epoch, only for an epoch whose checkpoint was saved) and its plot."""
from __future__ import annotations

import csv
import io
from pathlib import Path

from deploy.atomic import write_file

METRICS_NAME = "metrics.csv"
METRIC_FIELDS = ["epoch", "lr", "train_loss", "train_acc", "val_loss", "val_acc", "seconds"]


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_metrics(path: Path, rows: list[dict], fields: list[str] = METRIC_FIELDS) -> None:
    """Write ``rows`` to the CSV ``path`` atomically (a temporary file renamed)."""
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=fields)
    w.writeheader()
    w.writerows(rows)
    text = buf.getvalue().encode()
    write_file(path, lambda f: f.write(text))


def metrics_figure(rows: list[dict]):
    """Loss and top-1 per epoch, train and held-out; every epoch a marker, so that one
    epoch (a single point, which a line alone does not draw) shows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [int(r["epoch"]) for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
    style = {"marker": "o", "markersize": 4}
    a.plot(ep, [float(r["train_loss"]) for r in rows], label="train", **style)
    a.plot(ep, [float(r["val_loss"]) for r in rows], label="held-out", **style)
    a.set(xlabel="epoch", ylabel="loss", title="loss")
    b.plot(ep, [float(r["train_acc"]) for r in rows], label="train", **style)
    b.plot(ep, [float(r["val_acc"]) for r in rows], label="held-out", **style)
    b.set(xlabel="epoch", ylabel="top-1", title="accuracy", ylim=(0, 1))
    for ax in (a, b):
        ax.legend()
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)  # epochs
        if len(ep) == 1:
            ax.set_xlim(ep[0] - 1, ep[0] + 1)
    fig.tight_layout()
    return fig


def plot_metrics(rows: list[dict], path: Path) -> None:
    import matplotlib.pyplot as plt

    fig = metrics_figure(rows)
    write_file(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
