"""The dense partition on this host's CPU, measured on the spot with onnxruntime, and the
figures that make its roofline honest, measured with the same engine.

- :func:`measure`: the artifact's own ``dense.onnx`` (random inputs of its shapes) at
  batch 1 and at a pipelined batch; session start-up and the first runs are reported
  apart; median of ``repeats`` warm runs, wall and CPU time.
- :func:`calibrate`: three micro-benchmarks in onnxruntime, same threads:
  the achieved fp32 GEMM rate (a 512^3 MatMul) against the theoretical peak
  (threads x clock x vector lanes x 2 FMA units), the memory bandwidth (an Add over
  arrays far larger than the caches) and the launch floor (a chain of 256 one-element
  Add nodes: the executor's cost per node).
- :func:`optimized_nodes`: the nodes onnxruntime runs after its graph optimisations
  (constant folding removes the export's shape arithmetic): the launches of one run.

Nothing here is a preset: every figure is measured here and labelled so.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

FMA_UNITS = 2  # per core: Intel Xeon Scalable (Skylake-SP and later, Gold/Platinum)
# have two 512-bit FMA units a core (Intel 64 and IA-32 Architectures Optimization
# Reference Manual, ch. "Intel AVX-512"); assumed for any x86 core with FMA
LANES = {"avx512f": 16, "avx2": 8}  # fp32 lanes of the widest vector unit


def theoretical_macs_per_s(threads: int, mhz: float, isa: tuple) -> float:
    """threads x clock x fp32 lanes x FMA units: the CPU's fp32 MAC peak."""
    lanes = next((LANES[f] for f in ("avx512f", "avx2") if f in isa), 4)
    return threads * mhz * 1e6 * lanes * FMA_UNITS


def _session(model_or_path, threads: int, optimized_to: str | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # errors only (saving the optimised graph warns)
    if optimized_to:
        so.optimized_model_filepath = optimized_to
    # a ModelProto, the model's bytes (an artifact's, as verified) or a path
    src = model_or_path.SerializeToString() if hasattr(model_or_path, "SerializeToString") \
        else model_or_path if isinstance(model_or_path, bytes) else str(model_or_path)
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def _time(sess, feeds: dict, repeats: int, warmup: int = 2) -> dict:
    first = []
    for _ in range(warmup):
        t0 = time.perf_counter()
        sess.run(None, feeds)
        first.append(time.perf_counter() - t0)
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        sess.run(None, feeds)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu),
            "wall_values": wall, "first_runs_s": first}


def _feeds(sess, batch: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {i.name: rng.standard_normal([batch if not isinstance(d, int) else d
                                         for d in i.shape]).astype(np.float32)
            for i in sess.get_inputs()}


def optimized_nodes(onnx_path: str | Path, threads: int = 1) -> int:
    """Nodes of ``onnx_path`` after onnxruntime's default graph optimisations."""
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "opt.onnx")
        _session(onnx_path, threads, optimized_to=out)
        return len(onnx.load(out).graph.node)


def measure(onnx_path: str | Path, threads: int, batch: int = 8, repeats: int = 5) -> dict:
    """onnxruntime on ``onnx_path`` at batch 1 and ``batch``: median warm wall and CPU
    time of a run, per video at the batch, start-up apart."""
    t0 = time.perf_counter()
    sess = _session(onnx_path, threads)
    startup = time.perf_counter() - t0
    one = _time(sess, _feeds(sess, 1), repeats)
    many = _time(sess, _feeds(sess, batch), repeats)
    return {"engine": "onnxruntime CPUExecutionProvider", "threads": threads,
            "session_start_s": startup, "batch_1": one, "batch": batch, "batch_n": many,
            "per_video_s": one["wall_s"], "per_video_pipelined_s": many["wall_s"] / batch,
            "repeats": repeats,
            "label": f"measured (onnxruntime on the artifact's dense.onnx, {threads} "
                     f"thread(s), median of {repeats} warm runs)"}


def _graph(nodes, inputs, outputs):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(nodes, "bench",
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                           for n, s in inputs],
                          [helper.make_tensor_value_info(n, TensorProto.FLOAT, s)
                           for n, s in outputs])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = min(m.ir_version, 9)
    onnx.checker.check_model(m)
    return m


def typical_shape(layers) -> tuple[int, int, int]:
    """(M, K, N) of the layer at the MAC-weighted median of ``layers``
    (:class:`deploy.hardware.dense.roofline.DenseLayer`, those with weights): the GEMM
    whose achieved rate stands for the model's."""
    rows = sorted((la for la in layers if la.fan_in and la.outputs), key=lambda la: la.macs)
    if not rows:
        return (512, 512, 512)
    half, acc = sum(la.macs for la in rows) / 2, 0
    for la in rows:
        acc += la.macs
        if acc >= half:
            break
    return (max(1, la.macs // (la.fan_in * la.outputs)), la.fan_in, la.outputs)


def _gemm_rate(m: int, k: int, n: int, threads: int, repeats: int) -> float:
    from onnx import helper

    sess = _session(_graph([helper.make_node("MatMul", ["a", "b"], ["c"])],
                           [("a", [m, k]), ("b", [k, n])], [("c", [m, n])]), threads)
    rng = np.random.default_rng(0)
    g = _time(sess, {"a": rng.standard_normal((m, k), np.float32),
                     "b": rng.standard_normal((k, n), np.float32)}, repeats)
    return m * k * n / g["wall_s"]


def calibrate(threads: int, mhz: float, isa: tuple, shape: tuple[int, int, int] | None = None,
              repeats: int = 5) -> dict:
    """Achieved GEMM rate (at ``shape``, the model's typical layer: :func:`typical_shape`),
    memory bandwidth and per-node launch floor of onnxruntime on this CPU with
    ``threads`` threads (each the median of ``repeats`` warm runs)."""
    from onnx import helper

    n = 512
    big = _gemm_rate(n, n, n, threads, repeats)
    shape = shape or (n, n, n)
    macs_per_s = _gemm_rate(*shape, threads, repeats)
    m = 8 * 1024 * 1024  # 32 MB a tensor, 96 MB moved: past the per-core caches
    add = _session(_graph([helper.make_node("Add", ["x", "y"], ["z"])],
                          [("x", [m]), ("y", [m])], [("z", [m])]), threads)
    a = _time(add, {"x": np.ones(m, np.float32), "y": np.ones(m, np.float32)}, repeats)
    bw = 3 * 4 * m / a["wall_s"]
    k = 256
    chain = [helper.make_node("Add", [f"t{i}", "one"], [f"t{i + 1}"]) for i in range(k)]
    floor_sess = _session(_graph(chain, [("t0", [1]), ("one", [1])], [(f"t{k}", [1])]),
                          threads)
    one = np.ones(1, np.float32)
    f = _time(floor_sess, {"t0": one, "one": one}, repeats)
    nominal = theoretical_macs_per_s(threads, mhz, isa)
    peak = max(nominal, big)  # a turbo clock above the nominal one: the measured rate
    return {"threads": threads, "gemm_macs_per_s": macs_per_s, "gemm_shape": list(shape),
            "gemm_512_macs_per_s": big, "theoretical_macs_per_s": nominal,
            "peak_macs_per_s": peak, "achieved_fraction": macs_per_s / peak,
            "memory_bw": bw, "launch_s": f["wall_s"] / k,
            "source": (f"measured here with onnxruntime ({threads} thread(s), median of "
                       f"{repeats}): fp32 MatMul at the model's MAC-weighted median layer "
                       f"shape (M, K, N) = {tuple(shape)} -> achieved MAC rate, over the peak "
                       f"(the larger of the theoretical one and a {n}^3 MatMul's); Add of two "
                       f"{4 * m >> 20} MB tensors -> memory bandwidth (3 x 4 bytes a value); "
                       f"a chain of {k} one-element Add nodes -> launch floor a node; "
                       f"theoretical peak = threads x {mhz:.0f} MHz x fp32 lanes x "
                       f"{FMA_UNITS} FMA units (Intel optimization manual, AVX-512)")}
