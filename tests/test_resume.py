"""--resume with another --epochs: the cosine schedule is recomputed for the new total
from the resumed epoch on, so the run is the one a plain run of the new total would be."""
import csv

import pytest
import torch

from hybrid.model import HybridConfig
from hybrid.training.train import TrainConfig, lr_factor, train


class Clips(torch.utils.data.Dataset):
    """Labelled random clips as a loader hands them over (uint8 codes, crop box)."""

    def __init__(self, n: int, seed: int, size: int = 24):
        g = torch.Generator().manual_seed(seed)
        self.items = [{"iframe": torch.randint(0, 256, (1, 3, size, size), generator=g,
                                               dtype=torch.uint8),
                       "mv": torch.randint(110, 146, (1, 11, 2, size, size), generator=g,
                                           dtype=torch.uint8),
                       "residual": torch.randint(110, 146, (1, 11, 3, size, size), generator=g,
                                                 dtype=torch.uint8),
                       "box": torch.tensor([size, size, 0, size]), "label": i % 2}
                      for i in range(n)]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


CFG = HybridConfig(num_classes=2, segments=1, size=(24, 24), stm={"widths": (4, 4, 4)})


def _run(run_dir, epochs, resume=False, **kw):
    msgs = []
    tcfg = TrainConfig(epochs=epochs, batch_size=2, **{"lr": 2e-3, "warmup_epochs": 0,
                                                       "seed": 1, **kw})
    model, _ = train((Clips(4, 0), Clips(2, 1)), ["a", "b"], run_dir, CFG, tcfg,
                     resume=resume, echo=msgs.append)
    with open(run_dir / "metrics.csv") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    return model, lrs, msgs, tcfg


def test_resume_with_more_epochs_recomputes_the_cosine(tmp_path):
    """Started for 1 epoch (its schedule ends at lr 0), resumed for 3: epochs 2 and 3 get
    the 3-epoch cosine's lr, and the model is the plain 3-epoch run's."""
    full, full_lrs, _, tcfg = _run(tmp_path / "full", 3)
    assert full_lrs == pytest.approx([2e-3 * lr_factor(e, tcfg) for e in range(3)], rel=1e-5)
    assert full_lrs == pytest.approx([2e-3, 1.5e-3, 0.5e-3], rel=1e-5)  # by hand
    _, short_lrs, _, short = _run(tmp_path / "cut", 1)  # started for 1 epoch
    assert lr_factor(1, short) == 0  # where its schedule would go on
    resumed, lrs, msgs, _ = _run(tmp_path / "cut", 3, resume=True)
    assert lrs == full_lrs  # epoch 1 as started, then the 3-epoch cosine
    assert any("epochs 1 -> 3" in m and "recomputed" in m for m in msgs), msgs
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), f"{k}: resumed run differs from the plain run"


def test_resume_with_another_lr_applies_it_and_another_optimizer_is_refused(tmp_path):
    from hybrid.training import checkpoint
    from hybrid.training.checkpoint import CheckpointError

    run = tmp_path / "run"
    _, lrs, _, _ = _run(run, 1)
    with pytest.raises(CheckpointError, match="--optimizer adamw, not adam"):
        _run(run, 2, resume=True, optimizer="adam")
    _, lrs, msgs, _ = _run(run, 2, resume=True, lr=4e-3, weight_decay=0.0)
    # epoch 1 at the old peak; epoch 2 by the new peak's schedule for 2 epochs (cosine 0.5)
    assert lrs == pytest.approx([2e-3, 4e-3 * 0.5], rel=1e-5)
    assert any("lr 0.002 -> 0.004" in m and "weight_decay 0.0001 -> 0.0" in m
               for m in msgs), msgs
    groups = checkpoint.load(run / "checkpoint.pt")["optimizer"]["param_groups"]
    assert [g["weight_decay"] for g in groups] == [0.0, 0.0]


def test_cli_resume_keeps_the_runs_settings_unless_given(tmp_path):
    """`hybrid train --resume` without --lr keeps the run's --lr (not the option's
    default); a --lr given applies from the resumed epoch on; another --optimizer is
    refused by name."""
    import shutil

    from click.testing import CliRunner

    from hybrid.cli import main
    from hybrid.video.synth import SynthConfig, make_dataset

    data = tmp_path / "data"
    make_dataset(data, classes=2, per_class=2, cfg=SynthConfig(size=(32, 32), frames=12))
    base = ["train", str(data), "--video-size", "32x32", "--size", "24", "--segments", "1",
            "--batch-size", "2", "--workers", "0"]

    def run(out, *extra):
        res = CliRunner().invoke(main, [*base, "-o", str(out), *extra])
        with open(out / "metrics.csv") as f:
            return res, [float(r["lr"]) for r in csv.DictReader(f)]

    res, lrs = run(tmp_path / "a", "--lr", "3e-3", "--epochs", "1")
    assert res.exit_code == 0, res.output
    assert lrs == pytest.approx([1.5e-3])  # warm-up: half the peak
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    res, _ = run(tmp_path / "a", "--resume", "--epochs", "2", "--optimizer", "adam")
    assert res.exit_code == 1 and "--optimizer adamw, not adam" in res.output, res.output
    res, lrs = run(tmp_path / "a", "--resume", "--epochs", "2")
    assert res.exit_code == 0, res.output
    assert lrs == pytest.approx([1.5e-3, 3e-3]) and "lr 0.003 -> 0.001" not in res.output
    res, lrs = run(tmp_path / "b", "--resume", "--epochs", "2", "--lr", "2e-3")
    assert res.exit_code == 0, res.output
    assert lrs == pytest.approx([1.5e-3, 2e-3]) and "lr 0.003 -> 0.002" in res.output


def test_cli_resume_without_the_model_options_reads_data_for_the_runs_model(tmp_path):
    """`hybrid train --resume` needs no --size/--segments/--batch-size again: the data are
    opened for the run's model (a crash before: crops of the default 56 px, 3 segments,
    fed to a 24 px, 1-segment model), and its batch size is the run's; a model option that
    differs from the run's is refused naming both values."""
    from click.testing import CliRunner

    from hybrid.cli import main
    from hybrid.training import checkpoint
    from hybrid.video.synth import SynthConfig, make_dataset

    data = tmp_path / "data"
    make_dataset(data, classes=2, per_class=2, cfg=SynthConfig(size=(32, 32), frames=24))
    out = tmp_path / "run"
    first = ["train", str(data), "-o", str(out), "--video-size", "32x32", "--workers", "0"]
    res = CliRunner().invoke(main, [*first, "--size", "24", "--segments", "2",
                                    "--batch-size", "2", "--epochs", "1"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, [*first, "--resume", "--epochs", "2", "--size", "32"])
    assert res.exit_code == 2 and "--size 32 (the checkpoint's: 24)" in res.output, res.output
    res = CliRunner().invoke(main, [*first, "--resume", "--epochs", "2"])
    assert res.exit_code == 0, res.output
    ck = checkpoint.load(out / "checkpoint.pt")
    assert ck["epoch"] == 2 and ck["train_config"]["batch_size"] == 2
    assert list(ck["model_config"]["size"]) == [24, 24]
