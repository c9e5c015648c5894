"""Round trips of the dense partition: ONNX via onnxruntime, and the pure-torch file."""
import dataclasses

import pytest
import torch

from ann.config import VARIANTS
from ann.model import DenseModel

pytest.importorskip("onnxruntime")
from ann.onnx_export import OnnxDense, export_onnx, load_torch, save_torch  # noqa: E402

CASES = [
    {},
    {"encoder": "separate", "pooling": "cls"},
    {"encoder": "cross", "modalities": ("mv", "r"), "skips": False},
    {"modalities": ("i",), "mixer": False, "rrdb": False},
    {"stm_norm": True},
]


def _inputs(cfg, batch):
    return {m: torch.randn(batch, cfg.segments, *cfg.in_shape(m)) for m in cfg.modalities}


@pytest.mark.parametrize("changes", CASES, ids=lambda c: "-".join(map(str, c.values())) or "tiny")
def test_onnx_and_torch_paths_give_the_same_logits(tmp_path, changes):
    cfg = dataclasses.replace(VARIANTS["tiny"], image_size=(57, 45), stm_size=(13, 11),
                              **changes)
    model = DenseModel(cfg).eval()
    onnx_path = export_onnx(model, tmp_path / "dense.onnx", batch=2)
    torch_path = save_torch(model, tmp_path / "dense.pt")
    assert not list(tmp_path.glob("*.tmp")), "temporary files left behind"
    runner, reloaded = OnnxDense(onnx_path), load_torch(torch_path)
    assert runner.cfg == cfg and reloaded.cfg == cfg
    xs = _inputs(cfg, batch=3)  # a batch size other than the exported one
    args = (xs.get("i"), xs.get("mv"), xs.get("r"))
    with torch.no_grad():
        ref = model(*args)
        pure = reloaded(*args)
    ort = runner(*args)
    assert ort.shape == ref.shape == (3, cfg.num_classes)
    rel = (ort - ref).abs().max() / ref.abs().max()
    assert rel <= 1e-4, f"onnxruntime differs from torch by {rel:.2e} (relative)"
    torch.testing.assert_close(pure, ref, rtol=0, atol=0)


def test_loaders_refuse_foreign_or_newer_files(tmp_path):
    model = DenseModel(VARIANTS["tiny"])
    path = save_torch(model, tmp_path / "m.pt")
    blob = torch.load(path, weights_only=True)
    blob["version"] = 99
    torch.save(blob, tmp_path / "new.pt")
    with pytest.raises(ValueError, match="new.pt.*version 99"):
        load_torch(tmp_path / "new.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt.*not a"):
        load_torch(tmp_path / "other.pt")


def test_onnx_runner_names_a_missing_input(tmp_path):
    cfg = VARIANTS["tiny"]
    runner = OnnxDense(export_onnx(DenseModel(cfg), tmp_path / "d.onnx"))
    xs = _inputs(cfg, 1)
    with pytest.raises(ValueError, match="d.onnx.*'mv'"):
        runner(xs["i"], None, xs["r"])


def test_stm_norm_standardises_each_stm_map_before_its_embedding():
    """stm_norm: an STM map's tokens do not change when the map is scaled and shifted
    (per clip), the I-frame's do; hand check against an explicit standardisation."""
    cfg = dataclasses.replace(VARIANTS["tiny"], stm_size=(13, 11), stm_norm=True)
    model = DenseModel(cfg).eval()
    assert [m for m, e in model.embed.items() if e.norm] == ["mv", "r"]
    x = torch.randn(2, cfg.stm_channels, 13, 11)
    emb = model.embed["mv"]
    with torch.no_grad():
        tok = emb(x)
        torch.testing.assert_close(emb(7.0 * x + 3.0), tok, rtol=1e-4, atol=1e-4)
        mu = x.mean(dim=(1, 2, 3), keepdim=True)
        sd = x.var(dim=(1, 2, 3), unbiased=False, keepdim=True).add(1e-5).sqrt()
        emb.norm = False
        torch.testing.assert_close(emb((x - mu) / sd), tok, rtol=1e-5, atol=1e-5)
        i = torch.randn(2, 3, *cfg.image_size)
        assert not torch.allclose(model.embed["i"](2 * i), model.embed["i"](i))
    # parameters and the rest of the model are those of the model without it
    plain = DenseModel(dataclasses.replace(cfg, stm_norm=False))
    assert sum(p.numel() for p in plain.parameters()) == sum(
        p.numel() for p in model.parameters())
