"""The Loihi architecture description SANA-FE simulates, generated at run time from the
file the installed ``sanafe`` package ships (``sanafe/examples/loihi.yaml``).

This project carries no copy of that file (it is GPL-3.0, this project BSD-3-Clause):
:func:`parse` reads the user's installed copy
(:func:`deploy.hardware.neurocores.simulation.stock_loihi`
passes its text in; this module imports nothing of SANA-FE) and :func:`generate` writes
a description that keeps every per-event energy, latency, the sync table and the mesh
width of SANA-FE's file as they are, and changes only

- where the input units sit: the stock file gives each of its 128 cores 1,024
  ``input`` soma units (1.5 GB and 4 s before any network); here only the cores of
  :data:`INPUT_TILES` tiles carry them (the replayed layer-1 spikes), the other
  tiles' cores carry the LIF soma alone (results are identical, ``shared/notes/chip.md``);
- the mesh height: more rows of the same tiles when a network needs more cores than one
  chip has.

The per-core neuron limit is checked against :data:`deploy.presets.LOIHI` (Davies et
al. 2018: 1,024 compartments a core).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from deploy.presets import LOIHI

#: Tiles whose cores carry input units (this module's choice, see above).
INPUT_TILES = 4
#: Core names in the generated architecture.
PLAIN_CORE, INPUT_CORE = "loihi_core", "loihi_input_core"
EXPECTED = "sanafe 2.2.9's examples/loihi.yaml"


class LayoutError(ValueError):
    """SANA-FE's file does not have the layout :func:`parse` reads."""


@dataclass(frozen=True)
class StockLoihi:
    """SANA-FE's Loihi file, split where :func:`generate` edits it."""

    origin: str  # where the text was read
    head: list[str]  # lines up to and including 'tile:' (name, mesh, sync table)
    tile: list[str]  # the one tile entry's lines
    inputs: tuple[int, int]  # [start, end) of the input soma entry within ``tile``
    width: int  # tiles per mesh row
    height: int  # mesh rows
    cores_per_tile: int
    inputs_per_core: int  # input units a core offers (one per input neuron)
    neurons_per_core: int  # the file's max_neurons_supported


def _one(pattern: str, lines: list[str], origin: str, what: str) -> tuple[int, re.Match]:
    hits = [(i, m) for i, ln in enumerate(lines) if (m := re.match(pattern, ln))]
    if len(hits) != 1:
        raise LayoutError(f"{origin}: expected one {what} ({len(hits)} found); "
                          f"deploy/hardware/neurocores/loihi_arch.py reads {EXPECTED} "
                          f"(pip install sanafe==2.2.9)")
    return hits[0]


def parse(text: str, origin: str) -> StockLoihi:
    """Split SANA-FE's Loihi file; :class:`LayoutError` naming ``origin`` and what is
    missing when its layout is not the one of sanafe 2.2.9 (one tile entry holding one
    core entry, an ``input`` soma entry among its somas)."""
    lines = text.splitlines()
    t, _ = _one(r"^\s*tile:\s*$", lines, origin, "'tile:' section")
    head, tile = lines[:t + 1], lines[t + 1:]
    _, w = _one(r"^\s*width:\s*(\d+)\s*$", head, origin, "mesh 'width'")
    _, h = _one(r"^\s*height:\s*(\d+)\s*$", head, origin, "mesh 'height'")
    _, tn = _one(r"^\s*- name:\s*loihi_tile\[0\.\.(\d+)\]\s*$", tile, origin,
                 "tile entry 'loihi_tile[0..N]'")
    _, cn = _one(r"^\s*- name:\s*loihi_core\[0\.\.(\d+)\]\s*$", tile, origin,
                 "core entry 'loihi_core[0..N]'")
    i, im = _one(r"^(\s*)- name:\s*loihi_inputs\[0\.\.(\d+)\]\s*$", tile, origin,
                 "input soma entry 'loihi_inputs[0..N]'")
    _, nm = _one(r"^\s*max_neurons_supported:\s*(\d+)\s*$", tile, origin,
                 "'max_neurons_supported'")
    indent = len(im.group(1))
    end = i + 1
    while end < len(tile) and (not tile[end].strip()
                               or len(tile[end]) - len(tile[end].lstrip()) > indent):
        end += 1
    st = StockLoihi(origin, head, tile, (i, end), int(w.group(1)), int(h.group(1)),
                    int(cn.group(1)) + 1, int(im.group(2)) + 1, int(nm.group(1)))
    if int(tn.group(1)) + 1 != st.width * st.height:
        raise LayoutError(f"{origin}: {int(tn.group(1)) + 1} tiles on a {st.width} x "
                          f"{st.height} mesh; {EXPECTED} fills its mesh")
    if st.neurons_per_core != LOIHI.neurons_per_core:
        raise LayoutError(f"{origin}: {st.neurons_per_core} neurons a core, the Loihi "
                          f"preset has {LOIHI.neurons_per_core} ({LOIHI.source[:60]}...)")
    return st


def mesh(st: StockLoihi, plain_cores: int, input_cores: int) -> tuple[int, int]:
    """(plain tiles, input tiles): the stock mesh (its last :data:`INPUT_TILES` tiles
    for inputs) or more rows of it when ``plain_cores`` / ``input_cores`` need them."""
    pt = max(math.ceil(plain_cores / st.cores_per_tile), st.width * st.height - INPUT_TILES)
    it = max(math.ceil(input_cores / st.cores_per_tile), INPUT_TILES)
    rows = math.ceil((pt + it) / st.width)
    return rows * st.width - it, it


def generate(st: StockLoihi, plain_cores: int, input_cores: int) -> str:
    """The architecture description for ``plain_cores`` simulated-layer cores (named
    :data:`PLAIN_CORE`) and ``input_cores`` input cores (:data:`INPUT_CORE`)."""
    pt, it = mesh(st, plain_cores, input_cores)
    head = [re.sub(r"height:\s*\d+", f"height: {(pt + it) // st.width}", ln)
            if re.match(r"^\s*height:", ln) else ln for ln in st.head]
    a, b = st.inputs
    last = st.cores_per_tile - 1
    plain = [_rename(ln, "loihi_tile", f"loihi_tile[0..{pt - 1}]") for ln in
             st.tile[:a] + st.tile[b:]]
    inputs = [_rename(_rename(ln, "loihi_tile", f"loihi_input_tile[{pt}..{pt + it - 1}]"),
                      "loihi_core", f"{INPUT_CORE}[0..{last}]") for ln in st.tile]
    note = [f"# Generated by deploy/hardware/neurocores/simulation.py from {st.origin} "
            f"(SANA-FE's own file, "
            f"read at run time): {pt} tiles of LIF cores, {it} tiles whose cores also "
            "carry input units; all per-event figures as in that file."]
    return "\n".join(note + head + plain + inputs) + "\n"


def _rename(line: str, entry: str, name: str) -> str:
    return re.sub(rf"(- name:\s*){entry}\[0\.\.\d+\]", lambda m: m.group(1) + name, line)
