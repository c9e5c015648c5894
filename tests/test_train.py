"""The composed model end to end: composition, training (loss goes down, resume, DDP),
checkpoint errors, eval and predict through the CLI. Data: a small synthetic set."""
import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from hybrid.cli import main
from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.sources import load_split
from hybrid.model import HybridConfig, HybridModel
from hybrid.training import checkpoint
from hybrid.training.train import TrainConfig, lr_factor, make_optimizer, train

SIZE = 32
VIDEO = (64, 48)  # (W, H) of the synthetic videos: used as they are, no resize
TINY_STM = {"widths": (4, 4, 4)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from hybrid.video.synth import SynthConfig, make_dataset

    out = tmp_path_factory.mktemp("synth")
    make_dataset(out, classes=3, per_class=4, seed=0,
                 cfg=SynthConfig(size=VIDEO, frames=24))
    return out


def _datasets(data, segments=1):
    items, classes = load_split(data, "train")
    test_items, _ = load_split(data, "test")
    kw = {"crop": SIZE, "video_size": VIDEO}
    return (CompressedVideoDataset(data, items, segments, train=True, seed=0, **kw),
            CompressedVideoDataset(data, test_items, segments, train=False, **kw)), classes


def _cfg(classes, **kw):
    return HybridConfig(num_classes=len(classes), segments=1, size=(SIZE, SIZE), stm=TINY_STM,
                        **kw)


@pytest.mark.parametrize("mods", [("i", "mv", "r"), ("i",), ("mv", "r"), ("mv",)])
def test_composed_model_shapes_and_grads(mods):
    cfg = HybridConfig(num_classes=5, segments=2, size=(SIZE, SIZE), stm=TINY_STM,
                       modalities=mods)
    model = HybridModel(cfg)
    B, S, T = 2, 2, 11
    x = torch.randn(B, S, 3, SIZE, SIZE)
    mv, r = torch.randn(B, S, T, 2, SIZE, SIZE) * 0.3, torch.randn(B, S, T, 3, SIZE, SIZE)
    y = model(x, mv, r)
    assert y.shape == (B, 5) and torch.isfinite(y).all()
    y.square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"


def test_config_round_trip():
    cfg = _cfg(["a", "b"], modalities=("mv", "r"))
    assert HybridConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown"):
        HybridConfig.from_dict({**cfg.to_dict(), "bogus": 1})


def test_two_epochs_lower_the_loss(data, tmp_path):
    (train_ds, val_ds), classes = _datasets(data)
    _, m1 = train((train_ds, val_ds), classes, tmp_path / "a", _cfg(classes),
                  TrainConfig(epochs=1, batch_size=3, lr=3e-3, warmup_epochs=0))
    model, m2 = train((train_ds, val_ds), classes, tmp_path / "a", _cfg(classes),
                      TrainConfig(epochs=3, batch_size=3, lr=3e-3, warmup_epochs=0),
                      resume=True)
    assert m2["train_loss"] < m1["train_loss"], (m1, m2)
    rows = list(csv.DictReader(open(tmp_path / "a" / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    assert (tmp_path / "a" / "metrics.png").stat().st_size > 0


def test_killed_run_resumes_without_losing_epochs(data, tmp_path):
    (train_ds, val_ds), classes = _datasets(data)
    run = tmp_path / "run"
    tcfg = TrainConfig(epochs=3, batch_size=4)

    def kill(epoch):
        if epoch == 2:
            raise KeyboardInterrupt  # stands in for SIGKILL after epoch 2's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train((train_ds, val_ds), classes, run, _cfg(classes), tcfg, on_epoch_end=kill)
    assert checkpoint.load(run / "checkpoint.pt")["epoch"] == 2
    assert not list(run.glob(".*.tmp")), "no temporary files left behind"
    with pytest.raises(FileExistsError, match="--resume"):
        train((train_ds, val_ds), classes, run, _cfg(classes), tcfg)
    train((train_ds, val_ds), classes, run, _cfg(classes), tcfg, resume=True)
    ck = checkpoint.load(run / "checkpoint.pt")
    assert ck["epoch"] == 3 and ck["classes"] == classes
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]


def test_corrupt_video_is_reported_and_skipped(data, tmp_path, caplog):
    import shutil

    from hybrid.training.evaluate import evaluate

    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    items, classes = load_split(copy, "train")
    bad = copy / items[0][0]
    bad.write_bytes(b"this is not a video" * 10)
    (train_ds, val_ds), _ = _datasets(copy)
    with caplog.at_level("WARNING"):
        model, m = train((train_ds, val_ds), classes, tmp_path / "run", _cfg(classes),
                         TrainConfig(epochs=1, batch_size=4))
    assert m["epoch"] == 1
    assert any(bad.name in r.getMessage() for r in caplog.records), "bad video not reported"
    ds = CompressedVideoDataset(copy, items[:3], 1, train=False, crop=SIZE, video_size=VIDEO)
    res = evaluate(model.eval(), ds, classes)
    assert res["videos"] == 2 and len(res["skipped"]) == 1 and bad.name in res["skipped"][0]


def test_bad_checkpoints_give_clear_errors(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x80\x02not a checkpoint at all")
    with pytest.raises(checkpoint.CheckpointError, match="corrupt.pt"):
        checkpoint.load(bad)
    other = tmp_path / "v99.pt"
    torch.save({"format": checkpoint.FORMAT, "version": 99}, other)
    with pytest.raises(checkpoint.CheckpointError, match="version 99"):
        checkpoint.load(other)
    with pytest.raises(checkpoint.CheckpointError, match="no such"):
        checkpoint.load(tmp_path / "missing.pt")
    res = CliRunner().invoke(main, ["eval", str(other), str(tmp_path)])
    assert res.exit_code != 0 and "version 99" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_cli_train_eval_predict(data, tmp_path):
    run = tmp_path / "run"
    model_args = ["--segments", "1", "--size", str(SIZE), "--no-skips", "--pooling", "cls"]
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--epochs", "1",
                                  "--batch-size", "4", "--video-size", "64x48", *model_args])
    assert r.exit_code == 0, r.output
    ck = run / "checkpoint.pt"
    # summary counts the model train built from the same options
    r = CliRunner().invoke(main, ["summary", *model_args, "--classes", "3", "--json"])
    built = checkpoint.load(ck)["model_config"]
    assert json.loads(r.stdout)["model_config"] == json.loads(json.dumps(built))
    r = CliRunner().invoke(main, ["eval", str(ck), str(data), "--views", "2x3", "--json",
                                  "--video-size", "64x48"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert 0 <= res["top1"] <= res["top5"] <= 1
    assert set(res["per_class"]) == set(load_split(data, "test")[1])
    assert Path(res["plot"]).stat().st_size > 0
    video = next(Path(data).glob("*/*.avi"))
    r = CliRunner().invoke(main, ["predict", str(ck), str(video), "--top", "2", "--json",
                                  "--video-size", "64x48"])
    assert r.exit_code == 0, r.output
    top = json.loads(r.stdout)["top"]
    assert len(top) == 2 and top[0]["probability"] >= top[1]["probability"]
    # the checkpoint records the size its videos were read at, and predict reads alike
    assert checkpoint.load(ck)["video_size"] == [64, 48]
    r = CliRunner().invoke(main, ["predict", str(ck), str(video), "--top", "2", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["top"] == top, r.output
    # any input: a video not in the reader's form (GOP 30) is transcoded, or refused
    from hybrid.video.transcode import EncodeConfig, transcode

    other = tmp_path / "gop30.mp4"
    transcode(video, other, EncodeConfig(size=(80, 60), gop=30))
    r = CliRunner().invoke(main, ["predict", str(ck), str(other), "--video-size", "64x48",
                                  "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["video"] == str(other), r.output
    r = CliRunner().invoke(main, ["predict", str(ck), str(other), "--no-transcode"])
    assert r.exit_code == 1 and str(other) in r.output and "--no-transcode" in r.output
    r = CliRunner().invoke(main, ["predict", str(ck), str(tmp_path / "nope.avi")])
    assert r.exit_code != 0 and "nope.avi" in r.output
    # the trained residual STM runs bit-exactly on the simulated Loihi 2 (Lava fixed_pt)
    r = CliRunner().invoke(main, ["stm", "verify", "--checkpoint", str(ck), "--channels", "3",
                                  "--size", "12x12", "--sequences", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["exact"] is True


@pytest.mark.slow
def test_ddp_two_gloo_processes_agree(data, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = Path(__file__).with_name("ddp_worker.py")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
         str(worker), str(data), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    p0 = torch.load(tmp_path / "rank0.pt")
    p1 = torch.load(tmp_path / "rank1.pt")
    torch.manual_seed(0)  # as train() seeds before building the model
    init = HybridModel(_cfg(load_split(data, "train")[1])).state_dict()
    for k in p0:
        assert torch.equal(p0[k], p1[k]), f"ranks disagree on {k}"
    moved = [k for k in p0 if p0[k].is_floating_point() and not torch.equal(p0[k], init[k])]
    assert moved, "training changed no parameter"


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_optimizers_first_step(name):
    """Adam adds the L2 decay to the gradient (CoViAR's torch.optim.Adam(weight_decay,
    eps)); AdamW shrinks the weights apart from it. Both leave biases undecayed. Checked
    against Adam's first step written out: p -= lr * g / (|g| + eps)."""
    lr, wd, eps = 0.01, 0.5, 1e-3
    model = nn.Linear(4, 3)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    m = copy.deepcopy(model)
    opt, _ = make_optimizer(m, TrainConfig(optimizer=name, lr=lr, weight_decay=wd, eps=eps,
                                           warmup_epochs=0))
    m(torch.randn(5, 4)).square().sum().backward()
    g, gb = m.weight.grad.clone(), m.bias.grad.clone()
    opt.step()
    if name == "adam":
        gw = g + wd * w0
        want = w0 - lr * gw / (gw.abs() + eps)
    else:
        want = w0 * (1 - lr * wd) - lr * g / (g.abs() + eps)
    torch.testing.assert_close(m.weight.detach(), want, rtol=0, atol=1e-6)
    torch.testing.assert_close(m.bias.detach(), b0 - lr * gb / (gb.abs() + eps), rtol=0,
                               atol=1e-6)
    assert all(grp["eps"] == eps for grp in opt.param_groups)


def test_step_and_cosine_schedules():
    step = TrainConfig(epochs=30, lr=1.0, lr_steps=(5, 10, 15), warmup_epochs=0)
    got = [lr_factor(e, step) for e in (0, 4, 5, 9, 10, 14, 15, 29)]
    assert got == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    opt, sched = make_optimizer(nn.Linear(2, 2), step)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[4] == pytest.approx(1.0) and lrs[5] == pytest.approx(0.1)
    assert lrs[10] == pytest.approx(0.01)
    warm = TrainConfig(epochs=30, lr_steps=(5,), warmup_epochs=2)
    assert [lr_factor(e, warm) for e in (0, 1, 2, 5)] == pytest.approx([1 / 3, 2 / 3, 1, 0.1])
    cos = TrainConfig(epochs=11, warmup_epochs=1)  # the demo's default: warm-up + cosine
    assert lr_factor(0, cos) == 0.5 and lr_factor(1, cos) == 1.0
    assert lr_factor(6, cos) == pytest.approx(0.5)


def test_cli_preset_with_overrides(data, tmp_path):
    """--preset paper sets every option not given; options beside it override one value."""
    run = tmp_path / "run"
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(run), "--preset", "paper",
                                  "--variant", "tiny", "--segments", "1", "--size", str(SIZE),
                                  "--epochs", "1", "--video-size", "64x48", "--eps", "0.01"])
    assert r.exit_code == 0, r.output
    ck = checkpoint.load(run / "checkpoint.pt")
    t, m = ck["train_config"], ck["model_config"]
    assert (t["optimizer"], t["eps"], t["weight_decay"], t["lr"]) == ("adam", 0.01, 1e-4, 1e-3)
    assert tuple(t["lr_steps"]) == (5, 10, 15) and t["warmup_epochs"] == 0
    assert (m["variant"], m["segments"], tuple(m["size"])) == ("tiny", 1, (SIZE, SIZE))


def test_eval_fold_all_reports_each_split_and_the_mean(data, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data, root)
    for k in (2, 3):  # three splits (same lists: the mechanics, not the statistics)
        for name in ("trainlist", "testlist"):
            shutil.copy(root / f"{name}01.txt", root / f"{name}0{k}.txt")
    (train_ds, val_ds), classes = _datasets(root)
    train((train_ds, val_ds), classes, tmp_path / "split1", _cfg(classes),
          TrainConfig(epochs=1, batch_size=4))
    ck = checkpoint.load(tmp_path / "split1" / "checkpoint.pt")
    for k in (2, 3):
        (tmp_path / f"split{k}").mkdir()
        checkpoint.save(tmp_path / f"split{k}" / "checkpoint.pt",
                        **{**{n: v for n, v in ck.items() if n not in ("format", "version")},
                           "train_config": {**ck["train_config"], "fold": k}})
    common = [str(root), "--views", "1x1", "--video-size", "64x48", "--json"]
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "split{fold}" / "checkpoint.pt"),
                                  *common, "--fold", "all"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert sorted(rep["folds"]) == ["1", "2", "3"] and rep["views"] == "1x1"
    one = [json.loads(CliRunner().invoke(main, [
        "eval", str(tmp_path / f"split{k}" / "checkpoint.pt"), *common, "--fold", str(k)]
    ).stdout)["top1"] for k in (1, 2, 3)]
    assert [rep["folds"][str(k)]["top1"] for k in (1, 2, 3)] == one
    assert rep["mean"]["top1"] == pytest.approx(sum(one) / 3)
    # a model is evaluated only on the test videos of the split it was trained on
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "split1" / "checkpoint.pt"),
                                  *common, "--fold", "2"])
    assert r.exit_code == 1 and "trained on split 1" in r.output
    r = CliRunner().invoke(main, ["eval", str(tmp_path / "split1" / "checkpoint.pt"),
                                  *common, "--fold", "all"])
    assert r.exit_code == 2 and "{fold}" in r.output
