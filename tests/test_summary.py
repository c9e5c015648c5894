"""`hybrid summary`: the table, the JSON, and its agreement with the model."""
import dataclasses
import json

import pytest
import torch
from click.testing import CliRunner

from ann.config import VARIANTS
from ann.model import DenseModel
from hybrid.cli import main
from hybrid.model import HybridConfig
from neuro.stm import STM


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_summary_json_totals_match_the_model(variant):
    res = CliRunner().invoke(main, ["summary", "--variant", variant, "--size", "57x45",
                                    "--segments", "2", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output)
    assert isinstance(rep["params"], int) and isinstance(rep["macs"], int)
    assert rep["params"] == sum(c["params"] for c in rep["components"])
    assert rep["macs"] == sum(c["macs"] for c in rep["components"])
    assert {"name", "params", "macs"} <= set(rep["components"][0])
    cfg = VARIANTS[variant]
    # --size is WIDTHxHEIGHT (FFmpeg's order); the config holds (H, W)
    assert rep["config"]["image_size"] == [45, 57] and rep["config"]["segments"] == 2
    # the STM size follows --size at the variant's ratio
    assert rep["config"]["stm_size"] == [round(45 * cfg.stm_size[0] / cfg.image_size[0]),
                                         round(57 * cfg.stm_size[1] / cfg.image_size[1])]
    with torch.device("meta"):
        model = DenseModel(dataclasses.replace(
            cfg, image_size=(45, 57), stm_size=tuple(rep["config"]["stm_size"]), segments=2))
    rows = {c["name"]: c for c in rep["components"]}
    dense = sum(c["params"] for n, c in rows.items() if not n.startswith("stm."))
    assert dense == sum(p.numel() for p in model.parameters())
    for m, c_in in (("mv", 2), ("r", 3)):  # the STMs the composed model builds
        base = HybridConfig().stm_config(c_in)
        stm = STM(dataclasses.replace(base, widths=(*base.widths[:2], cfg.stm_channels)))
        assert rows[f"stm.{m}"]["params"] == sum(p.numel() for p in stm.parameters())
        assert rows[f"stm.{m}"]["macs"] > 0  # its first layer sees analog values


def test_summary_table_lists_components():
    res = CliRunner().invoke(main, ["summary", "--variant", "tiny"])
    assert res.exit_code == 0, res.output
    for name in ("stm.mv", "stm.r", "embed.i", "embed.mv", "embed.r", "encoder.unified",
                 "mixer", "rrdb", "head", "Total"):
        assert name in res.output


@pytest.mark.parametrize("args, msg", [
    (["--variant", "huge"], "unknown variant"),
    (["--size", "12x"], "WIDTHxHEIGHT"),
    (["--stm-size", "0x4"], ">= 1"),
    (["--segments", "0"], "segments"),
])
def test_summary_bad_input_is_a_clear_error(args, msg):
    res = CliRunner().invoke(main, ["summary", *args])
    assert res.exit_code == 2 and msg in res.output, res.output
