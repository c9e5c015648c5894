"""Run a deployed artifact on the simulated hybrid chip, and compare it with torch.

Per video: each STM branch in Lava ``fixed_pt`` (:class:`neuro.runner.LavaRunner`, compiled
once per run and branch, the video's segments streamed as back-to-back sequences), the
bridge (Lava integer voltages -> dense input, :mod:`deploy.artifact.bridge`), the dense partition
in onnxruntime (:class:`ann.onnx_export.OnnxDense`). The host side (reading and
extracting videos) is the caller's: :func:`run_shard` takes any indexable dataset whose
items are dicts of ``iframe`` (S, 3, H, W), ``mv`` (S, T, 2, H, W), ``residual``
(S, T, 3, H, W) tensors (:func:`deploy.runtime.pool.run_videos` shards it over worker
processes, each with its own Lava runtimes). ``compare=True`` also runs the artifact's
own partitions in torch fixed point
(``qat``: :func:`neuro.export.load_stm`, :func:`ann.onnx_export.load_torch`) on the same
inputs and reports top-1 agreement, the largest logit difference and, per layer, whether
every spike matches.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from deploy.artifact.bridge import to_dense, to_stm
from deploy.artifact.folder import Artifact
from deploy.artifact.inputs import decode_sample
from deploy.energy.profiler import LayerCount, lava_counts
from neuro.runner import LavaRunner

SAMPLE_KEYS = {"mv": "mv", "r": "residual"}
STAGES = ("extract", "spiking", "bridge", "dense")


@dataclass
class VideoOutput:
    logits: np.ndarray  # (K,) float32
    spikes: dict[str, list[int]]  # per STM modality: spikes per layer (all segments, steps)
    seconds: dict[str, float]  # spiking, bridge, dense
    spike_maps: dict[str, list[np.ndarray]] | None  # per STM, per layer (S, C, H, W, T)


def _sequences(clips) -> np.ndarray:
    """(B, S, T, C, H, W) P-frames -> the STM's (B*S, C, H, W, T) float32 sequences."""
    return np.ascontiguousarray(to_stm(torch.as_tensor(clips)).numpy(), dtype=np.float32)


def _stm_input(sample: dict, m: str) -> np.ndarray:
    """One video's (S, T, C, H, W) P-frames -> the STM's (S, C, H, W, T) float32 sequences."""
    return _sequences(torch.as_tensor(sample[SAMPLE_KEYS[m]])[None])


class HybridRuntime:
    """An artifact loaded onto the simulated chip: one compiled Lava network per STM,
    one onnxruntime session. ``with HybridRuntime(art) as rt: out = rt.run(sample)``."""

    def __init__(self, art: Artifact, record: bool = False, conv: str = "fused"):
        self.art, self.record = art, record
        self.runners: dict[str, LavaRunner] = {}
        try:
            t0 = time.perf_counter()
            for m in art.inputs.stm_modalities:
                self.runners[m] = LavaRunner(art.networks[m], steps=art.inputs.timesteps,
                                             record=record, conv=conv)
            self.compile_s = time.perf_counter() - t0
            self.dense = art.dense_onnx()  # the bytes load_artifact verified
        except BaseException:
            self.close(interrupted=True)
            raise

    def run(self, sample: dict, name: str = "sample") -> VideoOutput:
        """One video's inputs (shapes as the artifact's input spec says) -> its output."""
        self.art.inputs.check(sample, name)
        secs = dict.fromkeys(("spiking", "bridge", "dense"), 0.0)
        v_in, spikes, maps = {}, {}, {} if self.record else None
        for m, runner in self.runners.items():
            t0 = time.perf_counter()
            res = runner.run(_stm_input(sample, m))
            t1 = time.perf_counter()
            v_in[m] = self.art.bridges[m].from_lava(res.v_int)  # (1, S, C, h, w)
            secs["spiking"] += t1 - t0
            secs["bridge"] += time.perf_counter() - t1
            spikes[m] = [int(c.sum()) for c in res.spike_counts]
            if maps is not None:
                maps[m] = res.spikes
        t0 = time.perf_counter()
        iframe = sample["iframe"][None] if "i" in self.art.inputs.modalities else None
        logits = self.dense(iframe, v_in.get("mv"), v_in.get("r"))[0].numpy()
        secs["dense"] = time.perf_counter() - t0
        return VideoOutput(logits, spikes, secs, maps)

    @property
    def shm_names(self) -> list[str]:
        """The shared-memory blocks of every Lava runtime here."""
        return [name for r in self.runners.values() for name in r.shm_names]

    def spike_counts(self, clips: dict) -> dict[str, list[LayerCount]]:
        """Per STM modality, the profiler's per-layer counts
        (:func:`deploy.energy.profiler.lava_counts`) of the spikes this runtime's Lava
        networks emit on ``clips``: a dict of ``mv`` / ``residual`` (B, S, T, C, H, W),
        e.g. one video's views (needs ``record=True``)."""
        return {m: lava_counts(r, _sequences(clips[SAMPLE_KEYS[m]]), prefix=f"stm.{m}")
                for m, r in self.runners.items()}

    def close(self, interrupted: bool = False) -> None:
        """Stop the Lava runtimes; ``interrupted``: end their processes at once (a stop
        command could wait on a process blocked mid-run)."""
        for runner in self.runners.values():
            if interrupted:
                runner._terminate()  # noqa: SLF001  LavaRunner's own interrupt path
            else:
                runner.close()
        self.runners = {}

    def __enter__(self) -> HybridRuntime:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(interrupted=exc_type is not None and not issubclass(exc_type, Exception))


class TorchReference:
    """The artifact's own partitions in torch, STMs in fixed point (``qat``)."""

    def __init__(self, art: Artifact):
        self.art = art
        self.stms = {m: art.stm(m) for m in art.inputs.stm_modalities}  # verified bytes
        self.dense = art.dense_torch()

    @torch.no_grad()
    def run(self, sample: dict) -> tuple[np.ndarray, dict[str, list[np.ndarray]]]:
        """(logits (K,), per STM per layer spike maps (S, C, H, W, T))."""
        v, maps = {}, {}
        for m, stm in self.stms.items():
            x = torch.as_tensor(sample[SAMPLE_KEYS[m]])[None]
            out = stm(to_stm(x), quant="qat", return_spike_maps=True)
            v[m] = to_dense(out.v, 1)
            maps[m] = [s.numpy().astype(np.int8) for s in out.spike_maps]
        iframe = sample["iframe"][None] if "i" in self.art.inputs.modalities else None
        logits = self.dense(iframe, v.get("mv"), v.get("r"))[0].numpy()
        return logits, maps


def compare_outputs(out: VideoOutput, ref_logits: np.ndarray, ref_maps: dict) -> dict:
    layers = {m: [bool(np.array_equal(a, b)) for a, b in zip(out.spike_maps[m], ref_maps[m])]
              for m in ref_maps}
    return {"top1_agrees": bool(out.logits.argmax() == ref_logits.argmax()),
            "max_logit_diff": float(np.abs(out.logits.astype(np.float64) - ref_logits).max()),
            "spikes_equal": all(all(v) for v in layers.values()),
            "layers_spikes_equal": layers}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max())
    return e / e.sum()


def _video_record(art: Artifact, name: str, label: int | None, out: VideoOutput,
                  extract_s: float, top: int) -> dict:
    p = _softmax(out.logits)
    order = np.argsort(-p, kind="stable")[:min(top, len(p))]
    rec = {"video": name, "top": [{"class": art.classes[i], "probability": float(p[i])}
                                  for i in order],
           "logits": [float(v) for v in out.logits], "spikes": out.spikes,
           "seconds": {"extract": extract_s, **out.seconds}}
    if label is not None:
        rec["label"] = art.classes[label]
        rec["correct"] = bool(order[0] == label)
    return rec


def _norm(art: Artifact) -> dict:
    """The mean and std of the training side's normalisation (the spec's)."""
    n = art.inputs.normalization
    return {k: tuple(n[k]) for k in ("mean", "std") if k in n}


def run_shard(art: Artifact, dataset, names, labels, indices, top: int, compare: bool,
               conv: str, skip: tuple[type[BaseException], ...], emit: Callable) -> None:
    """Run ``indices`` of ``dataset`` with one runtime; ``emit(index, record)``."""
    ref = TorchReference(art) if compare else None
    with HybridRuntime(art, record=compare, conv=conv) as rt:
        emit(-1, {"compile_s": rt.compile_s, "shm": rt.shm_names})
        for i in indices:
            t0 = time.perf_counter()
            try:
                sample = dataset[i]
            except skip as exc:
                emit(i, {"video": names[i], "error": str(exc)})
                continue
            if torch.as_tensor(sample["iframe"]).dtype == torch.uint8:  # a loader's codes
                sample = decode_sample(sample, **_norm(art))
            extract_s = time.perf_counter() - t0
            out = rt.run(sample, names[i])
            rec = _video_record(art, names[i], None if labels is None else labels[i], out,
                                extract_s, top)
            if ref is not None:
                ref_logits, ref_maps = ref.run(sample)
                rec["compare"] = compare_outputs(out, ref_logits, ref_maps)
                if labels is not None:
                    rec["compare"]["torch_correct"] = bool(ref_logits.argmax() == labels[i])
            emit(i, rec)
