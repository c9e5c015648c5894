"""Execution-target presets for the hybrid-chip estimates (:mod:`deploy.hardware.report`):
accelerators for the dense partition, links for the bridge, and the Tianjic hybrid chip.

Small frozen dataclasses, each naming the data sheet or paper its figures come from.
Figures from a secondary source (a survey, a third-party page) or derived from a
published figure are marked ``SECONDARY`` / ``derived`` in their ``source`` text. The
energy-per-operation and neurocore presets live in :mod:`deploy.presets`; these are in
a file of their own so that module stays small.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from deploy.hardware.host import HostCpu, power_preset, read_cpu
from deploy.presets import ChipPreset, PresetError

PRECISIONS = ("fp32", "fp16", "int8")  # bytes per value: 4, 2, 1
BYTES = {"fp32": 4, "fp16": 2, "int8": 1}


def _positive(owner: str, **values) -> None:
    for k, v in values.items():
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise PresetError(f"{owner}: {k} must be a finite number > 0, got {v!r}")


@dataclass(frozen=True)
class AcceleratorPreset:
    """A dense accelerator for the roofline estimate of the dense partition."""

    name: str  # CLI name, e.g. 'h100-sxm'
    title: str
    peak_ops: dict  # precision -> dense (no sparsity) peak, operations/s (1 MAC = 2 ops)
    memory_bw: float  # bytes/s, off-chip memory bandwidth
    board_power_w: float  # W: the board's maximum power (TDP / module power)
    source: str  # data sheet (and table) of every figure
    launch_s: float = 0.0  # s: floor of one kernel / node launch, paid per layer
    achieved_fraction: float = 1.0  # of the peak MAC rate a layer reaches
    overhead_source: str = "none: peak rate, no launch cost (an ideal roofline)"
    measured: bool = False  # figures measured on this machine (host-cpu), not a data sheet

    def __post_init__(self):
        if not self.source:
            raise PresetError(f"accelerator {self.name!r}: source must name the data sheet")
        unknown = set(self.peak_ops) - set(PRECISIONS)
        if unknown or not self.peak_ops:
            raise PresetError(f"accelerator {self.name!r}: peak_ops keys must be among "
                              f"{PRECISIONS}, got {sorted(self.peak_ops)}")
        _positive(f"accelerator {self.name!r}", memory_bw=self.memory_bw,
                  board_power_w=self.board_power_w, **self.peak_ops)
        if not (self.launch_s >= 0 and 0 < self.achieved_fraction <= 1):
            raise PresetError(f"accelerator {self.name!r}: launch_s must be >= 0 and "
                              f"achieved_fraction in (0, 1], got {self.launch_s}, "
                              f"{self.achieved_fraction}")

    def macs_per_s(self, precision: str) -> float:
        if precision not in self.peak_ops:
            raise PresetError(f"accelerator {self.name!r} has no {precision} peak; it has "
                              f"{', '.join(self.peak_ops)}")
        return self.peak_ops[precision] / 2


@dataclass(frozen=True)
class LinkPreset:
    """The link that carries the bridge (membrane potentials) between the chips."""

    name: str  # CLI name, e.g. 'pcie4-x16'
    title: str
    bandwidth: float  # bytes/s usable in one direction
    energy_per_bit_j: float  # J per bit moved (PHY + controller)
    latency_s: float  # fixed cost of one transfer (s)
    source: str

    def __post_init__(self):
        if not self.source:
            raise PresetError(f"link {self.name!r}: source must name where figures come from")
        _positive(f"link {self.name!r}", bandwidth=self.bandwidth,
                  energy_per_bit_j=self.energy_per_bit_j)
        if self.latency_s < 0:
            raise PresetError(f"link {self.name!r}: latency_s must be >= 0")


@dataclass(frozen=True)
class HybridChipPreset:
    """A chip whose cores run either SNN or ANN layers (Tianjic), for the core verdict."""

    name: str
    title: str
    cores: int  # functional cores a chip
    neurons_per_core: int  # output neurons one core computes (its fan-out)
    fan_in_per_core: int  # distinct inputs (axons) one core reads
    memory_bytes_per_core: int  # weight SRAM a core
    weight_bits: int  # stored weight precision
    clock_hz: float
    cycles_per_step: int  # clock cycles of one round of computation and communication
    power_w: float  # average chip power
    source: str

    def __post_init__(self):
        if not self.source:
            raise PresetError(f"hybrid chip {self.name!r}: source must name the paper")
        _positive(f"hybrid chip {self.name!r}", cores=self.cores,
                  neurons_per_core=self.neurons_per_core, fan_in_per_core=self.fan_in_per_core,
                  memory_bytes_per_core=self.memory_bytes_per_core,
                  weight_bits=self.weight_bits, clock_hz=self.clock_hz,
                  cycles_per_step=self.cycles_per_step, power_w=self.power_w)

    @property
    def weights_per_core(self) -> int:
        return self.memory_bytes_per_core * 8 // self.weight_bits

    def snn_mode(self) -> ChipPreset:
        """Its cores in SNN mode as a neurocore preset for
        :mod:`deploy.hardware.neurocores.mapping`. Assumed
        where the sources are silent (said in the verdict): the SRAM holds weights and
        neuron state; a conv kernel is stored once per core (its weight indices); ANN-mode
        inputs take graded values (the STM's first layer); per-core fan-out to several
        cores needs relay cores (multicast), not counted: fan-out is not checked."""
        return ChipPreset(
            name=f"{self.name}-snn", title=f"{self.title}, SNN-mode cores", cores=self.cores,
            neurons_per_core=self.neurons_per_core,
            memory_bits_per_core=self.memory_bytes_per_core * 8, memory_holds_state=True,
            fan_in_axons_per_core=self.fan_in_per_core, fan_out_axons_per_core=None,
            max_weight_bits=self.weight_bits, conv_weight_sharing=True, graded_spikes=True,
            source=self.source)


GPU_LAUNCH_S, GPU_ACHIEVED = 5e-6, 0.5
GPU_OVERHEAD = (
    "SECONDARY, typical figures, not this model's: about 5 us a kernel launch (5-20 us "
    "per cudaLaunchKernel of host-to-device work: 'Tensor Core Throughput at Scale', "
    "factryze.ai; 'Reducing CUDA kernel launch overhead', devbytes.co.in; NVIDIA's Nsight "
    "Systems guide measured about 20 us for a PyTorch element-wise kernel on a V100) and "
    "half the tensor-core peak reached (the same page: the training throughput a "
    "dashboard shows is 'usually less than half' of the 989 TFLOPS data-sheet figure)")

T = 1e12
ACCELERATORS: dict[str, AcceleratorPreset] = {p.name: p for p in (
    AcceleratorPreset(
        "h100-sxm", "NVIDIA H100 SXM5 (data-centre GPU)",
        {"fp32": 67 * T, "fp16": 989.4 * T, "int8": 1978.9 * T}, 3.35e12, 700.0,
        "NVIDIA H100 Tensor Core GPU data sheet (2023), SXM column: FP32 67 TFLOPS, "
        "FP16/BF16 Tensor Core 1,979 TFLOPS and INT8 3,958 TOPS *with sparsity* (halved "
        "here: dense), GPU memory bandwidth 3.35 TB/s, max thermal design power up to 700 W",
        GPU_LAUNCH_S, GPU_ACHIEVED, GPU_OVERHEAD),
    AcceleratorPreset(
        "a100-sxm", "NVIDIA A100 SXM4 80 GB (data-centre GPU)",
        {"fp32": 19.5 * T, "fp16": 312 * T, "int8": 624 * T}, 2.039e12, 400.0,
        "NVIDIA A100 Tensor Core GPU data sheet (2021), A100 80GB SXM column: FP32 19.5 "
        "TFLOPS, FP16 Tensor Core 312 TFLOPS, INT8 Tensor Core 624 TOPS (dense; 2x with "
        "sparsity), GPU memory bandwidth 2,039 GB/s, max TDP 400 W", GPU_LAUNCH_S, GPU_ACHIEVED,
        GPU_OVERHEAD),
    AcceleratorPreset(
        "jetson-orin", "NVIDIA Jetson AGX Orin 64 GB (edge module)",
        {"fp32": 5.3 * T, "fp16": 42.5 * T, "int8": 85 * T}, 204.8e9, 60.0,
        "NVIDIA Jetson AGX Orin Series technical brief v1.2 (2022) and module data sheet: "
        "Ampere GPU 5.3 FP32 TFLOPS (CUDA cores), 170 INT8 sparse TOPS (85 dense), "
        "LPDDR5 204.8 GB/s, module power 15-60 W (60 W used); derived: FP16 Tensor Core "
        "dense = half the INT8 dense rate (42.5 TFLOPS), as on every Ampere tensor core; "
        "the DLAs are not counted", GPU_LAUNCH_S, GPU_ACHIEVED, GPU_OVERHEAD),
    AcceleratorPreset(
        "tianjic-ann", "Tianjic, all 156 FCores in ANN mode (hybrid chip)",
        {"int8": 156 * 256 * 2 * 300e6}, 156 * 256 * 300e6, 0.4,
        "Pei et al., 'Towards artificial general intelligence with hybrid Tianjic chip "
        "architecture', Nature 572, 2019 (156 FCores, 8-bit weights, ANN mode MACs). "
        "SECONDARY (IEEE Circuits and Systems Magazine, 2022 Q2 survey): 256 fan-in / "
        "fan-out per FCore, 300 MHz, about 400 mW average. Derived, an upper bound: each "
        "FCore does 256 MACs a cycle (one input against its 256 neurons), so peak = "
        "156 x 256 x 300 MHz MACs/s; 'memory' bandwidth = the same rate of 1-byte weight "
        "reads from each core's local SRAM (weights never leave the cores)"),
)}

LINKS: dict[str, LinkPreset] = {p.name: p for p in (
    LinkPreset(
        "pcie4-x16", "PCI Express 4.0 x16", 31.5e9, 5e-12, 1e-6,
        "PCI-SIG, PCI Express Base Specification 4.0 (2017): 16 GT/s a lane, 128b/130b "
        "encoding -> 31.5 GB/s a direction for x16. SECONDARY: about 5 pJ/bit for a "
        "PCIe 4.0 PHY (vendor IP briefs), and about 1 us a DMA transfer (typical driver "
        "round trip): estimates, not a specification"),
    LinkPreset(
        "10gbe", "10 Gb Ethernet (10GBASE-KR), as Loihi 2 to a host", 1.25e9, 30e-12, 10e-6,
        "IEEE 802.3ap (10GBASE-KR, 10.3125 GBd 64b/66b: 10 Gb/s = 1.25 GB/s of data); "
        "Intel, 'Taking Neuromorphic Computing to the Next Level with Loihi 2' (2021): "
        "Loihi 2 has standard 1000BASE-KX / 2500BASE-KX / 10GBASE-KR Ethernet host "
        "interfaces. SECONDARY: about 30 pJ/bit for a 10G backplane PHY and about 10 us "
        "per transfer through a host network stack: estimates"),
    LinkPreset(
        "on-chip", "on-chip network (both partitions on one hybrid chip)", 156 * 32 * 300e6,
        1e-12, 0.0,
        "SECONDARY, an estimate for a hybrid chip such as Tianjic (Pei et al., Nature 572, "
        "2019: SNN and ANN cores exchange data over its 2D-mesh routers): one 32-bit flit "
        "a cycle per router at 300 MHz (IEEE CAS Magazine 2022 Q2), about 1 pJ/bit a few "
        "hops (mesh-NoC figures, e.g. Loihi's 3-4 pJ per spike hop, Davies et al. 2018)"),
)}

TIANJIC = HybridChipPreset(
    "tianjic", "Tianjic (Tsinghua, 2019)", cores=156, neurons_per_core=256,
    fan_in_per_core=256, memory_bytes_per_core=22 * 1024, weight_bits=8, clock_hz=300e6,
    cycles_per_step=5050, power_w=0.4,
    source="Pei et al., 'Towards artificial general intelligence with hybrid Tianjic chip "
           "architecture', Nature 572, 106-111 (2019): 156 functional cores (FCores), each "
           "configured in ANN mode (MACs) or SNN mode (LIF), 8-bit weights, 28 nm. "
           "SECONDARY (IEEE Circuits and Systems Magazine, 2022 Q2 survey; "
           "open-neuromorphic.org): 256 fan-ins / fan-outs a FCore, about 22 KB of SRAM a "
           "FCore, 300 MHz, 5,050 clock cycles for one round of computation and "
           "communication, about 400 mW average power")
HYBRID_CHIPS = {TIANJIC.name: TIANJIC}


def _pick(table: dict, name: str, what: str):
    if name not in table:
        raise PresetError(f"unknown {what} {name!r}; choose from {', '.join(table)}")
    return table[name]


HOST_CPU = "host-cpu"  # the CPU running the report, measured on the spot


def host_cpu(cpu: HostCpu, calibration: dict | None = None) -> AcceleratorPreset:
    """This host's CPU as an accelerator at fp32: nominal (theoretical peak, the named
    part's memory bandwidth) until ``calibration`` (:func:`deploy.hardware.dense.onhost.calibrate`)
    gives the measured GEMM rate, bandwidth and launch floor. Board power: the threads'
    share of the part's TDP (TDP / cores x threads), an upper bound."""
    threads = calibration["threads"] if calibration else cpu.logical_cpus
    p, matched = power_preset(cpu)
    lanes = 16 if "avx512f" in cpu.flags else 8 if "avx2" in cpu.flags else 4
    peak = threads * cpu.mhz * 1e6 * lanes * 2 * 2  # ops/s: lanes x 2 FMA units x 2 ops
    if calibration:  # a turbo clock above the nominal: the measured peak
        peak = 2 * calibration["peak_macs_per_s"]
    power = threads * p.watts_per_core
    base = (f"{cpu.cpu}, {threads} thread(s): peak = threads x {cpu.mhz:.0f} MHz x {lanes} "
            f"fp32 lanes x 2 FMA units; power = {threads} x {p.watts_per_core:.2f} W a core "
            f"({p.source}{'' if matched else ', assumed'}), an upper bound")
    if calibration is None:
        return AcceleratorPreset(HOST_CPU, f"this host's CPU ({cpu.cpu})", {"fp32": peak},
                                 NOMINAL_HOST_BW, power, base + "; memory bandwidth: "
                                 + NOMINAL_HOST_BW_SOURCE)
    c = calibration
    return AcceleratorPreset(
        HOST_CPU, f"this host's CPU ({cpu.cpu}), measured", {"fp32": peak}, c["memory_bw"],
        power, base + "; " + c["source"], c["launch_s"], min(1.0, c["achieved_fraction"]),
        c["source"], measured=True)


NOMINAL_HOST_BW = 307.2e9
NOMINAL_HOST_BW_SOURCE = ("Intel ARK, Xeon Platinum 8592+: 8 channels of DDR5-4800 (307.2 GB/s "
                          "a socket); replaced by the measured figure when calibrated")


def accelerator(name: str) -> AcceleratorPreset:
    if name == HOST_CPU:
        return host_cpu(read_cpu())
    return _pick(ACCELERATORS, name, "accelerator")


def link(name: str) -> LinkPreset:
    return _pick(LINKS, name, "link")
