"""deploy/hardware/report.py: the per-video composition of the stages (no SANA-FE needed)."""
import pytest

from deploy.hardware import report


def _branch(seq_t, seq_e, steps=3):
    return {"per_sequence": {"time_s": {"mean": seq_t}, "energy_j": {"mean": seq_e}},
            "per_step": {k: [seq_t / steps if k == "time_s" else seq_e / steps] * steps
                         for k in ("time_s", "energy_j", "synapse_j", "dendrite_j",
                                   "soma_j", "network_j")}}


@pytest.mark.parametrize("mapping,segments,want_t", [
    ({"fits": True, "sequences_per_chip": 3}, 8, 3 * 2.0),  # ceil(8/3) rounds x slowest
    ({"fits": True, "sequences_per_chip": 8}, 8, 1 * 2.0),
    ({"fits": False, "sequences_per_chip": 0}, 8, 8 * (1.0 + 2.0)),  # in turn
    (None, 2, 2 * 3.0)])
def test_spiking_stage_side_by_side_or_in_turn(mapping, segments, want_t):
    st = report.spiking_stage({"mv": _branch(1.0, 10.0), "r": _branch(2.0, 20.0)}, segments,
                            mapping)
    assert st["time_s"] == pytest.approx(want_t)
    assert st["energy_j"] == pytest.approx(segments * 30.0)  # energy does not overlap
    side = bool(mapping and mapping["fits"])
    assert st["per_step"]["time_s"][0] == pytest.approx(2 / 3 if side else 1.0)
    assert st["per_step"]["energy_j"][0] == pytest.approx(10.0)
    assert ("side by side" in st["placement"]) == side


def test_report_latency_throughput_energy():
    neuro = {"time_s": 0.5, "energy_j": 2.0, "label": "simulated", "placement": "in turn"}
    bridge = {"time_s": 0.1, "energy_j": 0.25, "label": "estimated", "bytes": 10, "title": "L"}
    dense = {"time_s": 0.2, "energy_j": 1.0, "label": "estimated", "title": "A",
             "precision": "fp16"}
    host = [{"name": "transcode", "time_s": 0.1, "energy_j": 0.5, "source": "measured"},
            {"name": "extract", "time_s": 0.3, "energy_j": 0.125, "source": "measured"}]
    rep = report.report(neuro, host, bridge, dense)
    pv = rep["per_video"]
    assert pv["latency_s"] == pytest.approx(1.2)
    assert pv["throughput_vps"] == pytest.approx(2.0)  # 1 / the slowest stage (0.5 s)
    assert pv["energy_j"] == pytest.approx(3.875)  # every stage
    assert pv["chip_energy_j"] == pytest.approx(3.25)  # spiking + bridge + dense
    assert [s["name"] for s in rep["stages"]] == ["transcode", "extract", "spiking", "bridge",
                                                  "dense"]
    assert all({"name", "time_s", "energy_j", "source"} <= set(s) for s in rep["stages"])
    assert rep["paper"]["energy_j"] == 0.734 and rep["paper"]["throughput_vps"] == 16.0
    tl = report.timeline(rep)
    assert tl[0] == ("transcode", 0.0, 0.1) and tl[-1][2] == pytest.approx(1.2)


def test_render_reads_every_section_of_a_stored_report():
    """The text renderer (deploy/hardware/render.py) on the report behind
    examples/figures/chip_timeline.png: every stage, the per-video line, the chips."""
    import json
    from pathlib import Path

    from deploy.hardware.render import render

    path = Path(__file__).resolve().parents[1] / "examples/figures/chip_timeline.json"
    rep = json.loads(path.read_text())
    rep = rep.get("report", rep)
    text = render(rep)
    for s in rep["stages"]:
        assert any(line.startswith(s["name"]) for line in text.splitlines()), s["name"]
    assert "per video: latency" in text and "chips:" in text and "Tianjic" in text
