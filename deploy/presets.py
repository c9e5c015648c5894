"""Presets: small dataclasses that name the publication each figure comes from.

Energy presets (this section) cost the profiler's operation counts
(:mod:`deploy.energy.profiler`); chip presets (cores, limits) live in their own section.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path

# ---------------------------------------------------------------------------------------
# Energy presets
# ---------------------------------------------------------------------------------------

ENERGY_FORMAT = "hybrid-energy-preset"
ENERGY_VERSION = 1

HOROWITZ_2014 = ("M. Horowitz, 'Computing's energy problem (and what we can do about it)', "
                 "IEEE ISSCC 2014, pp. 10-14 (45 nm, 0.9 V)")
DAVIES_2018 = ("M. Davies et al., 'Loihi: A Neuromorphic Manycore Processor with On-Chip "
               "Learning', IEEE Micro 38(1), 2018, Table 2 (pre-silicon figures)")


class PresetError(ValueError):
    """A preset name or preset file that cannot be used."""


@dataclass(frozen=True)
class EnergyPreset:
    """Energy per operation, in joules.

    ``E = MACs * mac_j + ACs * ac_j + neuron updates * neuron_j`` (the paper's rule when
    ``neuron_j`` is 0). With ``event_driven`` the spiking partition is costed as a
    neurocore runs it: every nonzero input of the analog-fed first STM layer is a graded
    spike that costs ``ac_j`` per weight it touches (its exact fan-out), instead of that
    layer's dense MACs at ``mac_j``."""

    name: str
    mac_j: float  # one dense multiply-accumulate (dense partition, bridge, analog STM layer)
    ac_j: float  # one accumulate / synaptic spike operation (spike-fed STM layers)
    neuron_j: float  # one neuron update (one neuron, one timestep); 0: left out (the paper)
    event_driven: bool  # the analog-fed STM layer as graded spikes (neurocore) or as MACs
    source: str  # publication, table and what was derived from it

    def __post_init__(self):
        if not self.name:
            raise PresetError("energy preset: name must not be empty")
        for f in ("mac_j", "ac_j", "neuron_j"):
            v = getattr(self, f)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise PresetError(f"energy preset {self.name!r}: {f} must be a finite "
                                  f"number >= 0 (joules), got {v!r}")
        if not self.source:
            raise PresetError(f"energy preset {self.name!r}: source must name where the "
                              "figures come from")

    def to_dict(self) -> dict:
        return {"format": ENERGY_FORMAT, "version": ENERGY_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, d: dict, origin: str = "preset") -> EnergyPreset:
        if d.get("format", ENERGY_FORMAT) != ENERGY_FORMAT:
            raise PresetError(f"{origin}: format {d.get('format')!r} is not {ENERGY_FORMAT!r}")
        if d.get("version", ENERGY_VERSION) != ENERGY_VERSION:
            raise PresetError(f"{origin}: version {d.get('version')!r}; this toolkit reads "
                              f"version {ENERGY_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}
        body = {k: v for k, v in d.items() if k not in ("format", "version")}
        unknown, missing = set(body) - names, {"name", "mac_j", "ac_j"} - set(body)
        if unknown or missing:
            raise PresetError(f"{origin}: unknown keys {sorted(unknown)}, missing keys "
                              f"{sorted(missing)} (keys: {sorted(names)})")
        body = {"neuron_j": 0.0, "event_driven": False, "source": f"custom ({origin})"} | body
        return cls(**body)


ENERGY_PRESETS: dict[str, EnergyPreset] = {p.name: p for p in (
    # the paper's appendix: E_MAC 4.6 pJ, E_AC 0.9 pJ (32-bit float, 45 nm)
    EnergyPreset("45nm-fp32", 4.6e-12, 0.9e-12, 0.0, False,
                 HOROWITZ_2014 + ": fp32 mult 3.7 + add 0.9 pJ = 4.6 pJ/MAC, add 0.9 pJ/AC; "
                 "the paper's preset (its appendix, Sec. 1)"),
    EnergyPreset("45nm-fp16", 1.5e-12, 0.4e-12, 0.0, False,
                 HOROWITZ_2014 + ": fp16 mult 1.1 + add 0.4 pJ = 1.5 pJ/MAC, add 0.4 pJ/AC"),
    EnergyPreset("45nm-int8", 0.23e-12, 0.03e-12, 0.0, False,
                 HOROWITZ_2014 + ": int8 mult 0.2 + add 0.03 pJ = 0.23 pJ/MAC, add "
                 "0.03 pJ/AC"),
    # spiking partition on a neurocore, dense partition on an int8 45 nm accelerator
    EnergyPreset("loihi", 0.23e-12, 23.6e-12, 81e-12, True,
                 DAVIES_2018 + ": synaptic spike operation 23.6 pJ (min), neuron update "
                 "81 pJ (active; every neuron is updated every step, as nengo's KerasSpiking "
                 "costs Loihi; 52 pJ inactive is not used); dense MACs at "
                 + HOROWITZ_2014 + " int8, 0.23 pJ"),
)}
PAPER_PRESET = "45nm-fp32"


def energy_preset(name_or_path: str | Path) -> EnergyPreset:
    """A built-in energy preset by name, or a custom one from a JSON file with the keys
    of :class:`EnergyPreset` (``name``, ``mac_j``, ``ac_j``; optional ``neuron_j``,
    ``event_driven``, ``source``, ``format``, ``version``)."""
    key = str(name_or_path)
    if key in ENERGY_PRESETS:
        return ENERGY_PRESETS[key]
    path = Path(key)
    if path.suffix.lower() != ".json" and not path.is_file():
        raise PresetError(f"unknown energy preset {key!r}; choose from "
                          f"{', '.join(ENERGY_PRESETS)} or give a JSON file")
    try:
        d = json.loads(path.read_text())
    except OSError as exc:
        raise PresetError(f"{path}: cannot read the preset file ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise PresetError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(d, dict):
        raise PresetError(f"{path}: expected a JSON object with the preset's keys")
    try:
        return EnergyPreset.from_dict(d, origin=str(path))
    except TypeError as exc:
        raise PresetError(f"{path}: {exc}") from exc


# ---------------------------------------------------------------------------------------
# Chip presets (neurocore resources, for deploy/hardware/neurocores/mapping.py)
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
        for f in ("cores", "neurons_per_core", "memory_bits_per_core", "max_weight_bits"):
            if getattr(self, f) <= 0:
                raise PresetError(f"chip preset {self.name!r}: {f} must be positive, got "
                                  f"{getattr(self, f)!r}")
        if not self.source:
            raise PresetError(f"chip preset {self.name!r}: source must name where the "
                              "figures come from")


#: Loihi (Davies et al., IEEE Micro 2018): the chip preset of ``hybrid map --chip loihi``.
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
