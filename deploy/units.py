"""Numbers as people read them in reports: counts with SI prefixes, energy in J..pJ."""
from __future__ import annotations


def si(n: float) -> str:
    """A count with an SI prefix: 1.23 G."""
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.3g}"


def joules(j: float) -> str:
    """Energy in the unit that reads best: 4.2 mJ."""
    for unit, scale in (("J", 1.0), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9), ("pJ", 1e-12)):
        if abs(j) >= scale:
            return f"{j / scale:.4g} {unit}"
    return f"{j:.3g} J"


def scaled(v: float | None, unit: str) -> str:
    """A value in ``unit`` with a milli/micro/nano prefix: 4.2 ms; "-" for None."""
    if v is None:
        return "-"
    for p, k in (("", 1), ("m", 1e-3), ("u", 1e-6), ("n", 1e-9)):
        if abs(v) >= k:
            return f"{v / k:.3g} {p}{unit}"
    return f"{v:.3g} {unit}"
