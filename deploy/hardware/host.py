"""The host the report ran on: its CPU (model, cores, threads used), and its power.

Power, in order of preference:

1. **RAPL**, measured: the package energy counters under ``/sys/class/powercap``
   (``intel-rapl:N/energy_uj``, microjoules, wrapping at ``max_energy_range_uj``).
   They count the whole package, other processes included: an upper bound on what one
   process spent, and said so.
2. **A per-core power preset**, estimated: CPU time x the preset's watts a busy core
   (the part's TDP / its cores, from the vendor's data sheet named in the preset).

A virtual machine (this sandbox's KVM guest) exposes no powercap: the report then says
"estimated (CPU time x ... W a core)" and names the preset's source.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

POWERCAP = Path("/sys/class/powercap")


@dataclass(frozen=True)
class CpuPowerPreset:
    """Watts a busy core of a CPU family (TDP / cores of a named part)."""

    name: str  # e.g. 'xeon-emerald-rapids'
    family: int  # /proc/cpuinfo 'cpu family'
    models: tuple  # /proc/cpuinfo 'model' numbers it covers
    tdp_w: float  # the named part's TDP
    cores: int  # the named part's cores
    source: str  # data sheet of the named part

    def __post_init__(self):
        if not (self.tdp_w > 0 and self.cores > 0 and self.source):
            raise ValueError(f"cpu power preset {self.name!r}: tdp_w and cores must be > 0 "
                             "and source must name the data sheet")

    @property
    def watts_per_core(self) -> float:
        return self.tdp_w / self.cores


CPU_POWER = {p.name: p for p in (
    CpuPowerPreset("xeon-emerald-rapids", 6, (207,), 350.0, 64,
                   "Intel ARK, Xeon Platinum 8592+ (5th gen Xeon Scalable, Emerald Rapids, "
                   "CPUID family 6 model 207): 64 cores, TDP 350 W"),
    CpuPowerPreset("xeon-sapphire-rapids", 6, (143,), 350.0, 60,
                   "Intel ARK, Xeon Platinum 8490H (4th gen Xeon Scalable, Sapphire Rapids, "
                   "CPUID family 6 model 143): 60 cores, TDP 350 W"),
)}
# a CPU not in the table: the Emerald Rapids figure, labelled an assumption
FALLBACK_POWER = CPU_POWER["xeon-emerald-rapids"]


@dataclass(frozen=True)
class HostCpu:
    """The CPU the measurements ran on."""

    cpu: str  # model name, /proc/cpuinfo
    vendor: str
    family: int
    model: int
    logical_cpus: int  # CPUs this process may run on (its affinity)
    mhz: float  # /proc/cpuinfo 'cpu MHz' (the nominal clock under a hypervisor)
    flags: tuple  # the vector ISA flags that set the peak: avx512f, avx2, fma
    hypervisor: bool

    def to_dict(self) -> dict:
        return asdict(self)


def read_cpu(cpuinfo: str | Path = "/proc/cpuinfo") -> HostCpu:
    """The first processor's entry of ``cpuinfo`` and this process's CPU affinity."""
    fields: dict[str, str] = {}
    for line in Path(cpuinfo).read_text().splitlines():
        if not line.strip():
            if fields:
                break
            continue
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())
    flags = set(fields.get("flags", "").split())
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        n = os.cpu_count() or 1
    return HostCpu(fields.get("model name", "unknown CPU"), fields.get("vendor_id", "?"),
                   int(fields.get("cpu family", -1)), int(fields.get("model", -1)), n,
                   float(fields.get("cpu MHz", 0.0)),
                   tuple(f for f in ("avx512f", "avx2", "fma") if f in flags),
                   "hypervisor" in flags)


def power_preset(cpu: HostCpu) -> tuple[CpuPowerPreset, bool]:
    """(the preset for ``cpu``, whether it matched: False = the fallback, an assumption)."""
    for p in CPU_POWER.values():
        if cpu.family == p.family and cpu.model in p.models:
            return p, True
    return FALLBACK_POWER, False


def rapl_domains(root: Path = POWERCAP) -> list[Path]:
    """The readable top-level RAPL package domains (``intel-rapl:N``), [] when none."""
    out = []
    for d in sorted(root.glob("intel-rapl:*")):
        if d.name.count(":") == 1 and os.access(d / "energy_uj", os.R_OK):
            try:
                int((d / "energy_uj").read_text())
            except (OSError, ValueError):
                continue
            out.append(d)
    return out


class EnergyMeter:
    """Joules between :meth:`start` and :meth:`stop`: RAPL when readable, else None
    (the caller then estimates from CPU time)."""

    def __init__(self, root: Path = POWERCAP):
        self.domains = rapl_domains(root)
        self._start: list[int] = []

    @property
    def measured(self) -> bool:
        return bool(self.domains)

    def _read(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    def start(self) -> None:
        """Read the counters the measured interval starts from."""
        self._start = self._read() if self.domains else []

    def stop(self) -> float | None:
        """Joules since :meth:`start` (counter wrap-arounds included), None without RAPL."""
        if not self.domains:
            return None
        total = 0
        for d, a, b in zip(self.domains, self._start, self._read()):
            if b < a:  # the counter wrapped
                b += int((d / "max_energy_range_uj").read_text())
            total += b - a
        return total * 1e-6


def host_energy(cpu_s: float, measured_j: float | None, cpu: HostCpu) -> tuple[float, str]:
    """(joules, label) of work that used ``cpu_s`` CPU seconds: RAPL's ``measured_j``
    when given, else ``cpu_s`` x the preset's watts a core."""
    if measured_j is not None:
        return measured_j, ("measured (RAPL package energy, /sys/class/powercap; the whole "
                            "package, other processes included: an upper bound)")
    p, matched = power_preset(cpu)
    why = "" if matched else f"; {cpu.cpu} is not in the presets: assumed"
    return cpu_s * p.watts_per_core, (
        f"estimated (CPU time x {p.watts_per_core:.2f} W a core: {p.source}, TDP / cores"
        f"{why}; RAPL not readable here)")


def describe(cpu: HostCpu, threads: int, meter: EnergyMeter) -> dict:
    """The report's ``host`` object: ``cpu``, cores, threads used, ``power_source``."""
    p, matched = power_preset(cpu)
    return {"cpu": cpu.cpu, "logical_cpus": cpu.logical_cpus, "threads_used": threads,
            "mhz": cpu.mhz, "isa": list(cpu.flags), "virtual_machine": cpu.hypervisor,
            "power_source": ("RAPL (/sys/class/powercap), measured" if meter.measured else
                             f"preset {p.name!r}: {p.watts_per_core:.2f} W a core "
                             f"({p.source}){'' if matched else ', assumed for this CPU'}; "
                             "estimated (RAPL not readable)")}
