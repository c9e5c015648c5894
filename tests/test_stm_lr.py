"""--stm-lr: the STMs' parameters get lr x stm_lr in groups of their own; at 1 the
optimiser is the one it always was (two groups), and a run resumes only with its own."""
import pytest
import torch

from hybrid.model import STM_DEFAULTS, HybridConfig, HybridModel
from hybrid.training.checkpoint import CheckpointError
from hybrid.training.train import TrainConfig, make_optimizer, resume_schedule


def _model():
    torch.manual_seed(0)
    return HybridModel(HybridConfig(num_classes=3, segments=1, timesteps=3, size=(16, 16),
                                    stm={**STM_DEFAULTS, "widths": (2, 2, 2)}))


def _lr_of(opt):
    return {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}


def test_stm_parameters_get_their_own_lr():
    model = _model()
    opt, _ = make_optimizer(model, TrainConfig(lr=1e-3, stm_lr=10.0, warmup_epochs=0))
    lr = _lr_of(opt)
    names = dict(model.named_parameters())
    assert len(lr) == len(names)  # every parameter in exactly one group
    for name, p in names.items():
        want = 1e-2 if name.startswith(("stm_mv.", "stm_res.")) else 1e-3
        assert lr[id(p)] == pytest.approx(want), name
    stm = [n for n in names if n.startswith("stm_mv.")]
    assert any("threshold_raw" in n for n in stm) and any("synapse.weight" in n for n in stm)
    # weight decay on weights only, in both partitions
    for g in opt.param_groups:
        assert all((p.ndim >= 2) == (g["weight_decay"] > 0) for p in g["params"])
    # one AdamW step moves an STM weight 10x as far as at stm_lr 1 (Adam's first step is
    # lr * sign(grad))
    moved = []
    for k in (1.0, 10.0):
        m = _model()
        o, _ = make_optimizer(m, TrainConfig(lr=1e-3, stm_lr=k, warmup_epochs=0,
                                             weight_decay=0.0))
        x = (torch.randn(2, 1, 3, 16, 16), torch.randn(2, 1, 3, 2, 16, 16),
             torch.randn(2, 1, 3, 3, 16, 16))
        m(*x).square().sum().backward()
        before = m.stm_mv.stm.blocks[0].synapse.weight.detach().clone()
        o.step()
        moved.append((m.stm_mv.stm.blocks[0].synapse.weight - before).abs().max().item())
    assert moved[1] == pytest.approx(10 * moved[0], rel=1e-3)


def test_stm_lr_1_keeps_the_two_groups_and_resume_refuses_another():
    model = _model()
    opt, sched = make_optimizer(model, TrainConfig(lr=1e-3))
    assert [g["weight_decay"] > 0 for g in opt.param_groups] == [True, False]
    state = {"train_config": {"stm_lr": 1.0, "optimizer": "adamw"},
             "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    opt2, sched2 = make_optimizer(model, TrainConfig(lr=1e-3, stm_lr=3.0))
    with pytest.raises(CheckpointError, match="stm-lr 1.0, not 3.0"):
        resume_schedule(opt2, sched2, state, TrainConfig(lr=1e-3, stm_lr=3.0), 1)
    opt3, sched3 = make_optimizer(model, TrainConfig(lr=1e-3, stm_lr=3.0))
    st3 = {"train_config": {"stm_lr": 3.0, "optimizer": "adamw"},
           "optimizer": opt3.state_dict(), "scheduler": sched3.state_dict()}
    cfg = TrainConfig(lr=2e-3, stm_lr=3.0, warmup_epochs=0)
    resume_schedule(opt3, sched3, st3, cfg, 0, echo=lambda m: None)
    assert sorted(g["lr"] for g in opt3.param_groups) == pytest.approx([2e-3, 2e-3, 6e-3, 6e-3])
