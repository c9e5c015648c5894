"""hybrid.explain.maps: the geometry, the methods against independent paths (finite
differences, a hooked token gradient, F.interpolate), the segment order, and the
Must-show: on a clip whose motion is confined to a known box, the MV and residual maps
of a tiny trained model put most of their mass inside the box."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hybrid.explain import maps as ex
from hybrid.model import HybridConfig, HybridModel

VIDEO = (64, 48)  # (W, H), the conftest's trained model's videos


def _model(size=24, segments=2, stm=None, **kw) -> HybridModel:
    torch.manual_seed(0)
    stm = {"weight_scale": 10.0, "input_frac_bits": 6, "widths": (4, 6, 5), **(stm or {})}
    cfg = HybridConfig(num_classes=3, segments=segments, size=(size, size), stm=stm, **kw)
    return HybridModel(cfg).eval()


def _sample(size=24, segments=2, seed=0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"iframe": torch.randn(segments, 3, size, size, generator=g),
            "mv": 0.2 * torch.randn(segments, 11, 2, size, size, generator=g),
            "residual": torch.randn(segments, 11, 3, size, size, generator=g)}


# ---- geometry


@pytest.mark.parametrize("n_in,n_out", [(3, 12), (5, 20), (4, 10), (7, 24), (1, 6)])
def test_upsample_equals_interpolate_for_its_geometry(n_in, n_out):
    """With step = out / in and offset = (step - 1) / 2, upsample is F.interpolate's
    bilinear resize (align_corners=False)."""
    m = np.random.default_rng(n_in).normal(size=(2, n_in, n_in + 1))
    step = (n_out / n_in, (n_out + 3) / (n_in + 1))
    got = ex.upsample(m, (n_out, n_out + 3), step, ((step[0] - 1) / 2, (step[1] - 1) / 2))
    want = F.interpolate(torch.from_numpy(m)[None], size=(n_out, n_out + 3),
                         mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("strides,size", [((2, 1, 1), 24), ((2, 2, 1), 30), ((2, 1, 1), 23)])
def test_stm_map_centres_are_their_receptive_fields(strides, size):
    """Each interior STM feature's receptive field (the input gradient of an STM-shaped
    conv chain with symmetric kernels) is centred where pframe_geometry puts it."""
    model = _model(size=size, stm={"strides": strides})
    step, offset = ex.pframe_geometry(model)
    h, w = model.cfg.stm_output_size()
    img = torch.zeros(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    out = img
    for s in strides:
        out = F.conv2d(out, torch.ones(1, 1, 3, 3, dtype=torch.float64), stride=s, padding=1)
    assert out.shape[-2:] == (h, w)
    yy, xx = np.mgrid[0:size, 0:size]
    margin = int(np.ceil(7 / step))  # receptive field radius 1 + s1 + s1*s2 <= 7 px
    for fy in range(margin, h - margin):
        for fx in (margin, w // 2, w - margin - 1):
            (g,) = torch.autograd.grad(out[0, 0, fy, fx], img, retain_graph=True)
            g = g[0, 0].numpy()
            cy, cx = (g * yy).sum() / g.sum(), (g * xx).sum() / g.sum()
            assert (cy, cx) == pytest.approx((offset + step * fy, offset + step * fx))


def test_patch_geometry_centres_patches():
    """Upsampled one-hot patch maps: every pixel's largest value is its own patch's
    (with the padding split as PatchEmbed splits it)."""
    for size in (24, 22, 26):
        model = _model(size=size)
        step, offset = ex.patch_geometry(model)
        g = model.dense.cfg.grid
        heat = ex.upsample(np.eye(g * g).reshape(g * g, g, g), (size, size), step, offset)
        emb = model.dense.embed["i"]
        (k, _), (left, _, top, _) = emb.kernel, emb.pad
        owner = ((np.arange(size)[:, None] + top) // k) * g + (np.arange(size) + left) // k
        np.testing.assert_array_equal(heat.argmax(0), owner, err_msg=f"size {size}")


# ---- methods against independent paths


def test_gradcam_of_a_hand_built_score():
    """y = sum_c w_c * mean(A_c): alpha_c = w_c / (h w), so Grad-CAM = ReLU(sum w_c A_c) / (h w)."""
    g = torch.Generator().manual_seed(3)
    act = torch.randn(2, 4, 5, 6, generator=g, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0])
    (act.mean((2, 3)) * w).sum().backward()
    want = torch.relu((w[None, :, None, None] * act.detach()).sum(1)) / 30
    torch.testing.assert_close(ex.gradcam(act.detach(), act.grad), want)


@pytest.mark.parametrize("size", [24, 22])
def test_token_gradient_equals_the_hooked_one(size):
    """The I-frame token gradient recovered from the pixel gradient equals the one a
    forward hook captures at the patch embedding's output (incl. a padded size)."""
    model, sample = _model(size=size), _sample(size=size)
    captured = {}

    def hook(module, inputs, out):
        out.retain_grad()
        captured["tok"] = out

    handle = model.dense.embed["i"].register_forward_hook(hook)
    try:
        logits, leaves = ex.class_logits(model, sample)
        logits[:, 1].sum().backward()
    finally:
        handle.remove()
    got = ex.token_gradient(model.dense.embed["i"], leaves["i"].grad.flatten(0, 1))
    torch.testing.assert_close(got, captured["tok"].grad, rtol=1e-4, atol=1e-6)


def test_saliency_equals_finite_differences():
    """MV and I-frame saliency maps against central differences of the class logit
    (the dense partition in float64)."""
    model, sample = _model(), _sample()
    e = ex.explain(model, sample, class_index=2, method="saliency")
    _, leaves = ex.class_logits(model, sample)
    dense = model.dense.double()
    x = {m: leaves[m].detach().double() for m in leaves}

    def score(m, idx, d):
        z = {k: v.clone() for k, v in x.items()}
        z[m][idx] += d
        with torch.no_grad():
            return float(dense(z["i"], z["mv"], z["r"])[:, 2].sum())

    rng = np.random.default_rng(0)
    for m in ("i", "mv"):
        _, k, C, h, w = x[m].shape  # (clips, k, C, h, w)
        for _ in range(4):
            s, yy, xx = int(rng.integers(k)), int(rng.integers(h)), int(rng.integers(w))
            fd = [(score(m, (0, s, c, yy, xx), 1e-5) - score(m, (0, s, c, yy, xx), -1e-5)) / 2e-5
                  for c in range(C)]
            assert e.maps[m][s, yy, xx] == pytest.approx(max(abs(v) for v in fd), rel=1e-3,
                                                         abs=1e-7)


def test_segments_keep_their_order():
    """Explaining 2k segments (two interleaved clips) gives each segment the map it gets
    in its own clip alone."""
    model = _model()
    both = _sample(segments=4, seed=1)
    e = ex.explain(model, both, class_index=0)
    for j in range(2):
        alone = ex.explain(model, {k: v[j::2] for k, v in both.items()}, class_index=0)
        for m in e.maps:
            np.testing.assert_allclose(e.maps[m][j::2], alone.maps[m], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kw", [{"temporal": "none"}, {"temporal": "lstm"},
                                {"modalities": ("mv", "r")}, {"temporal": "common"}])
def test_ablated_models_explain(kw):
    model = _model(**kw)
    e = ex.explain(model, _sample(), method="gradcam")
    assert set(e.heat) == set(model.cfg.modalities)
    for m, hm in e.heat.items():
        assert hm.shape == (2, 24, 24) and np.isfinite(hm).all() and (hm >= 0).all(), m


def test_file_round_trip_and_version(tmp_path):
    e = ex.explain(_model(), _sample(), method="gradcam", classes=["a", "b", "c"])
    e.meta = {"video": "v.avi"}
    path = ex.save(e, tmp_path / "maps.npz")
    back = ex.load(path)
    assert (back.method, back.class_name, back.classes, back.meta) == (
        e.method, e.class_name, e.classes, e.meta)
    for d in ("maps", "heat", "inputs"):
        for k, v in getattr(e, d).items():
            np.testing.assert_array_equal(getattr(back, d)[k], v)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ex.ExplainError, match="bad.npz"):
        ex.load(tmp_path / "bad.npz")


def test_display_inputs_invert_the_normalisation():
    from hybrid.data.dataset import COVIAR_NORM as N

    rgb = np.random.default_rng(0).integers(0, 256, (2, 24, 24, 3)).astype(np.uint8)
    mv = np.random.default_rng(1).integers(-15, 16, (2, 11, 24, 24, 2)).astype(np.float32)
    res = np.random.default_rng(2).integers(-100, 100, (2, 11, 24, 24, 3)).astype(np.float32)
    sample = {"iframe": torch.from_numpy(N.iframe(rgb)).permute(0, 3, 1, 2),
              "mv": torch.from_numpy(N.mv(mv)).permute(0, 1, 4, 2, 3),
              "residual": torch.from_numpy(N.residual(res)).permute(0, 1, 4, 2, 3)}
    d = ex.display_inputs(sample, (24, 24))
    np.testing.assert_array_equal(d["iframe"], rgb)
    step = N.mv_bound / 127.5  # the normalisation's quantum (trunc towards zero)
    assert np.abs(d["mv"] - mv[:, -1]).max() <= step + 1e-4
    np.testing.assert_allclose(d["residual"], res[:, -1], atol=1e-3)


# ---- the Must-show: mass inside the box of motion


BOX_VIDEO = (96, 96)  # (W, H) of the box clips
BOX = (32, 64, 64, 80)  # (top, left, bottom, right) in video pixels: where anything moves
BOX_CROP = 32  # the box model's crop side


def box_video(path, direction: int, seed: int, frames=12):
    """A static textured background (no noise) and a textured 12x12 square moving up
    (direction -1) or down (+1) 1 px a frame, restarting each GOP. Its path (rows 37..59,
    columns 66..78) covers whole 16x16 macroblocks only in BOX, so every motion vector
    and residual of the clip lies in BOX (off-centre in the frame)."""
    from hybrid.video.transcode import EncodeConfig, encode_mpeg4

    w, h = BOX_VIDEO
    rng = np.random.default_rng(seed)
    bg = np.kron(rng.uniform(60, 200, (h // 8, w // 8, 3)), np.ones((8, 8, 1)))
    tex = rng.uniform(0, 255, (12, 12, 3))
    out = []
    for t in range(frames):
        k = t % 12
        img = bg.copy()
        y = 42 + direction * (k - 5)  # 37 .. 53 (+12 rows)
        img[y:y + 12, 66:78] = tex
        out.append(img.astype(np.uint8))
    encode_mpeg4(out, path, EncodeConfig(size=BOX_VIDEO))
    return path


def crop_box_of(box, crop: int, video=BOX_VIDEO):
    """A video-pixel box in the model's crop: the eval centre crop (0.875 of the short
    side) resized to ``crop``."""
    w, h = video
    side = int(min(w, h) * 0.875)
    top, left, scale = (h - side) // 2, (w - side) // 2, crop / side
    t, l, b, r = box
    return (max(0, int(np.floor((t - top) * scale))), max(0, int(np.floor((l - left) * scale))),
            min(crop, int(np.ceil((b - top) * scale))), min(crop, int(np.ceil((r - left) * scale))))


@pytest.fixture(scope="module")
def box_model(tmp_path_factory):
    """A tiny one-segment hybrid model trained (a plain Adam loop) to tell up from down
    motion in BOX clips read by the real pipeline (MPEG-4 MVs and residuals)."""
    from deploy.artifact.inputs import decode_sample
    from hybrid.data.dataset import CompressedVideoDataset

    root = tmp_path_factory.mktemp("box")
    items = []
    for i in range(8):
        d = 1 if i % 2 else -1
        box_video(root / f"v{i}.avi", d, seed=100 + i)
        items.append((f"v{i}.avi", int(d > 0)))
    ds = CompressedVideoDataset(root, items, 1, train=False, crop=BOX_CROP, video_size=BOX_VIDEO)
    batch = [decode_sample(ds[i]) for i in range(len(ds))]
    x = {k: torch.stack([b[k] for b in batch]) for k in ("iframe", "mv", "residual", "label")}
    torch.manual_seed(0)
    model = HybridModel(HybridConfig(num_classes=2, segments=1, size=(BOX_CROP, BOX_CROP), stm={
        "weight_scale": 10.0, "input_frac_bits": 6, "widths": (4, 6, 5)}))
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    model.train()
    for _ in range(25):
        loss = F.cross_entropy(model(x["iframe"], x["mv"], x["residual"]), x["label"])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(x["iframe"], x["mv"], x["residual"]).argmax(1) == x["label"]).float().mean()
    assert acc == 1.0, f"the box model did not learn up from down (train accuracy {acc})"
    return model, root


@pytest.mark.parametrize("direction", [-1, 1])
def test_maps_of_a_trained_model_lie_in_the_box_of_motion(box_model, direction):
    """Grad-CAM of the MV and residual STM maps: all but a sliver of the mass lies in
    BOX widened by the STM's receptive-field radius (a feature whose receptive field
    misses BOX sees the same still input as any other). Saliency is printed, not
    asserted: |d y / d v| at the linear patch embedding is not local (docs/explain.md)."""
    model, root = box_model
    path = box_video(root / f"test{direction}.avi", direction, seed=7)  # not trained on
    sample, _ = ex.read_video(model, path, video_size=BOX_VIDEO)
    box = crop_box_of(BOX, BOX_CROP)
    outside = np.ones(sample["mv"].shape[-2:], bool)
    outside[box[0]:box[2], box[1]:box[3]] = False
    assert np.abs(sample["mv"].numpy()[..., outside]).max() < 0.01, "motion outside BOX"
    stm = model.cfg.stm_config(2)
    radius = sum(k // 2 * int(np.prod(stm.strides[:i])) for i, k in enumerate(stm.kernels))
    assert radius == 5
    wide = (max(0, box[0] - radius), max(0, box[1] - radius),
            min(BOX_CROP, box[2] + radius), min(BOX_CROP, box[3] + radius))
    area = (wide[2] - wide[0]) * (wide[3] - wide[1]) / BOX_CROP**2
    masses = {}
    for method in ex.METHODS:
        e = ex.explain(model, sample, method=method, classes=["up", "down"])
        assert e.class_index == int(direction > 0), e.probabilities
        masses[method] = {m: round(ex.mass_inside(e.heat[m], wide), 3) for m in e.heat}
    print(f"direction {direction}: BOX + receptive field = {area:.3f} of the crop; "
          f"mass inside: {masses}")
    for m in ("mv", "r"):
        assert masses["gradcam"][m] > 0.9, (m, area, masses)


# ---- the figure's colour scales


def _explanation(method: str, maps: dict[str, np.ndarray], size: int = 24) -> ex.Explanation:
    S = next(iter(maps.values())).shape[0]
    heat = {m: ex.upsample(a, (size, size), (size / a.shape[-1],) * 2,
                           ((size / a.shape[-1] - 1) / 2,) * 2) for m, a in maps.items()}
    inputs = {"iframe": np.zeros((S, size, size, 3), np.uint8),
              "mv": np.zeros((S, size, size, 2), np.float32),
              "residual": np.zeros((S, size, size, 3), np.float32)}
    return ex.Explanation(method, 0, ["a", "b"], np.array([0.6, 0.4]), maps, heat, inputs,
                          {"gops": [0, 0, 1][:S], "num_gops": 2})


def test_gradcam_has_one_scale_in_logit_per_pixel():
    """Uniform maps of equal total Grad-CAM (4x4 tokens at c, 8x8 STM cells at c / 4)
    colour alike; a modality 1000 times weaker stays 1000 times darker (no per-panel or
    per-modality stretch)."""
    from hybrid.explain.plot import colour_scales

    c = 0.3
    maps = {"i": np.full((3, 4, 4), c), "mv": np.full((3, 8, 8), c / 4),
            "r": 1e-3 * np.random.default_rng(0).random((3, 12, 12))}
    e = _explanation("gradcam", maps)
    norm, tops, what = colour_scales(e)
    np.testing.assert_allclose(norm["i"], 1.0)
    np.testing.assert_allclose(norm["mv"], 1.0)
    assert norm["r"].max() == pytest.approx(e.heat["r"].max() * 144 / (c * 16))
    assert norm["r"].max() < 0.05 and len(set(tops.values())) == 1
    assert tops["i"] == pytest.approx(c * 16 / 24**2) and "whole figure" in what


def test_saliency_has_one_scale_per_modality_across_segments():
    from hybrid.explain.plot import colour_scales

    rng = np.random.default_rng(1)
    maps = {"i": rng.random((2, 24, 24)), "mv": 1e-3 * rng.random((2, 6, 6)),
            "r": rng.random((2, 6, 6))}
    maps["r"][1] *= 1e-2  # a weak segment stays weak within its modality
    norm, tops, what = colour_scales(_explanation("saliency", maps))
    for m in maps:
        assert norm[m].max() == pytest.approx(1.0) and tops[m] == pytest.approx(
            _explanation("saliency", maps).heat[m].max())
    assert norm["r"][1].max() < 0.02 and "per modality across segments" in what


@pytest.mark.parametrize("method,bars", [("gradcam", 1), ("saliency", 3)])
def test_figure_has_colour_bars_stating_the_max_and_gop_labels(method, bars):
    from hybrid.explain.plot import colour_scales, figure

    rng = np.random.default_rng(2)
    e = _explanation(method, {"i": rng.random((3, 4, 4)), "mv": rng.random((3, 8, 8)),
                              "r": rng.random((3, 8, 8))})
    _, tops, _ = colour_scales(e)
    fig, plt = figure(e, "clip")
    try:
        panels, extra = fig.axes[:3 * 6], fig.axes[3 * 6:]
        labels = [ax.get_xlabel() for ax in extra]
        assert len(extra) == bars and all("normalised" in s and "the max" in s for s in labels)
        for m in ("i", "mv", "r")[:bars]:
            assert any(f"{tops[m]:.3g}" in s for s in labels), (tops, labels)
        rows = [panels[6 * s].get_ylabel() for s in range(3)]
        assert rows == ["segment 0\nGOP 0 (0..1)", "segment 1\nGOP 0 (0..1)",
                        "segment 2\nGOP 1 (0..1)"]
        assert "colour: " in fig.get_suptitle()
    finally:
        plt.close(fig)
