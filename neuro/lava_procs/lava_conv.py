"""Lava's own fixed-point ``Conv`` model, runnable on NumPy 2 at any plane width.

Lava 0.10's ``PyConvModelFixed`` holds ``kernel_size``, ``stride``, ``padding``,
``dilation`` and ``groups`` as int8 arrays; ``lava.proc.conv.utils.output_shape``
computes ``input_shape[0] + 2 * padding[0]`` with them. NumPy 2 keeps that sum int8
(NEP 50: a Python int meets a NumPy scalar in the scalar's type), so a plane wider than
127 - 2 * padding columns, e.g. 8 tiles of a 16x16 input (144 columns), raises
``OverflowError`` in the Conv process at its first step (NumPy 1 promoted to int64).
This model is Lava's, unchanged (``run_spk``, ``utils.conv`` with scipy, the 24-bit
wrap, the one-step delay), with those five parameters held as int32. It is the
reference ``conv="lava"`` of :mod:`neuro.runner`.
"""
from __future__ import annotations

import numpy as np

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvModelFixedWide(PyConvModelFixed):
    """``PyConvModelFixed`` with int32 shape parameters (module docstring)."""
    kernel_size: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    stride: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    padding: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    dilation: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
    groups: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=8)
