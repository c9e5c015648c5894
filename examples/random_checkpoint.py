"""A randomly initialised hybrid model saved as a training checkpoint, to profile a
variant at a setting no trained model exists for (e.g. ``base`` at the paper's 224x224
I-frames and 8 segments). Its spikes are those of random weights, not of a trained model.

    python examples/random_checkpoint.py --variant base --size 224 --segments 8 \
        --classes 101 -o runs/base-random/checkpoint.pt
"""
import argparse

import torch

from hybrid.model import HybridConfig, HybridModel
from hybrid.training import checkpoint


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    p.add_argument("--variant", default="base", choices=("tiny", "base", "large"))
    p.add_argument("--size", type=int, default=224, help="crop side (I-frame, MV, residual)")
    p.add_argument("--segments", type=int, default=8)
    p.add_argument("--classes", type=int, default=101)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", required=True, help="checkpoint path to write")
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)
    cfg = HybridConfig(variant=args.variant, num_classes=args.classes, segments=args.segments,
                       size=(args.size, args.size))
    model = HybridModel(cfg)
    checkpoint.save(args.out, model_config=cfg.to_dict(), train_config={"random_init": True,
                    "seed": args.seed}, classes=[f"class{i}" for i in range(args.classes)],
                    epoch=0, model=model.state_dict())
    print(f"wrote {args.out}: {args.variant}, {args.size}x{args.size}, {args.segments} "
          f"segments, random weights (seed {args.seed})")


if __name__ == "__main__":
    main()
