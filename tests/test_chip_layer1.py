"""deploy/hardware/neurocores/layer1.py: layer 1's time on neurocores from per-event latencies, and
the spiking time as the sum of its layers' modelled times (deploy/hardware/report.py)."""
import numpy as np
import pytest

from deploy.hardware.neurocores import layer1
from deploy.hardware.neurocores.simulation import Tiling

# powers of ten so every event's share shows in the total
COSTS = layer1.EventCosts(message_in=1.0, synop=10.0, access_neuron=100.0,
                          update_neuron=1000.0, spike_out=1e4, message_out=1e5)


def test_layer_time_by_hand_on_two_cores():
    """Input 1x3x3, 2 output channels 3x3 (k 3, pad 1), cores of 2 channels x 3 rows x
    2 columns: core A = columns 0-1 (12 neurons, reads input columns 0-2), core B =
    column 2 (6 neurons, reads input columns 1-2)."""
    msgs = np.zeros((1, 3, 3, 1))
    msgs[0, 0, 0, 0] = 5  # one graded message at (0, 0): reaches outputs y, x in {0, 1}
    spikes = np.zeros((2, 3, 3, 1))
    spikes[0, 0, 2, 0] = 1  # one spike on core B, sent to 3 cores
    fan = np.zeros(18, np.int64)
    fan[0 * 9 + 0 * 3 + 2] = 3
    out = layer1.layer_time((1, 3, 3), (2, 1, 3, 3), 1, 1, (2, 3, 3), Tiling(2, 3, 2),
                            msgs, spikes, fan, COSTS, steps=2)
    # A: generation 12 x 100 + 8 updated x 1000 = 9,200; processing 1 + 8 synops x 10 = 81
    # B: generation 6 x 100 + 1e4 + 3 x 1e5 = 310,600; processing 0
    assert out["time_s"][0] == pytest.approx(310_600)
    assert out["time_s"][1] == pytest.approx(12 * 100)  # no input: the fullest core's visits
    assert out["cores"] == 2
    assert (out["messages_in"], out["synops"], out["updated"], out["fired"],
            out["messages_out"]) == ([1], [8], [8], [1], [3])


def test_layer_time_message_processing_can_bind():
    """A dense input: processing (messages in + synops) exceeds a core's neuron work."""
    msgs = np.ones((3, 5, 5, 2))
    costs = layer1.EventCosts(message_in=1.0, synop=1000.0, access_neuron=100.0,
                              update_neuron=1000.0, spike_out=1e4, message_out=1e5)
    out = layer1.layer_time((3, 5, 5), (4, 3, 3, 3), 1, 1, (4, 5, 5), Tiling(4, 5, 5), msgs,
                            np.zeros((4, 5, 5, 2)), np.zeros(100, np.int64), costs)
    synops = 4 * 3 * 13 * 13  # 4 out x 3 in channels x (taps per axis 2+3+3+3+2 = 13)^2
    gen = 100 * 100 + 100 * 1000  # 100 neurons visited and updated
    proc = 75 * 1 + synops * 1000
    assert proc > gen
    assert out["synops"] == [synops, synops]
    assert out["time_s"] == pytest.approx([max(gen, proc)] * 2)


def test_synops_per_position_equals_fan_out_count():
    """The per-position synapse count, summed, is the profiler's exact fan-out count."""
    import torch

    from deploy.energy.profiler import ConvGeometry, fan_out

    rng = np.random.default_rng(3)
    for stride, hw in ((1, (7, 9)), (2, (9, 8))):
        x = (rng.random((2, *hw, 3)) < 0.3) * 1
        g = ConvGeometry("l", 2, 5, 3, stride, 1, hw, analog_input=True)
        syn = layer1.synops_per_position(x.sum(0), 3, stride, 1, g.out_hw)
        want = [(torch.as_tensor(x[..., t].sum(0)) * fan_out(g)).sum().item() / 5
                for t in range(3)]
        assert syn.sum((0, 1)).tolist() == want


def test_event_costs_read_from_sanafe_file():
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra")
    from deploy.hardware.neurocores.simulation import stock_loihi

    c = layer1.event_costs(stock_loihi())
    assert (c.message_in, c.synop, c.access_neuron, c.update_neuron, c.spike_out,
            c.message_out) == pytest.approx((16e-9, 3.1e-9, 6e-9, 3.7e-9, 30e-9, 5.1e-9))


def test_bad_event_cost_is_refused():
    with pytest.raises(ValueError, match="synop"):
        layer1.EventCosts(1, -1, 1, 1, 1, 1)


def test_spiking_time_is_the_sum_of_its_layers_modelled_times(tmp_path):
    """A small STM: each sequence's time = SANA-FE's simulated steps (layers 2..3) + layer
    1's per-event model, recomputed independently; layer 1's share > 0; the stage over
    segments x branches in turn sums the sequences."""
    pytest.importorskip("sanafe", reason="SANA-FE is an optional extra")
    import torch

    from deploy.hardware import report
    from deploy.hardware.neurocores import simulation
    from deploy.presets import ENERGY_PRESETS
    from neuro.export import export_stm, read_network
    from neuro.stm import STM, STMConfig

    torch.manual_seed(0)
    net = read_network(export_stm(STM(STMConfig(in_channels=2, strides=(1, 1, 1))),
                                  tmp_path / "stm.h5", (9, 11)))
    rng = np.random.default_rng(0)
    T = 4
    seqs = [(rng.integers(-3, 4, (2, 9, 11, T)) * (rng.random((2, 9, 11, T)) < 0.4),
             (rng.random((*net.layers[0].shape, T)) < 0.2).astype(np.int8)) for _ in range(2)]
    br = report.simulate_branch(net, seqs, ENERGY_PRESETS["loihi"], name="stm.mv")
    costs = layer1.event_costs(simulation.stock_loihi())
    sim = simulation.build(net)
    spec = net.layers[0]
    want = []
    for msgs, s1 in seqs:
        r = simulation.simulate(sim, s1)
        lt = layer1.layer_time(tuple(net.input_shape), spec.weight.shape, spec.stride,
                               spec.padding, tuple(spec.shape),
                               simulation.default_tiling(tuple(spec.shape)), msgs, s1,
                               sim._fanout_cores[0], costs, steps=len(r.per_step["sim_time"]))
        assert sum(lt["time_s"]) > 0
        want.append(sum(r.per_step["sim_time"]) + sum(lt["time_s"]))
    ps = br["per_sequence"]
    assert ps["time_s"]["mean"] == pytest.approx(np.mean(want), rel=1e-12)
    assert ps["time_s"]["mean"] == pytest.approx(
        ps["simulated_time_s"]["mean"] + ps["layer1_time_s"]["mean"], rel=1e-12)
    assert br["layer1"]["time_s"] > 0
    assert sum(br["per_step"]["time_s"]) == pytest.approx(ps["time_s"]["mean"], rel=1e-12)
    assert ps["time_s_if_overlapped"]["mean"] <= ps["time_s"]["mean"]
    st = report.spiking_stage({"mv": br, "r": br}, 3, None)
    assert st["time_s"] == pytest.approx(3 * 2 * ps["time_s"]["mean"])
