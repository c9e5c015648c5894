"""Self-supervised pretraining (hybrid.pretraining.pretrain, hybrid.pretraining.tasks, ann.pretext):
pretext labels against a plain-loop reference on hand-made motion fields, the CTP
transforms, gradients of every head parameter, no NaNs, determinism, resume, and
fine-tuning from the backbone (`hybrid pretrain` then `hybrid train --init`)."""
from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from deploy.artifact.inputs import decode, decode_sample
from hybrid.model import HybridConfig, HybridModel
from hybrid.pretraining.pretrain import (
    HEAD_KEYS,
    PretrainConfig,
    PretrainModel,
    finetune_init,
    losses,
    make_batch,
    pretrain,
)
from hybrid.pretraining.tasks import IGNORE, apply_ctp, draw_ctp, pmsp_targets
from hybrid.training.train import TrainConfig, seed_everything

T = 11  # P-frames per GOP


def reference_pmsp(mv, grid: int, chunks: int) -> list[list[int]]:
    """Plain loops: per clip and temporal chunk, the grid cell (row-major) of highest
    summed |mv|^2; frame f of L in chunk f*chunks//L, pixel (y, x) in cell
    (y*grid//H, x*grid//W); IGNORE when every cell sums to the same."""
    B, S, Tn, _, H, W = mv.shape
    L = S * Tn
    out = []
    for b in range(B):
        sums = [[0.0] * (grid * grid) for _ in range(chunks)]
        for f in range(L):
            s, t = divmod(f, Tn)
            c = f * chunks // L
            for y in range(H):
                for x in range(W):
                    e = float(mv[b, s, t, 0, y, x]) ** 2 + float(mv[b, s, t, 1, y, x]) ** 2
                    sums[c][(y * grid // H) * grid + x * grid // W] += e
        row = []
        for cell in sums:
            best = max(range(len(cell)), key=lambda i: (cell[i], -i))  # first of the highest
            row.append(IGNORE if max(cell) == min(cell) else best)
        out.append(row)
    return out


def blob_field(S: int, H: int, W: int, cells: list[tuple[int, int, int]]) -> torch.Tensor:
    """(1, S, T, 2, H, W) zero motion but for blocks (segment, top, left) of 4x4 px moving
    by (1, -2) px over all P-frames of that segment."""
    mv = torch.zeros(1, S, T, 2, H, W)
    for s, top, left in cells:
        mv[0, s, :, 0, top:top + 4, left:left + 4] = 1.0
        mv[0, s, :, 1, top:top + 4, left:left + 4] = -2.0
    return mv


def test_pmsp_hand_made_fields():
    # 32x32, 2 segments: segment 0 moves in the top-right quarter (2x2 cell 1; 4x4 cell 3
    # = row 0, col 3), segment 1 in the bottom-left (2x2 cell 2; 4x4 cell 12)
    mv = blob_field(2, 32, 32, [(0, 2, 26), (1, 27, 1)])
    two, four = pmsp_targets(mv, ((2, 2), (4, 2)))
    assert two.tolist() == [[1, 2]]
    assert four.tolist() == [[3, 12]]
    # one chunk over both segments: the larger motion wins (segment 1's block is doubled)
    mv[0, 1] *= 2
    assert pmsp_targets(mv, ((4, 1),))[0].tolist() == [[12]]
    # a still clip has no answer
    assert pmsp_targets(torch.zeros(1, 2, T, 2, 32, 32), ((2, 2),))[0].tolist() == [[IGNORE] * 2]


@pytest.mark.parametrize("shape,levels", [((3, 2, 4, 13, 10), ((2, 3), (3, 1))),
                                          ((2, 3, 5, 16, 16), ((2, 5), (4, 2))),
                                          ((2, 1, 7, 9, 11), ((2, 7), (4, 3)))])
def test_pmsp_matches_loop_reference(shape, levels):
    B, S, Tn, H, W = shape
    g = torch.Generator().manual_seed(sum(shape))
    mv = torch.randn(B, S, Tn, 2, H, W, generator=g) * (torch.rand(B, S, Tn, 1, H, W,
                                                                     generator=g) < 0.2)
    got = pmsp_targets(mv, levels)
    for (grid, chunks), t in zip(levels, got):
        assert t.shape == (B, chunks)
        assert t.tolist() == reference_pmsp(mv, grid, chunks), (grid, chunks)


def test_ctp_transforms():
    g = torch.Generator().manual_seed(0)
    B, S = 5, 3
    mv = torch.randn(B, S, T, 2, 8, 8, generator=g)
    res = torch.randn(B, S, T, 3, 8, 8, generator=g)
    kind = torch.tensor([0, 1, 2, 1, 2])
    mv2, res2, applied = apply_ctp(mv, res, kind, g)
    assert applied.tolist() == kind.tolist()
    for b in range(B):
        for s in range(S):
            if kind[b] == 0:
                src = [(b, s)]
            elif kind[b] == 2:
                src = [((b + 1) % B, s)]
            else:  # shifted: another segment of the same clip, one roll for the clip
                src = [(b, (s + k) % S) for k in range(1, S)]
            assert any(torch.equal(mv2[b, s], mv[c, t]) and torch.equal(res2[b, s], res[c, t])
                       for c, t in src), (b, s, kind[b])
    # a lone clip cannot be swapped: it is shifted and labelled so
    _, _, lone = apply_ctp(mv[:1], res[:1], torch.tensor([2]), g)
    assert lone.tolist() == [1]
    # the binary variant: half transformed, label 1 exactly for the transformed ones
    kinds, labels = draw_ctp(4000, "ctp-binary", torch.Generator().manual_seed(1))
    assert torch.equal(labels, (kinds > 0).long())
    assert abs(labels.float().mean() - 0.5) < 0.03
    assert set(kinds.tolist()) == {0, 1, 2}


def codes(x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """Floats in [-0.5, 0.5) / scale -> the uint8 codes a loader hands over."""
    return ((x * scale + 0.5) * 255).round().clamp(0, 255).to(torch.uint8)


class Clips(torch.utils.data.Dataset):
    """In-memory clips with a moving block at a random place per segment, as a loader
    gives them (uint8 codes, the whole frame as the crop box); no labels."""

    def __init__(self, n: int, seed: int, S: int = 2, size: int = 24):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for _ in range(n):
            cells = [(s, *torch.randint(0, size - 4, (2,), generator=g).tolist())
                     for s in range(S)]
            mv = blob_field(S, size, size, cells)[0] * 0.1
            res = mv[:, :, :1].expand(S, T, 3, size, size).clone()
            self.items.append({"iframe": torch.randint(0, 256, (S, 3, size, size),
                                                       generator=g, dtype=torch.uint8),
                               "mv": codes(mv), "residual": codes(res, 0.2),
                               "box": torch.tensor([size, size, 0, size])})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def small(tasks=("pmsp", "ctp")):
    mcfg = HybridConfig(num_classes=1, segments=2, size=(24, 24))
    return mcfg, PretrainConfig(tasks=tasks, levels=((2, 2), (4, 1)), hidden=16)


@pytest.mark.parametrize("tasks", [("pmsp", "ctp"), ("ctp-binary",), ("pmsp",)])
def test_every_parameter_gets_a_gradient(tasks):
    mcfg, pcfg = small(tasks)
    seed_everything(0)
    model = PretrainModel(mcfg, pcfg)
    batch = decode(torch.utils.data.default_collate([Clips(4, 1)[i] for i in range(4)]))
    inputs, targets = make_batch(batch, pcfg, torch.Generator().manual_seed(0))
    logits = model(*inputs)
    assert set(logits) == set(targets) == set(pcfg.names())
    loss, _ = losses(logits, targets)
    assert torch.isfinite(loss)
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient"
    for head in (model.pmsp, model.ctp):
        for name, p in (head.named_parameters() if head is not None else []):
            assert p.grad.abs().sum() > 0, f"head parameter {name} has a zero gradient"
    assert not any(k.startswith("dense.head.") for k in model.backbone.state_dict())


def _run(tmp_path, name, epochs, resume=False):
    mcfg, pcfg = small()
    # a step schedule: its lr does not depend on the total epochs a run was started with
    tcfg = TrainConfig(epochs=epochs, batch_size=4, lr=2e-3, warmup_epochs=0, seed=3,
                       lr_steps=(50,))
    model, last = pretrain((Clips(6, 1), Clips(3, 2)), tmp_path / name, mcfg, pcfg, tcfg,
                           resume=resume)
    return model, last


def test_deterministic_and_resume(tmp_path):
    a, last_a = _run(tmp_path, "a", 2)
    b, _ = _run(tmp_path, "b", 2)
    _run(tmp_path, "c", 1)
    c, last_c = _run(tmp_path, "c", 2, resume=True)
    for (k, va), vb, vc in zip(a.state_dict().items(), b.state_dict().values(),
                               c.state_dict().values()):
        assert torch.equal(va, vb), f"{k}: two identical runs differ"
        assert torch.equal(va, vc), f"{k}: a resumed run differs from an uninterrupted one"
    assert last_a["loss"] == last_c["loss"]
    assert all(v == v for v in last_a.values())  # no NaN metrics
    rows = (tmp_path / "c" / "metrics.csv").read_text().splitlines()
    assert len(rows) == 3
    assert {"epoch", "loss", "train_pmsp_2x2_2", "val_pmsp_4x4_1", "val_ctp"} <= set(
        rows[0].split(","))
    with pytest.raises(FileExistsError):
        _run(tmp_path, "a", 3)


def test_finetune_init(tmp_path):
    from hybrid.training import checkpoint

    _run(tmp_path, "p", 1)
    ck = checkpoint.load(tmp_path / "p" / "checkpoint.pt")
    assert ck["kind"] == "pretrain" and ck["classes"] == [] and set(ck["heads"]) == {"pmsp", "ctp"}
    cfg, state = finetune_init(ck, num_classes=5, seed=7)
    assert cfg.num_classes == 5
    for k, v in ck["model"].items():
        assert torch.equal(state[k], v), k
    seed_everything(7)
    scratch = HybridModel(cfg).state_dict()
    for k in HEAD_KEYS:  # the classifier starts as a run from scratch with the same seed
        assert torch.equal(state[k], scratch[k]), k
    model = HybridModel(cfg)
    model.load_state_dict(state)
    x = decode_sample(Clips(1, 0)[0])
    out = model(x["iframe"][None], x["mv"][None], x["residual"][None])
    assert out.shape == (1, 5) and torch.isfinite(out).all()


def test_cli_pretrain_then_train_init(tmp_path):
    from hybrid.cli import main
    from hybrid.video.synth import SynthConfig, make_dataset

    data = tmp_path / "data"
    make_dataset(data, classes=2, per_class=4, seed=0, cfg=SynthConfig(size=(64, 48),
                                                                       frames=24))
    r = CliRunner().invoke(main, ["pretrain", str(data), "-o", str(tmp_path / "pre"),
                                  "--epochs", "1", "--size", "32", "--segments", "2",
                                  "--levels", "2x2,4x1", "--batch-size", "3",
                                  "--video-size", "64x48"])
    assert r.exit_code == 0, r.output
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert {"val_pmsp_2x2_2", "val_pmsp_4x4_1", "val_ctp"} <= set(last)
    r = CliRunner().invoke(main, ["train", str(data), "-o", str(tmp_path / "ft"),
                                  "--epochs", "1", "--video-size", "64x48", "--batch-size", "3",
                                  "--init", str(tmp_path / "pre" / "checkpoint.pt")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["pretrain", str(data), "-o", str(tmp_path / "pre"),
                                  "--epochs", "2", "--resume", "--video-size", "64x48"])
    assert r.exit_code == 0, r.output
    assert "resuming" in r.output
    # a model option that differs from the run's: refused naming both (it was kept silently)
    before = (tmp_path / "pre" / "checkpoint.pt").read_bytes()
    r = CliRunner().invoke(main, ["pretrain", str(data), "-o", str(tmp_path / "pre"),
                                  "--epochs", "3", "--resume", "--video-size", "64x48",
                                  "--size", "48", "--segments", "3"])
    assert r.exit_code == 2, r.output
    assert "--size 48 (the checkpoint's: 32)" in r.output, r.output
    assert "--segments 3 (the checkpoint's: 2)" in r.output
    assert (tmp_path / "pre" / "checkpoint.pt").read_bytes() == before
    r = CliRunner().invoke(main, ["pretrain", str(data), "-o", str(tmp_path / "x"),
                                  "--tasks", "ctp,ctp-binary"])
    assert r.exit_code != 0 and "pick one" in r.output


def test_synth_difficulty_options():
    """hybrid synth's harder settings: the defaults render as before the options existed
    (speed 1, one distractor), --speed scales the motion, --distractors adds squares."""
    import numpy as np

    from hybrid.video.synth import SynthConfig, render_video

    base = SynthConfig(size=(96, 64), frames=12)
    assert all(np.array_equal(a, b) for a, b in zip(
        render_video(1, 3, base), render_video(1, 3, SynthConfig(size=(96, 64), frames=12,
                                                                  speed=1.0, distractors=1))))

    def rise(speed: float) -> float:  # move_up: the red object's centroid, frame 0 -> 11
        cfg = SynthConfig(size=(96, 64), frames=12, speed=speed, distractors=0, noise=0,
                          jitter=0)
        f = render_video(0, 3, cfg)
        ys = [np.nonzero(x[..., 0].astype(int) - x[..., 1] > 80)[0].mean() for x in (f[0], f[11])]
        return ys[0] - ys[1]

    assert abs(rise(1.0) - 22) < 2 and abs(rise(0.5) - 11) < 2, (rise(1.0), rise(0.5))
    one = render_video(1, 3, base)
    more = render_video(1, 3, SynthConfig(size=(96, 64), frames=12, distractors=4))
    assert sum(int((a != b).any(-1).sum()) for a, b in zip(one, more)) > 12 * 100
    with pytest.raises(ValueError, match="speed"):
        SynthConfig(speed=0)


@pytest.mark.parametrize("task", ["ctp", "ctp-binary"])
def test_held_out_ctp_is_balanced(task):
    """evaluate() shows every clip under every CTP type: a model that always answers one
    type scores exactly the chance level (1/3 for ctp, 1/2 balanced for ctp-binary),
    whatever the draws, and PMSP is scored on the clips as they are."""
    from hybrid.pretraining.pretrain import evaluate
    from hybrid.pretraining.tasks import pmsp_targets

    mcfg, pcfg = small(("pmsp", task))
    seed_everything(0)
    model = PretrainModel(mcfg, pcfg).eval()
    name = task.replace("-", "_")
    clips = Clips(5, 2)  # 5 clips: batches of 2, 2 and 1 (one clip: swapped -> shifted)
    for answer in range(2 if task == "ctp-binary" else 3):
        with torch.no_grad():
            model.ctp.fc2.weight.zero_()
            model.ctp.fc2.bias.copy_(torch.arange(model.ctp.fc2.out_features) == answer)
        acc = evaluate(model, clips, batch_size=2)
        assert acc[name] == pytest.approx(pcfg.chance()[name]), (answer, acc)
    # PMSP: the aligned clips' labels
    batch = decode(torch.utils.data.default_collate([clips[i] for i in range(5)]))
    with torch.no_grad():
        logits = model(batch["iframe"], batch["mv"], batch["residual"])
    names = [n for n in pcfg.names() if n.startswith("pmsp")]
    for lname, y in zip(names, pmsp_targets(batch["mv"], pcfg.levels), strict=True):
        keep = y != -100
        want = float((logits[lname].argmax(-1)[keep] == y[keep]).float().mean())
        assert acc[lname] == pytest.approx(want, abs=1e-6), lname
