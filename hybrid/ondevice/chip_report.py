"""Feeds real videos to the hybrid-chip estimates (:mod:`deploy.hardware.report`): the data live
here (``hybrid``), the estimators in ``deploy``.

Per STM branch: ``sequences`` P-frame sequences drawn at random (seeded) across the
whole set (one centre crop) run through the exported STM on Lava ``fixed_pt``
(``record=True``); the first layer's spikes drive SANA-FE's layers 2..L. The host stages
are timed apart on videos drawn with the same seed (:mod:`hybrid.ondevice.host_timing`).
Plots for ``hybrid chip --plot`` and ``examples/``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from deploy.hardware import boards, host, report, uncertainty
from deploy.hardware.dense.roofline import dense_layers, roofline, summarise
from deploy.hardware.dense.stage import dense_stage
from deploy.hardware.link import bridge_transfer
from deploy.hardware.neurocores import simulation
from deploy.hardware.targets import TIANJIC, AcceleratorPreset, LinkPreset
from deploy.presets import CHIPS, ENERGY_PRESETS
from hybrid.data.dataset import UNREADABLE
from hybrid.ondevice import host_timing
from hybrid.training.evaluate import views
from neuro import quant
from neuro.export import StmNetwork

log = logging.getLogger(__name__)
KEYS = {"mv": "mv", "r": "residual"}  # STM branch -> sample key


def sample_sequences(dataset, segments: int, crop: tuple[int, int], branches, n: int,
                     progress: Callable | None = None, seed: int = 0) -> tuple[dict, int]:
    """({branch: (n', C, H, W, T) float inputs}, videos read): ``n`` (video, segment)
    pairs drawn at random (``seed``) across the whole set, every segment of every video
    equally likely; a video that cannot be read is replaced by the next draw."""
    rng = random.Random(seed)
    pairs = rng.sample(range(len(dataset) * segments), len(dataset) * segments)
    xs = {m: [] for m in branches}
    videos, bad, i = 0, set(), 0
    while min(len(v) for v in xs.values()) < n and i < len(pairs):
        want: dict[int, list[int]] = {}
        for p in pairs[i:i + n - min(len(v) for v in xs.values())]:
            if p // segments not in bad:
                want.setdefault(p // segments, []).append(p % segments)
        i += n - min(len(v) for v in xs.values())
        for v, segs in want.items():
            try:
                sample = dataset[v]
            except UNREADABLE as exc:
                log.warning("skipping a video that cannot be read: %s", exc)
                bad.add(v)
                continue
            videos += 1
            b = views(sample, segments, crop, 1)
            for m in branches:
                x = b[KEYS[m]].numpy()  # (B, S, T, C, H, W)
                xs[m] += [x[0, k].transpose(1, 2, 3, 0) for k in segs]  # (C, H, W, T)
            if progress:
                progress(len(segs))
    if not videos:
        raise ValueError("no readable video")
    return {m: np.stack(v[:n]) for m, v in xs.items()}, videos


def layer1_spikes(path: Path | StmNetwork, x: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sequence of ``x`` (N, C, H, W, T): (graded input messages, the first layer's
    output spikes) of the exported STM at ``path`` (or read from it) on Lava ``fixed_pt``."""
    from neuro.runner import LavaRunner

    with LavaRunner(path, steps=x.shape[-1], record=True, conv="im2col") as r:
        res = r.run(x)
        msgs = quant.quantize_input_np(x, r.net.in_frac_bits, r.net.in_bits)
    return [(msgs[i], res.spikes[0][i]) for i in range(x.shape[0])]


def mapping_note(mapping: dict | None, neuro: str, where: str = "mapping.json") -> str | None:
    """Why the artifact's mapping (``where``) cannot place the neurocore simulation of
    ``neuro``'s chip (it maps onto another chip), naming both chips; None when it can or
    when there is none."""
    if mapping is None or mapping.get("chip") == neuro:
        return None
    got = mapping.get("chip")
    title = CHIPS[got].title if got in CHIPS else "an unknown chip"
    return (f"{where} maps the STMs onto {got!r} ({title}), SANA-FE simulates {neuro!r} "
            f"({CHIPS[neuro].title}, {CHIPS[neuro].neurons_per_core:,} neurons a core): "
            f"placing them by a {neuro!r} mapping computed now "
            f"(deploy.hardware.neurocores.mapping); "
            f"`hybrid deploy --chip {neuro}` writes a mapping.json both reports share")


def chip_mapping(nets: dict[str, StmNetwork], mapping: dict | None, neuro: str) -> tuple[dict, str]:
    """The layer-to-core mapping for the neurocore simulation: the artifact's
    ``mapping.json`` when it maps onto ``neuro``'s chip, else one computed here (the
    second item says which, and why)."""
    from deploy.hardware.neurocores.mapping import map_network

    if mapping is not None and mapping.get("chip") == neuro:
        return mapping, "the artifact's mapping.json"
    why = (mapping_note(mapping, neuro)
           or f"no mapping.json: computed by deploy.hardware.neurocores.mapping for {neuro!r}")
    return map_network(nets, CHIPS[neuro]).to_dict(), why


def estimate(paths: dict[str, Path], nets: dict[str, StmNetwork], dense_cfg, dataset,
             crop: tuple[int, int], accelerator: AcceleratorPreset, precision: str,
             link: LinkPreset, sequences: int, mapping: dict | None = None,
             neuro: str = "loihi", bridge_bytes: int | None = None,
             progress: Callable | None = None, board: boards.BoardPreset | None = None,
             seed: int = 0, host_videos: int = 6, dense_onnx: Path | None = None,
             threads: int = 1, batch: int = 8) -> dict:
    """The ``hybrid chip`` report of the deployed partitions on ``dataset``'s videos.
    ``bridge_bytes``: a video's bridge payload (the artifact's bridge spec), else counted
    the same way here (segments x C' x h x w voltages of 24 bits per branch). ``board``:
    the neuromorphic system (default: one chip when a copy of the STMs fits it, else the
    largest board of ``neuro``'s chip, :func:`deploy.hardware.boards.default_board`).
    ``seed`` draws the simulated sequences and the ``host_videos`` videos timed on the
    host; ``dense_onnx``: the dense partition's ONNX (counts the launches; ``host-cpu``
    runs it with ``threads`` threads at batch 1 and ``batch``)."""
    t_start = time.perf_counter()
    segments = dense_cfg.segments
    energy = ENERGY_PRESETS[neuro]
    cpu = host.read_cpu()
    with (progress(range(host_videos), "timing the host") if progress
          else contextlib.nullcontext()) as bar:
        meas = host_timing.measure(dataset, segments, host_videos, seed,
                                   (lambda k: bar.update(k)) if progress else None, cpu)
    host_stages, host_reps = host_timing.stages(meas)
    with (progress(range(sequences), "reading videos") if progress
          else contextlib.nullcontext()) as bar:
        xs, videos = sample_sequences(dataset, segments, crop, list(nets), sequences,
                                      (lambda k: bar.update(k)) if progress else None, seed)
    mp, mp_source = chip_mapping(nets, mapping, neuro)
    # every Lava run (it forks its processes) before SANA-FE starts its OpenMP threads
    layer1 = {m: layer1_spikes(paths[m], xs[m]) for m in nets}
    branches = {}
    for m, net in nets.items():
        seqs = layer1[m]
        tilings = simulation.tilings_from_mapping(mp, m, len(net.layers))
        with (progress(range(len(seqs)), f"SANA-FE {m}") if progress
              else contextlib.nullcontext()) as bar:
            branches[m] = report.simulate_branch(
                net, seqs, energy, tilings, name=f"stm.{m}",
                progress=(lambda k: bar.update(k)) if progress else None)
    board = board or boards.default_board(neuro, int(mp["cores_used"]))
    neuro_rep = boards.spiking_on_board(
        branches, segments, int(mp["cores_used"]), board,
        int(mp["synaptic_memory_bits"]) + int(mp["state_bits"]))
    neuro_rep |= {"simulator": "SANA-FE 2.2.9 (GPL-3.0, optional extra)",
                  "architecture": "SANA-FE's loihi.yaml (Davies et al. 2018 per-event "
                                  "energies and latencies, SANA-FE's calibration), inputs "
                                  "on 4 tiles (deploy/hardware/neurocores/loihi_arch.py)",
                  "mapping": mp_source, "mapping_fits_one_chip": bool(mp.get("fits")),
                  "cores_used": mp.get("cores_used"),
                  "reload_bits": int(mp["synaptic_memory_bits"]) + int(mp["state_bits"])}
    if bridge_bytes is None:
        bridge_bytes = sum(math.ceil(segments * math.prod(n.layers[-1].shape) * quant.V_BITS / 8)
                           for n in nets.values())
    bridge = bridge_transfer(bridge_bytes, link)
    layers = dense_layers(dense_cfg)
    dense, dense_reps = dense_stage(layers, accelerator, precision, dense_onnx,
                                    ENERGY_PRESETS["45nm-int8"] if precision == "int8" else None,
                                    threads, batch, seed=seed, cpu=cpu)
    rep = report.report(neuro_rep, host_stages, bridge, dense)
    uncertainty.attach(rep, host_reps, dense_reps, seed)
    from deploy.hardware.tianjic import verdict

    rep["tianjic"] = verdict(nets, layers, TIANJIC)
    rep["chips"] = neuro_rep["chips"]
    rep["host"] = host.describe(cpu, threads, host.EnergyMeter()) | {"timing": meas}
    rep |= {"videos_read": videos, "seed": seed, "sequences_simulated": {
        m: b["sequences_simulated"] for m, b in branches.items()},
        "report_s": time.perf_counter() - t_start}
    return rep


STAGE_COLOURS = {"transcode": "tab:brown", "extract": "tab:gray", "spiking": "tab:orange",
                 "bridge": "tab:green", "dense": "tab:blue"}
HOST_STAGES = ("transcode", "extract")


def plot_timeline(rep: dict, title: str = ""):
    """Gantt chart of one video through the stages; a second panel zooms onto the chip
    stages (spiking, bridge, dense), which the host's stages may dwarf. Each bar carries
    its 95 % interval (black whisker at its end) and is labelled with its duration and
    whether it was measured, simulated or estimated; the spiking bar also SANA-FE's
    published calibration error as a hatched band."""
    from hybrid.ondevice.energy import pyplot

    plt = pyplot()
    tl = report.timeline(rep)
    names = [n for n, _, _ in tl]
    stages = {s["name"]: s for s in rep["stages"]}
    fig, axes = plt.subplots(2, 1, figsize=(8, 5.2))
    src = {n: s["source"].split(" ")[0] for n, s in stages.items()}
    chip = [r for r in tl if r[0] not in HOST_STAGES]
    for ax, rows in ((axes[0], tl), (axes[1], chip)):
        # each panel from its own start (the zoom's absolute ticks would all read alike)
        t0 = rows[0][1]
        ends = [b - t0 for _, _, b in rows]
        for name, a, b in rows:
            hi = stages[name]["interval"]["time_s"][1] - (b - a)
            ends.append(b - t0 + max(hi, 0))
            if "calibration" in stages[name]:
                ends.append(a - t0 + stages[name]["calibration"]["time_s"][1])
        span = max(ends) or 1.0
        for name, a, b in rows:
            i = names.index(name)
            st, d = stages[name], b - a
            ax.barh(i, max(d, span * 3e-3), left=a - t0, color=STAGE_COLOURS.get(name, "k"),
                    edgecolor="black", linewidth=0.5)
            if "calibration" in st:
                lo_c, hi_c = st["calibration"]["time_s"]
                ax.barh(i, hi_c - lo_c, left=a - t0 + lo_c, height=0.8, fill=False,
                        hatch="///", edgecolor="tab:red", linewidth=0.8,
                        label=f"SANA-FE calibration (+-{rep['calibration']['latency']:.0%})")
            lo, hi = st["interval"]["time_s"]
            ax.errorbar(b - t0, i, xerr=[[max(d - lo, 0)], [max(hi - d, 0)]], fmt="none",
                        ecolor="black", capsize=3, linewidth=1)
            ax.text(a - t0 + max(d, hi, st.get("calibration", {}).get("time_s", [0, 0])[1])
                    + span * 0.01, i, f"{_seconds(d)} [{_seconds(lo)}, {_seconds(hi)}] "
                    f"({src[name]})", va="center", fontsize=7)
        ax.set_yticks([names.index(n) for n, _, _ in rows], [n for n, _, _ in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, span * 1.75)
        ax.xaxis.set_major_formatter(lambda v, _: _seconds(v) if v > 0 else "0")
    handles, labels = axes[1].get_legend_handles_labels()
    if handles:
        axes[1].legend(handles[:1], labels[:1], fontsize=7, loc="lower right")
    axes[0].set_title("one video through the stages (whiskers: 95 % intervals)", fontsize=9)
    axes[1].set_title("zoom: the chip stages", fontsize=9)
    axes[0].set_xlabel("time from the start of the video", fontsize=8)
    axes[1].set_xlabel(f"time from the end of the host stages ({_seconds(chip[0][1])} into "
                       "the video)", fontsize=8)
    pv = rep["per_video"]
    lo, hi = pv["interval"]["latency_s"]
    fig.suptitle(title or f"Latency {_seconds(pv['latency_s'])} [{_seconds(lo)}, "
                 f"{_seconds(hi)}] a video; pipelined {pv['throughput_vps']:.3g} videos/s "
                 f"(paper, GPU: 16.0); host: {rep['host']['cpu']}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_energy_by_stage(data: dict, title: str):
    """Stacked bars: energy per video by stage (spiking, bridge, dense), one bar per
    preset combination, SANA-FE's published calibration error on the spiking part as a
    whisker; ``data`` maps a label to {stage: joules}."""
    from hybrid.ondevice.energy import pyplot

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    names = list(data)
    bottom = np.zeros(len(names))
    for stage in ("spiking", "bridge", "dense"):
        vals = np.array([data[n].get(stage, 0.0) or 0.0 for n in names])
        ax.bar(names, vals, bottom=bottom, color=STAGE_COLOURS[stage], label=stage,
               edgecolor="black", linewidth=0.5)
        bottom += vals
    calib = uncertainty.SANAFE_CALIBRATION["energy"]
    band = np.array([calib * (data[n].get("spiking", 0.0) or 0.0) for n in names])
    ax.errorbar(range(len(names)), bottom, yerr=band, fmt="none", ecolor="tab:red",
                capsize=4, label=f"SANA-FE calibration (+-{calib:.0%} of spiking)")
    for i, t in enumerate(bottom):
        ax.text(i, t + band[i], _joules(t), ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.3 * (bottom + band).max())
    ax.yaxis.set_major_formatter(lambda v, _: _joules(v) if v > 0 else "0")
    ax.set_ylabel("energy per video")
    ax.set_title(f"{title}\n(the paper: {report.PAPER['energy_j']} J a video, on a GPU)",
                 fontsize=10)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    fig.tight_layout()
    return fig


def _seconds(s: float) -> str:
    for unit, k in (("s", 1), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if s >= k:
            return f"{s / k:.3g} {unit}"
    return f"{s:.3g} s"


def _joules(j: float) -> str:
    for unit, k in (("J", 1), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9)):
        if j >= k:
            return f"{j / k:.3g} {unit}"
    return f"{j:.3g} J"


@contextlib.contextmanager
def exported_stms(model):
    """({branch: path}, {branch: StmNetwork}) of a HybridModel's STMs exported to a
    temporary folder at the model's STM input size (what ``hybrid deploy`` writes)."""
    import tempfile

    from hybrid.ondevice.energy import BRANCHES
    from neuro.export import export_stm, read_network

    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for m, module, _ in BRANCHES:
            if m in model.cfg.modalities:
                paths[m] = export_stm(getattr(model, module).stm, Path(tmp) / f"stm_{m}.h5",
                                      model.cfg.stm_input_size())
        yield paths, {m: read_network(p) for m, p in paths.items()}


def preset_variants(rep: dict, dense_cfg) -> dict:
    """{label: {stage: joules}}: the report's spiking stage with the dense partition and
    the bridge under every accelerator (at its natural precision) and link."""
    from deploy.hardware.targets import ACCELERATORS, LINKS

    layers = dense_layers(dense_cfg)
    combos = [("h100-sxm", "fp16", "pcie4-x16"), ("a100-sxm", "fp16", "pcie4-x16"),
              ("jetson-orin", "int8", "10gbe"), ("tianjic-ann", "int8", "on-chip")]
    out = {}
    for acc, prec, lk in combos:
        a = ACCELERATORS[acc]
        d = summarise(roofline(layers, a, prec, launches=rep["dense"].get("launches")), a, prec)
        b = bridge_transfer(rep["bridge"]["bytes"], LINKS[lk])
        out[f"{acc} {prec}\n+ {lk}"] = {"spiking": rep["neuro"]["energy_j"],
                                        "bridge": b["energy_j"], "dense": d["energy_j"],
                                        "dense_time_s": d["time_s"], "bridge_time_s": b["time_s"]}
    return out
