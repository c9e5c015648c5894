"""Issue 9's measurement: the cost of fixed point and the time of each deploy stage.

On the demo's synthetic set (hybrid/demo.py: 8 classes x 24 videos at 128x96, 48 held
out), with the demo's tiny model (trained here for --epochs, or --checkpoint):

1. held-out top-1 of the torch model with float STMs and with fixed-point (qat) STMs;
2. `hybrid deploy`, then `hybrid run` of the held-out split (read from the videos, so
   the extract stage decodes and traces each one) on the simulated hybrid chip (Lava
   fixed_pt + onnxruntime): top-1, time per video of each stage (extract, spiking,
   bridge, dense), Lava compile time; a second run with --compare for the agreement
   with the torch fixed-point model.

    python benchmarks/deploy_stages.py [-o OUT] [--epochs N] [--checkpoint CK] [--workers N]

Prints a table and writes OUT/results.json.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path


def main() -> None:
    import torch

    from deploy.runtime.pool import run_videos
    from hybrid.demo import DemoConfig, datasets, make_data, train_eval
    from hybrid.ondevice.artifacts import SKIP, deploy_checkpoint, open_input
    from hybrid.training.evaluate import evaluate, load_model

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-o", "--out", default="runs/deploy_stages")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--checkpoint", default=None, help="a trained demo checkpoint to use")
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    out = Path(args.out)
    cfg = dataclasses.replace(DemoConfig(), epochs=args.epochs)
    data, cache = make_data(out, cfg, print)
    if args.checkpoint:
        ck = Path(args.checkpoint)
    else:
        train_eval(cache, out / "run", cfg, print)
        ck = out / "run" / "checkpoint.pt"
    model, classes, _ = load_model(ck)
    (_, val_ds), _ = datasets(cache, cfg.segments, cfg.size)
    acc = {}
    for q in ("float", "qat"):
        t0 = time.perf_counter()
        acc[q] = evaluate(model, val_ds, classes, quant=q)["top1"]
        print(f"torch, STMs {q:<5}: held-out top-1 {acc[q]:.4f} "
              f"({time.perf_counter() - t0:.1f}s for {len(val_ds)} videos)")
    t0 = time.perf_counter()
    art = deploy_checkpoint(ck, out / "deploy", overwrite=True)
    deploy_s = time.perf_counter() - t0
    ds, names, labels = open_input(art, data, video_size=cfg.video_size)
    rep = run_videos(art, ds, names, labels, workers=args.workers, skip=SKIP)
    cmp = run_videos(art, ds, names, labels, workers=args.workers, compare=True, skip=SKIP)
    per = rep["seconds_per_video"]
    res = {
        "checkpoint": str(ck), "epochs": args.epochs if not args.checkpoint else None,
        "held_out_videos": len(names), "workers": rep["workers"],
        "top1_torch_float": acc["float"], "top1_torch_qat": acc["qat"],
        "top1_deployed": rep["top1"], "agreement_with_torch_qat": cmp["agreement"],
        "spikes_equal": cmp["spikes_equal"], "max_logit_diff": cmp["max_logit_diff"],
        "deploy_seconds": deploy_s, "lava_compile_seconds": rep["compile_seconds"],
        "seconds_per_video": per, "run_wall_seconds": rep["wall_seconds"],
        "bridge_bytes_per_video": rep["bridge_bytes_per_video"],
        "artifact_bytes": sum(f["bytes"] for f in art.manifest["files"]),
        "skipped": rep["skipped"],
    }
    print(f"\nheld-out top-1 ({len(names)} videos): torch float {acc['float']:.4f} | "
          f"torch fixed point (qat) {acc['qat']:.4f} | deployed (Lava + onnxruntime) "
          f"{rep['top1']:.4f}")
    print(f"deployed vs torch qat: top-1 agreement {cmp['agreement']:.4f}, spikes equal "
          f"{cmp['spikes_equal']}, max logit diff {cmp['max_logit_diff']:.2e}")
    print(f"deploy {deploy_s:.1f}s; Lava compile (2 STMs) "
          + ", ".join(f"{s:.2f}s" for s in rep["compile_seconds"]))
    print("per video (s): " + "  ".join(f"{k} {v:.4f}" for k, v in per.items())
          + f"  total {sum(per.values()):.4f}; wall {rep['wall_seconds']:.1f}s")
    (out / "results.json").write_text(json.dumps(res, indent=2))
    print(f"wrote {out / 'results.json'}")


if __name__ == "__main__":
    main()
