"""Presets: small dataclasses, each naming the publication its figures come from.

Figures taken from a secondary source (a survey, a news article, a third-party page)
are marked ``secondary`` in their ``source`` text.
"""
from __future__ import annotations

from dataclasses import dataclass

# ---------------------------------------------------------------------------------------
# Chip presets (neurocore resources, for deploy/mapping.py; issue 11)
# ---------------------------------------------------------------------------------------

KIB_BITS = 8 * 1024  # bits in one KiB of SRAM


@dataclass(frozen=True)
class ChipPreset:
    """Per-chip and per-core limits of a neuromorphic chip, for core mapping.

    A limit of ``None`` is one the source does not publish: it is not checked, and the
    mapping report says so.
    """

    name: str  # short CLI name, e.g. "loihi2"
    title: str  # human-readable name
    cores: int  # neurocores per chip
    neurons_per_core: int  # compartments (neurons) one core updates
    memory_bits_per_core: int  # synaptic memory per core, in bits
    memory_holds_state: bool  # True: neuron state shares the per-core memory with synapses
    fan_in_axons_per_core: int | None  # distinct input axons (source neurons) per core
    fan_out_axons_per_core: int | None  # output axons (neuron -> destination core) per core
    max_weight_bits: int  # widest synaptic weight a core stores
    conv_weight_sharing: bool  # a core can store a conv kernel once for all its neurons
    graded_spikes: bool  # spikes can carry an integer payload (the STM's first layer input)
    source: str  # where each figure comes from

    def __post_init__(self):
        assert self.cores > 0 and self.neurons_per_core > 0, (
            f"chip {self.name}: cores and neurons_per_core must be positive")
        assert self.memory_bits_per_core > 0, f"chip {self.name}: memory must be positive"
        assert self.source, f"chip {self.name}: every preset names its source"


LOIHI = ChipPreset(
    name="loihi",
    title="Intel Loihi (2018)",
    cores=128,
    neurons_per_core=1024,
    memory_bits_per_core=128 * KIB_BITS,
    memory_holds_state=False,
    fan_in_axons_per_core=4096,
    fan_out_axons_per_core=4096,
    max_weight_bits=9,
    conv_weight_sharing=True,
    graded_spikes=False,
    source=(
        "Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip Learning', "
        "IEEE Micro 38(1), 2018: 128 neuromorphic cores, 1,024 compartments a core, up to "
        "128 KB of synaptic state a core, 4,096 fan-in and 4,096 fan-out axons a core, "
        "weights of 1 to 9 bits; population-based hierarchical connectivity as a "
        "generalised weight-sharing mechanism (for convolutional networks); binary spikes. "
        "Neuron state has its own memory (not counted against the 128 KB). The same "
        "per-core limits are enforced by nengo-loihi (nengo_loihi/block.py: "
        "MAX_COMPARTMENTS 1024, MAX_IN_AXONS 4096, MAX_OUT_AXONS 4096, MAX_SYNAPSE_BITS "
        "1,048,576), a cross-check, not the source."),
)

LOIHI2 = ChipPreset(
    name="loihi2",
    title="Intel Loihi 2 (2021)",
    cores=128,
    neurons_per_core=8192,
    memory_bits_per_core=128 * KIB_BITS,
    memory_holds_state=True,
    fan_in_axons_per_core=None,
    fan_out_axons_per_core=None,
    max_weight_bits=8,
    conv_weight_sharing=True,
    graded_spikes=True,
    source=(
        "Intel Labs, 'Taking Neuromorphic Computing to the Next Level with Loihi 2', "
        "technology brief, 2021: 128 neurocores and 6 x86 cores a chip, up to 1 M neurons "
        "(= 8,192 a core; fewer for richer neuron models) and 120 M synapses a chip, graded "
        "spikes (up to 32-bit payloads), synaptic compression "
        "including convolutional weight sharing; 8-bit weight mantissas as in Lava's "
        "fixed-point models. SECONDARY: 128 KB of SRAM a core, flexibly partitioned "
        "between synapses and neuron state (press reports of the brief; 192 KB is also "
        "quoted); per-core fan-in / fan-out axon limits are not published (not checked)."),
)

CHIPS: dict[str, ChipPreset] = {c.name: c for c in (LOIHI, LOIHI2)}
