"""The mapping's file (``mapping.json``, format and version stamped) and its table.

:func:`write_mapping` writes a :class:`~deploy.hardware.neurocores.mapping.Mapping`
atomically, :func:`read_mapping` refuses any other format or version naming the file,
:func:`format_table` is what ``hybrid map`` prints."""
from __future__ import annotations

import json
import os
from pathlib import Path

from deploy.atomic import write_file
from deploy.hardware.neurocores.mapping import FORMAT, VERSION, Mapping


def write_mapping(mp: Mapping, path: str | os.PathLike) -> Path:
    """``mapping.json`` (:meth:`~deploy.hardware.neurocores.mapping.Mapping.to_dict`),
    written atomically."""
    text = json.dumps(mp.to_dict(), indent=2).encode()
    return write_file(path, lambda f: f.write(text))


def read_mapping(path: str | os.PathLike, text: str | None = None) -> dict:
    """A ``mapping.json`` (or its ``text``, read and verified by the caller) as a dict,
    refused (ValueError naming the file) unless it is this format and version."""
    path = Path(path)
    try:
        d = json.loads(path.read_text() if text is None else text)
    except (OSError, ValueError) as e:
        raise ValueError(f"{path}: not a readable mapping file ({e})") from e
    got = (d.get("format"), d.get("version")) if isinstance(d, dict) else (None, None)
    if got != (FORMAT, VERSION):
        raise ValueError(f"{path}: format {got[0]!r} version {got[1]!r}, this toolkit reads "
                         f"{FORMAT!r} version {VERSION}")
    return d


def _kib(bits: int) -> str:
    return f"{bits / 8 / 1024:.1f}"


def format_table(mp: Mapping) -> str:
    """The mapping as a per-layer table plus totals (what ``hybrid map`` prints)."""
    head = ("layer", "out CxHxW", "neurons", "synapses", "fan-in", "fan-out", "weights",
            "syn KiB", "state KiB", "cores", "min", "core CxHxW", "binding")
    rows = [head]
    for m in mp.layers:
        part = "-" if m.cores is None else (
            f"{m.channels_per_core}x{m.rows_per_core}x{m.cols_per_core}")
        rows.append((m.name, "x".join(map(str, m.out_shape)), f"{m.neurons:,}",
                     f"{m.synapses:,}", str(m.fan_in_max), str(m.fan_out_max),
                     f"{m.weights_stored:,}", _kib(m.synaptic_memory_bits),
                     _kib(m.state_bits), "-" if m.cores is None else str(m.cores),
                     str(m.cores_lower_bound), part, m.binding or "-"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                       enumerate(zip(r, widths))) for r in rows]
    weights = "shared (one kernel copy per core)" if mp.shared_weights else "every synapse"
    lines += [
        "",
        f"chip: {mp.chip_title}; weights stored: {weights}; "
        f"branches: " + ", ".join(f"{b} {'x'.join(map(str, s))}" for b, s in mp.branches.items()),
        f"cores used: {mp.cores_used} of {mp.cores_total}; "
        f"fits: {'yes' if mp.fits else 'no'}; sequences side by side: {mp.sequences_per_chip}",
        f"neurons {mp.neurons:,}, synapses {mp.synapses:,}, synaptic memory "
        f"{_kib(mp.synaptic_memory_bits)} KiB, neuron state {_kib(mp.state_bits)} KiB",
    ]
    if mp.unchecked:
        lines.append("not checked (the preset's source publishes no figure): "
                     + ", ".join(mp.unchecked))
    lines += [f"note: {n}" for n in mp.notes] + [f"problem: {p}" for p in mp.problems]
    return "\n".join(lines)
