"""A faster fixed-point ProcessModel for Lava's own ``Conv`` Process.

Lava 0.10's ``PyConvModelFixed`` convolves with ``scipy.signal.convolve2d`` once per
(output, input) channel pair and step (its torch path is disabled), which dominates
the simulation time of a conv network. This model computes the same integer sums
with one im2col matrix product in float64 (exact: every partial sum is an integer far
below 2**53), then applies the same 24-bit wrap and the same one-step delay. Select it
with ``exception_proc_model_map={Conv: PyConvModelFixedIm2col}``.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv import utils
from lava.proc.conv.models import PyConvModelFixed
from lava.proc.conv.process import Conv


def conv_im2col(x_whc: np.ndarray, weight: np.ndarray, stride, padding) -> np.ndarray:
    """Lava's ``utils.conv`` (dilation 1, groups 1): x (W, H, C), weight
    (C_out, kW, kH, C_in), stride/padding (x, y) -> (W', H', C_out) float64."""
    sx, sy = int(stride[0]), int(stride[1])
    px, py = int(padding[0]), int(padding[1])
    x = np.pad(x_whc.astype(np.float64), ((px, px), (py, py), (0, 0)))
    k = weight[:, ::-1, ::-1, :].astype(np.float64)  # true convolution, as Lava's
    o, kw, kh, c = k.shape
    win = sliding_window_view(x, (kw, kh), axis=(0, 1))[::sx, ::sy]  # (W', H', C, kW, kH)
    w_out, h_out = win.shape[:2]
    cols = win.reshape(w_out * h_out, c * kw * kh)
    out = cols @ k.transpose(0, 3, 1, 2).reshape(o, c * kw * kh).T  # (W'H', C_out)
    return out.reshape(w_out, h_out, o)


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyConvModelFixedIm2col(PyConvModelFixed):
    """Lava's ``PyConvModelFixed`` with the convolution as one im2col product a step
    (:func:`conv_im2col`): the same integers, wrap and delay."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        # One BLAS thread per Lava process: the processes already run side by side,
        # and oversubscribed BLAS threads made each step several times slower.
        # (threadpoolctl comes with scikit-learn, a lava-nc requirement.)
        from threadpoolctl import threadpool_limits

        self._blas_limit = threadpool_limits(limits=1)

    def run_spk(self) -> None:
        self.a_out.send(self.a_buf)
        s_in = self.s_in.recv()
        if self.num_message_bits.item() == 0:
            s_in = s_in.astype(bool)
        if not (self.groups[0] == 1 and np.all(self.dilation == 1)):
            raise ValueError("PyConvModelFixedIm2col supports groups=1, dilation=1 only")
        a = conv_im2col(s_in, self.weight, self.stride, self.padding)
        self.a_buf = utils.signed_clamp(a, bits=24).astype(np.int32)
