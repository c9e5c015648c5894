"""Feeds a hybrid model's spikes on real videos to the profiler (:mod:`deploy.energy.profiler`):
the model and data live here (``hybrid``), the counting and energy in ``deploy``.

Per video, all its views (clips x crops, :func:`hybrid.training.evaluate.views`) run through the
STMs (torch, or their Lava ``fixed_pt`` export; for a deploy artifact, its STM files on
the hybrid runtime's Lava networks); every sequence's spike maps are counted by exact
fan-out. Plots of the profile for ``hybrid profile --plots`` and ``examples/``.
"""
from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from deploy.artifact.bridge import to_stm
from deploy.energy.profiler import Profile, lava_counts, stm_counts, video_rows
from hybrid.data.dataset import UNREADABLE
from hybrid.model import HybridModel
from hybrid.training.evaluate import views

log = logging.getLogger(__name__)
BRANCHES = (("mv", "stm_mv", "mv"), ("r", "stm_res", "residual"))  # modality, module, input


SPIKE_SOURCES = ("torch", "lava")


def _stm_inputs(model: HybridModel, batch: dict):
    """(modality, STM, x (B*S, C, H, W, T)) per STM branch of a batch of views
    (batch[key] (B, S, T, C, H, W), laid out for the STM by the bridge)."""
    for m, module, key in BRANCHES:
        if m in model.cfg.modalities:
            yield m, getattr(model, module).stm, to_stm(batch[key])


class LavaSpikes:
    """The model's STMs exported (``neuro.export``) and compiled for Lava ``fixed_pt``
    once, as ``hybrid run`` runs them (fused ConvLIF processes, sequences side by side);
    :meth:`counts` runs a batch of views through them (``with LavaSpikes(model)``)."""

    def __init__(self, model: HybridModel):
        import tempfile

        from neuro.export import export_stm
        from neuro.runner import LavaRunner

        self._stack = contextlib.ExitStack()
        try:
            tmp = Path(self._stack.enter_context(tempfile.TemporaryDirectory()))
            self.runners = {}
            for m, module, _ in BRANCHES:
                if m in model.cfg.modalities:
                    stm = getattr(model, module).stm
                    path = export_stm(stm, tmp / f"stm_{m}.h5", model.cfg.size)
                    self.runners[m] = self._stack.enter_context(LavaRunner(
                        path, steps=model.cfg.timesteps, record=True))
        except BaseException:
            self._stack.close()
            raise

    def counts(self, model: HybridModel, batch: dict) -> dict:
        """Per STM modality, the profiler's per-layer counts of ``batch``'s views."""
        return {m: lava_counts(self.runners[m], x.numpy(), prefix=f"stm.{m}")
                for m, _, x in _stm_inputs(model, batch)}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._stack.close()


def spiking_counts(model: HybridModel, batch: dict, quant: str | None = None) -> dict:
    """{modality: per-layer LayerCount} of a batch of views (torch STMs, in mode
    ``quant``, default the model's): batch[key] (B, S, T, C, H, W)."""
    return {m: stm_counts(stm, x, prefix=f"stm.{m}", mode=quant)
            for m, stm, x in _stm_inputs(model, batch)}


def _profile(dataset, count: Callable[[dict], dict], segments: int, crop: tuple[int, int],
             dense_cfg, n_crops: int, limit: int | None, progress: Callable | None) -> Profile:
    """The loop both sources share: per readable video, its views (``segments`` a clip,
    ``crop``, ``n_crops``) -> ``count(views)`` ({modality: LayerCounts}) -> its rows."""
    n = len(dataset) if limit is None else min(limit, len(dataset))
    prof = None
    it = range(n)
    with progress(it, "profiling") if progress else contextlib.nullcontext(it) as bar:
        for i in bar:
            try:
                sample = dataset[i]
            except UNREADABLE as exc:
                log.warning("skipping a video that cannot be read: %s", exc)
                continue
            b = views(sample, segments, crop, n_crops)
            if prof is None:
                prof = Profile(views=f"{sample['iframe'].shape[0]}x{n_crops}")
            with torch.no_grad():
                rows = video_rows(count(b), dense_cfg, b["iframe"].shape[0])
            prof.add(dataset.items[i][0] if hasattr(dataset, "items") else str(i), rows)
    if prof is None:
        raise ValueError("no readable video to profile")
    return prof


def profile_model(model: HybridModel, dataset, n_crops: int = 1, limit: int | None = None,
                  progress: Callable | None = None, spikes: str = "torch",
                  quant: str | None = None) -> Profile:
    """Profile of ``model`` over (the first ``limit``) videos of ``dataset``, each at all
    its views (the dataset's segments, a multiple of the model's, x ``n_crops``), with
    spikes from the torch STMs (in mode ``quant``, default the model's) or
    (``spikes="lava"``) from their Lava ``fixed_pt`` run. Unreadable videos are
    reported and skipped."""
    if spikes not in SPIKE_SOURCES:
        raise ValueError(f"spikes must be one of {SPIKE_SOURCES}, got {spikes!r}")
    if not model.cfg.spiking and {"mv", "r"} & set(model.cfg.modalities):
        raise ValueError(f"a model with temporal={model.cfg.temporal!r} has no STMs: the "
                         "profiler counts spiking ACs against dense MACs (`hybrid summary` "
                         "counts this model's MACs)")
    with contextlib.ExitStack() as stack:
        if spikes == "lava":
            count = functools.partial(stack.enter_context(LavaSpikes(model)).counts, model)
        else:
            count = functools.partial(spiking_counts, model, quant=quant)
        return _profile(dataset, count, model.cfg.segments, model.cfg.size, model.dense.cfg,
                        n_crops, limit, progress)


def profile_artifact(art, dataset, n_crops: int = 1, limit: int | None = None,
                     progress: Callable | None = None, spikes: str = "lava") -> Profile:
    """Profile of a deployed artifact (``deploy.artifact.folder.Artifact``): spikes from its
    STMs run on Lava ``fixed_pt`` by the hybrid runtime (``deploy.runtime.engine``), or
    (``spikes="torch"``) from the same STM files in torch fixed point (``qat``); the
    dense rows from its dense partition's configuration."""
    from deploy.runtime.engine import SAMPLE_KEYS, HybridRuntime
    from hybrid.ondevice.artifacts import check_readable

    if spikes not in SPIKE_SOURCES:
        raise ValueError(f"spikes must be one of {SPIKE_SOURCES}, got {spikes!r}")
    check_readable(art)
    spec, dense_cfg = art.inputs, art.dense_torch().cfg  # the verified bytes
    if spec.crop != spec.stm_size:
        raise ValueError(f"{art.path}: I-frame crop {spec.crop} and STM input "
                         f"{spec.stm_size} differ; the profiler cuts one crop for both")
    with contextlib.ExitStack() as stack:
        if spikes == "lava":
            rt = stack.enter_context(HybridRuntime(art, record=True))
            count = rt.spike_counts
        else:
            stms = {m: art.stm(m) for m in spec.stm_modalities}

            def count(b):
                return {m: stm_counts(stm, to_stm(b[SAMPLE_KEYS[m]]), prefix=f"stm.{m}",
                                      mode="qat") for m, stm in stms.items()}
        return _profile(dataset, count, spec.segments, spec.crop, dense_cfg, n_crops, limit,
                        progress)


COLOURS = {"spiking": "tab:orange", "bridge": "tab:green", "dense": "tab:blue"}


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path) -> None:
    """Staged and renamed: a full disk leaves the old PNG or none, never half of one."""
    from deploy.atomic import write_file

    write_file(path, lambda f: fig.savefig(f, format="png", dpi=110))
    pyplot().close(fig)


def plot_ops(rep: dict):
    """Figure: operations per layer (mean per video), log scale, MACs solid, ACs hatched,
    coloured by partition."""
    plt = pyplot()
    layers = rep["layers"]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.42 * len(layers) + 2), 4.2))
    for i, r in enumerate(layers):
        ax.bar(i, max(r["ops"], 1), color=COLOURS[r["partition"]],
               hatch="//" if r["kind"] == "ac" else None, edgecolor="black", linewidth=0.5)
    ax.set_yscale("log")
    ax.set_xticks(range(len(layers)), [r["name"] for r in layers], rotation=60, ha="right",
                  fontsize=8)
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=c, edgecolor="black", label=p) for p, c in COLOURS.items()]
    handles += [Patch(facecolor="white", edgecolor="black", label="MACs"),
                Patch(facecolor="white", edgecolor="black", hatch="//", label="ACs")]
    ax.legend(handles=handles, fontsize=8, ncol=2)
    ax.set(ylabel="operations per video", title=f"Operations per layer ({rep['videos']} "
           f"videos, views {rep['views']}): ACs vs MACs")
    ax.grid(axis="y", which="major", alpha=0.3)
    fig.tight_layout()
    return fig


def energy_by_preset(prof: Profile) -> dict:
    """{preset: {partition: mean energy per video (J)}} under every built-in preset."""
    from deploy.presets import ENERGY_PRESETS

    return {name: {part: v["energy_j"] for part, v in prof.report(p)["partitions"].items()}
            for name, p in ENERGY_PRESETS.items()}


def plot_energy(data: dict, videos: int, views: str):
    """Figure: stacked bars of the mean energy per video by partition under each preset
    (``data`` from :func:`energy_by_preset`)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    names = list(data)
    bottom = [0.0] * len(names)
    for part, colour in COLOURS.items():
        vals = [data[n][part] for n in names]
        ax.bar(names, vals, bottom=bottom, color=colour, label=part, edgecolor="black",
               linewidth=0.5)
        bottom = [b + v for b, v in zip(bottom, vals)]
    unit, scale = next((u, k) for u, k in (("J", 1), ("mJ", 1e-3), ("uJ", 1e-6), ("nJ", 1e-9))
                       if max(bottom) >= k or u == "nJ")
    for i, (n, total) in enumerate(zip(names, bottom)):
        share = data[n]["spiking"] / total if total else 0.0
        ax.text(i, total, f"{total / scale:.3g} {unit}\nspiking {100 * share:.0f} %",
                ha="center", va="bottom", fontsize=8)
    ax.set_ylim(0, 1.18 * max(bottom))
    ax.yaxis.set_major_formatter(lambda v, _: f"{v / scale:g}")
    ax.set(ylabel=f"energy per video ({unit})",
           title=f"Energy per video by partition ({videos} videos, views {views})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
