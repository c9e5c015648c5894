"""The profiler's per-layer counts against NeuroBench, the field's counter (a test extra:
``pip install --no-deps neurobench==2.3.0 snntorch==1.0.0 tqdm``; ``make test`` does).

NeuroBench's ``SynapticOperations`` hooks every connection layer (``nn.Conv3d`` among
them), runs a copy with nonzero weights set to 1 on the binarised input and calls a
layer whose whole input lies in {-1, 0, 1} Effective_ACs, otherwise Effective_MACs
(nonzero inputs only). The STM convolves functionally (its ``slayer.synapse.Conv``
modules hold the weights but are not called), so each layer is replayed through a plain
``nn.Conv3d`` with its weights, fed what the STM's layer saw: the graded input for
layer 1, the STM's recorded spike maps for layers 2 and 3 (``shared/notes/energy.md``).
On random float weights (none is 0) at odd sizes, layer 1 must equal the profiler's
event-driven count of nonzero graded messages, layers 2 and 3 its exact-fan-out ACs."""
import pytest
import torch

from deploy.energy.profiler import Row, stm_counts
from deploy.presets import ENERGY_PRESETS
from neuro.stm import STM, STMConfig

nb_layers = pytest.importorskip(
    "neurobench.metrics.utils.layers",
    reason="NeuroBench is a test extra: pip install --no-deps neurobench==2.3.0 "
           "snntorch==1.0.0 tqdm")
from neurobench.models import TorchModel  # noqa: E402


class Replay(torch.nn.Module):
    """The STM's three convolutions as plain ``nn.Conv3d`` layers (kernel (k, k, 1) over
    NCHWT, the STM's weights, no bias), each applied to its own recorded input."""

    def __init__(self, stm: STM):
        super().__init__()
        self.convs = torch.nn.ModuleList()
        for b in stm.blocks:
            syn = b.synapse
            conv = torch.nn.Conv3d(syn.in_channels, syn.out_channels, syn.kernel_size,
                                   syn.stride, syn.padding, bias=False)
            conv.weight.data.copy_(syn.weight.data)
            self.convs.append(conv)

    def forward(self, inputs):
        return [conv(x) for conv, x in zip(self.convs, inputs)]


@pytest.mark.parametrize("seed,hw,strides,kernels", [
    (0, (13, 9), (2, 1, 1), (3, 3, 3)),
    (1, (11, 14), (1, 2, 1), (3, 5, 1)),
    (2, (7, 7), (1, 1, 3), (5, 3, 3)),
])
def test_profiler_counts_equal_neurobench(seed, hw, strides, kernels):
    torch.manual_seed(seed)
    cfg = STMConfig(in_channels=2, widths=(4, 6, 5), strides=strides, kernels=kernels)
    stm = STM(cfg).eval()
    g = torch.Generator().manual_seed(seed)
    # graded inputs on the 1/8 grid of the fixed-point messages, 30 % nonzero: a value
    # NeuroBench sees as nonzero is exactly one the deployed STM receives as a message
    x = torch.randint(-40, 41, (3, 2, *hw, 6), generator=g).float() / 8
    x *= torch.rand(x.shape, generator=g) < 0.3
    ours = stm_counts(stm, x)
    with torch.no_grad():
        maps = stm(x, return_spike_maps=True).spike_maps
    model = TorchModel(Replay(stm))
    model.register_hooks()
    with torch.no_grad():
        model([x, *maps[:-1]])
    assert len(model.connection_hooks) == 3, "NeuroBench must hook the three conv layers"
    theirs = []
    for hook in model.connection_hooks:
        hook.hook.remove()
        ops, spiking = 0, set()
        for inp in hook.inputs:
            n, s = nb_layers.single_layer_MACs(inp[0] if len(inp) == 1 else inp, hook.layer)
            ops, spiking = ops + int(n), spiking | {bool(s)}
        theirs.append(({True: "Effective_ACs", False: "Effective_MACs"}[spiking.pop()], ops))
    for k, (c, (metric, ops)) in enumerate(zip(ours, theirs), start=1):
        assert c.input_events > 0, f"layer {k} got no input: a weak test"
        want = "Effective_MACs" if k == 1 else "Effective_ACs"
        assert metric == want, f"layer {k}: NeuroBench counts {metric}, we {want}"
        assert c.synops == ops, f"layer {k}: profiler {c.synops}, NeuroBench {metric} {ops}"
        row = Row(c.geometry.name, "spiking", c.kind, c.ops, c).as_dict(ENERGY_PRESETS["loihi"])
        assert row[metric] == ops  # the profile's JSON uses NeuroBench's metric name
