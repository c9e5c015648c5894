"""The dense partition: shapes, gradients, odd sizes, every switch, counting, ONNX."""
import dataclasses
import itertools

import pytest
import torch

from ann.config import MODALITIES, VARIANTS, DenseConfig
from ann.counting import count, flop_counter_macs, totals
from ann.layers.patch_embed import PatchEmbed, patch_geometry
from ann.model import DenseModel

ODD = {"image_size": (29, 23), "stm_size": (9, 7)}  # not divisible by the 4x4 grid


def small(name: str, **changes) -> DenseConfig:
    """A variant on small, odd-sized inputs; base/large with one segment to stay fast."""
    extra = {} if name == "tiny" else {"segments": 1, "stm_channels": 4}
    return dataclasses.replace(VARIANTS[name], **{**ODD, **extra, **changes})


def inputs(cfg: DenseConfig, batch: int = 2) -> dict:
    return {m: torch.randn(batch, cfg.segments, *cfg.in_shape(m)) for m in cfg.modalities}


def run(model: DenseModel, xs: dict) -> torch.Tensor:
    return model(xs.get("i"), xs.get("mv"), xs.get("r"))


SUBSETS = [s for k in (1, 2, 3) for s in itertools.combinations(MODALITIES, k)]
SWITCHES = (
    [{"encoder": e, "pooling": p} for e, p in itertools.product(
        ("unified", "separate", "cross"), ("gap", "cls"))]
    + [{"mixer": False}, {"skips": False}, {"rrdb": False},
       {"mixer": False, "rrdb": False, "pooling": "cls"}]
    + [{"modalities": s} for s in SUBSETS]
    + [{"modalities": s, "encoder": "cross"} for s in SUBSETS if len(s) == 2]
)
CASES = [("tiny", sw) for sw in SWITCHES] + [("base", {}), ("large", {})]
IDS = [f"{n}-" + "-".join(f"{k}={v}" for k, v in sw.items()) for n, sw in CASES]


@pytest.mark.parametrize(("name", "switches"), CASES, ids=IDS)
def test_forward_backward_every_variant_and_switch(name, switches):
    cfg = small(name, **switches)
    model = DenseModel(cfg)
    xs = inputs(cfg)
    logits = run(model, xs)
    assert logits.shape == (2, cfg.num_classes)
    assert torch.isfinite(logits).all()
    feats = model.forward_features(xs.get("i"), xs.get("mv"), xs.get("r"))
    assert feats.shape == (2, cfg.filters)
    torch.testing.assert_close(model.forward_head(feats), logits)
    (logits * torch.randn_like(logits)).sum().backward()
    for n, p in model.named_parameters():
        assert p.grad is not None, f"{n} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{n} has a non-finite gradient"
        assert p.grad.abs().sum() > 0, f"{n} has an all-zero gradient"


@pytest.mark.parametrize(("name", "switches"), CASES, ids=IDS)
def test_analytic_params_equal_module_params(name, switches):
    cfg = small(name, **switches)
    with torch.device("meta"):
        model = DenseModel(cfg)
    assert totals(count(cfg))["params"] == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(("name", "switches"), CASES, ids=IDS)
def test_analytic_macs_match_flop_counter_odd_sizes(name, switches):
    cfg = small(name, **switches)
    ours, torch_count = totals(count(cfg))["macs"], flop_counter_macs(cfg)
    assert abs(ours - torch_count) <= 0.01 * torch_count, (ours, torch_count)


@pytest.mark.parametrize(("name", "switches"), CASES, ids=IDS)
def test_analytic_macs_match_flop_counter_per_component(name, switches):
    cfg = small(name, **switches)
    theirs = flop_counter_macs(cfg, per_component=True)
    for c in count(cfg):
        assert abs(c.macs - theirs[c.name]) <= 0.01 * max(theirs[c.name], 1), (
            c.name, c.macs, theirs[c.name])
    assert sum(theirs.values()) == flop_counter_macs(cfg), "components must cover the model"


@pytest.mark.parametrize("name", list(VARIANTS))
def test_analytic_macs_match_flop_counter_default_sizes(name):
    """Every variant at its own size (base/large: 224x224, 8 segments), on meta."""
    cfg = VARIANTS[name]
    ours, torch_count = totals(count(cfg))["macs"], flop_counter_macs(cfg)
    assert abs(ours - torch_count) <= 0.01 * torch_count, (ours, torch_count)


def test_macs_scale_with_segments_and_attention_is_counted():
    one, two = (totals(count(small("tiny", segments=s)))["macs"] for s in (1, 2))
    # everything but attention is linear in S; attention (quadratic) makes it more than 2x
    assert two > 2 * one


@pytest.mark.parametrize("size", [1, 3, 4, 5, 13, 56, 57, 224])
def test_patch_geometry_covers_without_overlap(size):
    k, pad = patch_geometry(size, 4)
    assert k * 4 == size + pad and 0 <= pad < 4


@pytest.mark.parametrize("hw", [(13, 10), (6, 9), (4, 7), (57, 45)])
def test_patch_embed_cuts_non_overlapping_patches_of_real_pixels(hw):
    """Every pixel reaches exactly one of the 16 tokens, every token sees real pixels."""
    H, W = hw
    embed = PatchEmbed(2, hw, 4, 8)
    x = torch.randn(1, 2, H, W)
    base = embed(x)
    assert base.shape == (1, 16, 8)
    conv = torch.nn.functional.conv2d(torch.nn.functional.pad(x, embed.pad),
                                      embed.proj.weight, embed.proj.bias, stride=embed.kernel)
    torch.testing.assert_close(base, conv.flatten(2).transpose(1, 2))  # the conv it stands for
    x.requires_grad_(True)
    masks = []
    for t in range(16):  # the pixels each token depends on
        (grad,) = torch.autograd.grad(embed(x)[0, t].sum(), x)
        masks.append(grad.abs().sum(1)[0] > 0)  # (H, W)
    hits = torch.stack(masks).long()  # (16, H, W)
    assert (hits.sum(0) == 1).all(), "every pixel must reach exactly one token"
    reached = hits.flatten(1).sum(1)
    assert (reached > 0).all(), f"patches holding only padding: {reached.tolist()}"


def test_absent_modality_may_be_none_present_one_may_not():
    cfg = small("tiny", modalities=("i", "r"))
    model = DenseModel(cfg)
    xs = inputs(cfg)
    assert model(xs["i"], None, xs["r"]).shape == (2, cfg.num_classes)
    with pytest.raises(ValueError, match="'r'.*None"):
        model(xs["i"], None, None)
    with pytest.raises(ValueError, match="expected"):
        model(xs["i"][:, :, :, :-1], None, xs["r"])
    with pytest.raises(ValueError, match="batch sizes differ"):
        model(xs["i"], None, xs["r"][:1])


@pytest.mark.parametrize("bad", [
    {"modalities": ()}, {"modalities": ("i", "depth")}, {"encoder": "cross",
    "modalities": ("mv",)}, {"width": 65, "heads": 2}, {"pooling": "max"}, {"image_size": (0, 5)},
])
def test_bad_config_is_refused_with_a_message(bad):
    with pytest.raises(ValueError, match="DenseConfig"):
        dataclasses.replace(VARIANTS["tiny"], **bad)


def test_modalities_are_canonically_ordered():
    cfg = dataclasses.replace(VARIANTS["tiny"], modalities=("r", "i"))
    assert cfg.modalities == ("i", "r")


def test_tiny_fits_a_small_batch():
    """Training works end to end: 40 Adam steps halve the loss on 8 fixed clips."""
    cfg = VARIANTS["tiny"]
    model = DenseModel(cfg)
    xs, y = inputs(cfg, batch=8), torch.arange(8) % cfg.num_classes
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(run(model, xs), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
