"""`hybrid summary`: it counts the model `hybrid train` builds from the same options,
exactly (parameters of the built model, MACs of torch's FlopCounterMode on it)."""
import json

import pytest
import torch
from click.testing import CliRunner
from torch.utils.flop_counter import FlopCounterMode

from hybrid.cli import main
from hybrid.model import STM_DEFAULTS, HybridConfig, HybridModel

K = 101
# summary options -> the HybridConfig that `hybrid train` builds from them (written out
# here, independently of the CLI's mapping)
CASES = {
    "tiny": ([], HybridConfig(variant="tiny", num_classes=K)),
    "base": (["--variant", "base"], HybridConfig(variant="base", num_classes=K)),
    "large": (["--variant", "large", "--size", "40", "--segments", "2"],
              HybridConfig(variant="large", num_classes=K, segments=2, size=(40, 40))),
    "paper": (["--preset", "paper"],
              HybridConfig(variant="base", num_classes=K, segments=8, size=(224, 224))),
    "paper-large": (["--preset", "paper", "--variant", "large"],
                    HybridConfig(variant="large", num_classes=K, segments=8, size=(224, 224))),
    "cross-cls-norrdb": (
        ["--encoder", "cross", "--pooling", "cls", "--no-rrdb", "--size", "37", "--classes", "7"],
        HybridConfig(variant="tiny", num_classes=7, size=(37, 37),
                     dense={"encoder": "cross", "pooling": "cls", "rrdb": False})),
    "separate-nomixer-ir": (
        ["--encoder", "separate", "--no-mixer", "--modalities", "i,r", "--segments", "2"],
        HybridConfig(variant="tiny", num_classes=K, segments=2, modalities=("i", "r"),
                     dense={"encoder": "separate", "mixer": False})),
    "noskips-mv": (["--no-skips", "--modalities", "mv"],
                   HybridConfig(variant="tiny", num_classes=K, modalities=("mv",),
                                dense={"skips": False})),
    # the STM ablations (poster, STM table)
    "no-stm": (["--temporal", "none"], HybridConfig(variant="tiny", num_classes=K,
                                                    temporal="none")),
    "no-stm-base-r": (["--temporal", "none", "--variant", "base", "--size", "64",
                       "--modalities", "i,r"],
                      HybridConfig(variant="base", num_classes=K, size=(64, 64),
                                   modalities=("i", "r"), temporal="none")),
    "common": (["--temporal", "common"], HybridConfig(variant="tiny", num_classes=K,
                                                      temporal="common")),
    "common-base": (["--temporal", "common", "--variant", "base", "--size", "40",
                     "--segments", "2"],
                    HybridConfig(variant="base", num_classes=K, size=(40, 40), segments=2,
                                 temporal="common")),
    "common-mv-only": (["--temporal", "common", "--modalities", "i,mv"],
                       HybridConfig(variant="tiny", num_classes=K, modalities=("i", "mv"),
                                    temporal="common")),
    "lstm": (["--temporal", "lstm"], HybridConfig(variant="tiny", num_classes=K,
                                                  temporal="lstm")),
    "lstm-base-37": (["--temporal", "lstm", "--variant", "base", "--size", "37"],
                     HybridConfig(variant="base", num_classes=K, size=(37, 37),
                                  temporal="lstm")),
    "fixed-lif": (["--fixed-lif"],
                  HybridConfig(variant="tiny", num_classes=K,
                               stm={**STM_DEFAULTS, "learn_neuron": False})),
    "fixed-lif-common": (["--fixed-lif", "--temporal", "common", "--encoder", "separate"],
                         HybridConfig(variant="tiny", num_classes=K, temporal="common",
                                      stm={**STM_DEFAULTS, "learn_neuron": False},
                                      dense={"encoder": "separate"})),
}


def _summary(args):
    res = CliRunner().invoke(main, ["summary", *args, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def _flops(cfg: HybridConfig) -> dict[str, int]:
    """FLOPs per module of one video's forward pass through the built model (meta device:
    nothing is allocated or computed, so the paper's setting counts in a second)."""
    H, W = cfg.stm_input_size()
    S, T = cfg.segments, cfg.timesteps
    with torch.device("meta"):
        model = HybridModel(cfg)
        x = (torch.empty(1, S, 3, *cfg.size), torch.empty(1, S, T, 2, H, W),
             torch.empty(1, S, T, 3, H, W))
    with FlopCounterMode(display=False) as fc:
        model(*x)
    counts = {k: sum(v.values()) for k, v in fc.get_flop_counts().items()}
    counts["params"] = sum(p.numel() for p in model.parameters())  # shared ones once
    counts["trainable"] = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return counts


@pytest.mark.parametrize("case", list(CASES))
def test_summary_counts_the_built_model(case):
    args, cfg = CASES[case]
    rep = _summary(args)
    assert rep["model_config"] == json.loads(json.dumps(cfg.to_dict())), "not train's model"
    assert rep["params"] == sum(c["params"] for c in rep["components"])
    assert rep["macs"] == sum(c["macs"] for c in rep["components"])
    fc = _flops(cfg)
    assert rep["params"] == fc["params"]
    trainable = fc.pop("trainable")
    if not cfg.stm.get("learn_neuron", True):  # threshold and leak of each STM layer fixed
        n_stm = len({"mv", "r"} & set(cfg.modalities))
        n_layers = 3 * n_stm - (2 if cfg.temporal == "common" and n_stm == 2 else 0)
        assert rep["params"] - trainable == 2 * n_layers
    else:
        assert trainable == rep["params"]
    # every conv, linear and attention matmul the built model runs, STMs included: the
    # summary's MACs plus the STM spiking layers' operations at firing rate 1
    spiking = rep["stm_spiking_ops_at_rate_1"]
    assert fc["HybridModel"] == 2 * (rep["macs"] + sum(spiking.values()))
    rows = {c["name"]: c for c in rep["components"]}
    dense = sum(c["macs"] for n, c in rows.items() if not n.startswith(("stm.", "lstm.")))
    assert fc["HybridModel.dense"] == 2 * dense
    branches = [(m, b) for m, b in (("mv", "stm_mv"), ("r", "stm_res")) if m in cfg.modalities]
    for m, branch in (("mv", "stm_mv"), ("r", "stm_res")):
        if m not in cfg.modalities or cfg.temporal != "stm":
            assert f"stm.{m}" not in rows or cfg.temporal == "common"
        if m not in cfg.modalities or not cfg.spiking:
            assert m not in spiking
        if cfg.temporal == "lstm" and m in cfg.modalities:  # a dense row: all MACs
            assert rows[f"lstm.{m}"]["macs"] * 2 == fc[f"HybridModel.{branch}"]
            assert rows[f"lstm.{m}"]["macs"] > 0
    if cfg.temporal == "none":  # everything is the dense partition's
        assert not spiking and all(b not in "".join(fc) for _, b in branches)
        assert not any(n.startswith(("stm.", "lstm.")) for n in rows)
    if cfg.spiking:
        # a shared block is named once by the counter (under the first branch calling it)
        block = [sum(fc.get(f"HybridModel.{b}.stm.blocks.{i}", 0) for _, b in branches)
                 for i in range(3)]
        assert sum(rows[f"stm.{m}"]["macs"] for m, _ in branches) * 2 == block[0]  # analog
        assert sum(spiking.values()) * 2 == block[1] + block[2]  # ACs = rate x this
        for m, b in branches:  # each branch's own first layer
            assert rows[f"stm.{m}"]["macs"] * 2 == fc[f"HybridModel.{b}.stm.blocks.0"]


def test_paper_geometry():
    """224 px crops give the 56x56 STM maps of the paper's parameter count."""
    rep = _summary(["--preset", "paper"])
    assert rep["config"]["image_size"] == [224, 224] and rep["config"]["stm_size"] == [56, 56]
    assert rep["config"]["segments"] == 8 and rep["variant"] == "base"
    assert abs(rep["params"] / 83.41e6 - 1) < 0.01, rep["params"]
    # an option beside the preset overrides that one value only
    rep = _summary(["--preset", "paper", "--segments", "4"])
    assert rep["config"]["segments"] == 4 and rep["config"]["image_size"] == [224, 224]


def test_tiny_geometry_is_the_demo_model():
    """tiny keeps the STM stride 2 (16x28x28 maps at 56 px) its demo accuracy was measured
    with."""
    cfg = HybridConfig(variant="tiny", size=(48, 48))
    assert cfg.stm_config(2).strides == (2, 1, 1) and cfg.stm_output_size() == (24, 24)
    assert cfg.dense_config().stm_channels == 16


def test_summary_table_lists_components():
    res = CliRunner().invoke(main, ["summary", "--variant", "tiny"])
    assert res.exit_code == 0, res.output
    for name in ("stm.mv", "stm.r", "embed.i", "embed.mv", "embed.r", "encoder.unified",
                 "mixer", "rrdb", "head", "Total", "strides (2, 1, 1)"):
        assert name in res.output


def test_help_shows_the_paper_preset():
    for cmd in ("train", "summary", "eval"):
        res = CliRunner().invoke(main, [cmd, "--help"])
        assert res.exit_code == 0 and "--preset" in res.output, res.output
    text = " ".join(CliRunner().invoke(main, ["train", "--help"]).output.split())
    for shown in ("[paper: base]", "[paper: 8]", "[paper: 224]", "[paper: adam]",
                  "[paper: 0.001]", "[paper: 5,10,15]", "[paper: 340x256]"):
        assert shown in text, shown
    assert "[paper: 8x1]" in " ".join(CliRunner().invoke(main, ["eval", "--help"]).output.split())


@pytest.mark.parametrize("args, msg", [
    (["--variant", "huge"], "huge"),
    (["--size", "12"], "--size"),
    (["--segments", "0"], "segments"),
    (["--preset", "nope"], "nope"),
    (["--modalities", "i,x"], "i,mv,r"),
])
def test_summary_bad_input_is_a_clear_error(args, msg):
    res = CliRunner().invoke(main, ["summary", *args])
    assert res.exit_code == 2 and msg in res.output, res.output


def test_summary_impossible_combination_is_a_clear_error():
    res = CliRunner().invoke(main, ["summary", "--encoder", "cross", "--modalities", "i"])
    assert res.exit_code == 1 and "cross" in res.output and "Traceback" not in res.output
