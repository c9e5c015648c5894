"""Lava's Conv (neuro's exact im2col model) raising at its third step."""
from neuro.lava_procs.fast_conv import PyConvModelFixedIm2col

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.conv.process import Conv

FAIL_AT = 3


@implements(proc=Conv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class FailingConvModel(PyConvModelFixedIm2col):
    def run_spk(self) -> None:
        if self.time_step == FAIL_AT:
            raise ValueError(f"boom at step {FAIL_AT}")
        super().run_spk()
