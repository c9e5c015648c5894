"""metrics.png: every epoch is drawn, also a run of one epoch (a single point, which a
line alone leaves invisible)."""
import numpy as np
import pytest
from matplotlib.colors import to_rgba

from hybrid.training.metrics import metrics_figure, plot_metrics


def _rows(n):
    return [{"epoch": e + 1, "lr": 1e-3, "train_loss": 1.0 + e, "train_acc": 0.5,
             "val_loss": 2.0 + e, "val_acc": 0.25, "seconds": 1.0} for e in range(n)]


@pytest.mark.parametrize("epochs", [1, 2, 5])
def test_every_epoch_of_every_curve_is_drawn(epochs):
    fig = metrics_figure(_rows(epochs))
    fig.canvas.draw()
    img = np.asarray(fig.canvas.buffer_rgba()).astype(float) / 255  # (H, W, 4)
    h = img.shape[0]
    checked = 0
    for ax in fig.axes:
        for line in ax.get_lines():
            want = np.array(to_rgba(line.get_color()))
            for x, y in zip(line.get_xdata(), line.get_ydata()):
                px, py = ax.transData.transform((x, y))
                r, c = int(round(h - py)), int(round(px))
                patch = img[r - 1:r + 2, c - 1:c + 2].reshape(-1, 4)
                assert np.abs(patch - want).max(axis=1).min() < 0.1, (
                    f"{ax.get_title()} {line.get_label()} epoch {x}: nothing drawn there")
                checked += 1
    assert checked == 4 * epochs


def test_metrics_png_of_one_epoch(tmp_path):
    plot_metrics(_rows(1), tmp_path / "metrics.png")
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
