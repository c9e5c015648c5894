"""Run by tests/test_train.py under `python -m torch.distributed.run --nproc_per_node 2`:
trains the tiny test model for one epoch with DDP (gloo) and saves this rank's
parameters to OUT/rank{RANK}.pt. Usage: ddp_worker.py DATA OUT."""
import os
import sys

import torch

from hybrid.data.dataset import CompressedVideoDataset
from hybrid.data.sources import load_split
from hybrid.model import HybridConfig
from hybrid.training.train import TrainConfig, train

data, out = sys.argv[1], sys.argv[2]
torch.set_num_threads(1)
items, classes = load_split(data, "train")
test_items, _ = load_split(data, "test")
ds = CompressedVideoDataset(data, items, segments=1, train=True, crop=32, seed=0,
                            video_size=(64, 48))
val = CompressedVideoDataset(data, test_items, segments=1, train=False, crop=32, seed=0,
                            video_size=(64, 48))
cfg = HybridConfig(num_classes=len(classes), segments=1, size=(32, 32),
                   stm={"widths": (4, 4, 4)})
model, _ = train((ds, val), classes, os.path.join(out, "run"), cfg,
                 TrainConfig(epochs=1, batch_size=2, lr=3e-3))
torch.save(model.state_dict(), os.path.join(out, f"rank{os.environ['RANK']}.pt"))
