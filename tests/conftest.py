import os
import signal

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")

# Ctrl-C as Python's default, also where the suite was started as a background job of a
# non-interactive shell (a CI script's `cmd &`), which starts it with SIGINT ignored:
# the signal tests, in process or in the subprocesses that inherit it, would see no
# Ctrl-C at all (4 failures in a fresh-clone run started that way)
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


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


# ---- a tiny trained hybrid model and its deploy artifact, shared by the deploy, mapping
# and profiler tests (trained once per session: the CPU is shared)

DEPLOY_SIZE = 24  # crop (and STM input) of the tiny model
DEPLOY_VIDEO = (64, 48)  # (W, H) of the synthetic videos: kept, not resized


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """A tiny synthetic set (3 classes) and a hybrid model trained on it for 2 epochs:
    (data folder, checkpoint path)."""
    import torch

    from hybrid.data.dataset import open_split
    from hybrid.data.sources import load_split
    from hybrid.model import HybridConfig
    from hybrid.training.train import TrainConfig, train
    from hybrid.video.synth import SynthConfig, make_dataset

    root = tmp_path_factory.mktemp("deploy")
    data = root / "data"
    make_dataset(data, classes=3, per_class=4, seed=1,
                 cfg=SynthConfig(size=DEPLOY_VIDEO, frames=24))
    train_ds, classes = open_split(data, "train", 2, True, DEPLOY_SIZE, seed=0,
                                   video_size=DEPLOY_VIDEO)
    val_ds, _ = open_split(data, "test", 2, False, DEPLOY_SIZE, video_size=DEPLOY_VIDEO)
    assert load_split(data, "test")[1] == classes
    cfg = HybridConfig(num_classes=len(classes), segments=2, size=(DEPLOY_SIZE, DEPLOY_SIZE),
                       stm={"weight_scale": 10.0, "input_frac_bits": 6, "widths": (4, 6, 5)})
    torch.manual_seed(0)
    train((train_ds, val_ds), classes, root / "run", cfg,
          TrainConfig(epochs=2, batch_size=3, lr=3e-3, warmup_epochs=0))
    return data, root / "run" / "checkpoint.pt"


@pytest.fixture(scope="session")
def deployed(trained, tmp_path_factory):
    """``hybrid deploy`` of the ``trained`` checkpoint (defaults: loihi2 mapping, no NIR)."""
    from hybrid.ondevice.artifacts import deploy_checkpoint

    out = tmp_path_factory.mktemp("art") / "model"
    return deploy_checkpoint(trained[1], out)
