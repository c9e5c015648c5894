"""Throughput of the dense partition: clips/s of `base` and `tiny`, inference and training.

    python benchmarks/ann_throughput.py [--variants tiny base] [--seconds 10] [--json]

One clip = one video of S segments (the variant's S and input sizes: base 224x224 I-frames
with 16x56x56 STM maps, 8 segments; tiny 56x56 / 8x14x14, 3 segments). Runs on CUDA when
available, else CPU with torch's default thread count. Training = forward, backward and
an Adam step on random labels.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import torch

from ann.config import VARIANTS
from ann.counting import count, totals
from ann.model import DenseModel

BATCH = {"tiny": 16, "base": 2, "large": 2}


def _clips_per_s(step, batch: int, seconds: float, device: str) -> tuple[float, int]:
    step()  # warm-up
    step()
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        if device == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if dt >= seconds and n >= 3:
            return n * batch / dt, n


def bench(name: str, seconds: float, device: str) -> dict:
    cfg, batch = VARIANTS[name], BATCH[name]
    torch.manual_seed(0)
    model = DenseModel(cfg).to(device)
    xs = [torch.randn(batch, cfg.segments, *cfg.in_shape(m), device=device)
          for m in ("i", "mv", "r")]
    y = torch.randint(0, cfg.num_classes, (batch,), device=device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    @torch.no_grad()
    def infer():
        model.eval()
        model(*xs)

    def train():
        model.train()
        loss = torch.nn.functional.cross_entropy(model(*xs), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    inf, n_inf = _clips_per_s(infer, batch, seconds, device)
    trn, n_trn = _clips_per_s(train, batch, seconds, device)
    t = totals(count(cfg))
    return {"variant": name, "device": device, "threads": torch.get_num_threads(),
            "batch": batch, "segments": cfg.segments, "image_size": list(cfg.image_size),
            "params": t["params"], "macs_per_clip": t["macs"],
            "infer_clips_per_s": round(inf, 3), "train_clips_per_s": round(trn, 3),
            "infer_steps": n_inf, "train_steps": n_trn}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="+", default=["tiny", "base"], choices=list(VARIANTS))
    ap.add_argument("--seconds", type=float, default=10.0, help="timed seconds per measurement")
    ap.add_argument("--json", action="store_true", help="one JSON list instead of text")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    rows = [bench(v, args.seconds, device) for v in args.variants]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"torch {torch.__version__}, device {device}, threads {torch.get_num_threads()}, "
          f"load average {load} (other processes share the CPU when it exceeds threads)")
    for r in rows:
        print(f"{r['variant']:>6}: batch {r['batch']}, S {r['segments']}, "
              f"{r['image_size'][0]}x{r['image_size'][1]}, {r['params'] / 1e6:.2f} M params, "
              f"{r['macs_per_clip'] / 1e9:.2f} GMACs/clip | inference "
              f"{r['infer_clips_per_s']:.2f} clips/s | training {r['train_clips_per_s']:.2f} "
              "clips/s")


if __name__ == "__main__":
    main()
