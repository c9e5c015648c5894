import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same seeds."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    try:
        import torch

        torch.manual_seed(0)
    except ImportError:
        pass


@pytest.fixture
def randomise_neurons():
    """A function giving an STM different learned thresholds and leaks per layer."""
    import torch

    def apply(stm, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for b in stm.blocks:
                b.neuron.threshold_raw.add_(0.5 * torch.randn((), generator=g))
                b.neuron.leak_raw.add_(torch.randn((), generator=g))

    return apply
