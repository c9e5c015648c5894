"""Options shared by ``hybrid train``, ``eval`` and ``summary``: ``--preset``, the model's
geometry, the dense ablation switches, and the one mapping from them to a
``HybridConfig`` (so ``summary`` counts the model ``train`` builds).

A preset (``hybrid.training.recipes.PRESETS``) fills in every option left at its default; an
option given on the command line overrides that one value. ``--help`` shows each
option's demo default and the preset's value.
"""
from __future__ import annotations

import click
from click.core import ParameterSource

from hybrid.cli.types import VIDEO_SIZE, Size
from hybrid.training.recipes import PRESETS

PAPER = PRESETS["paper"]


def paper(value) -> str:
    """' [paper: VALUE]' for an option's help text."""
    return f" [paper: {value}]"


def preset_option(f):
    return click.option(
        "--preset", type=click.Choice(sorted(PRESETS)), default=None,
        help="A published setting for every option not given: 'paper' is the paper's "
             "UCF-101 setting (hybrid/training/recipes.py names each value's source); "
             "'[paper: X]' in an option's help is its value.")(f)


def apply_preset(ctx: click.Context, params: dict) -> dict:
    """``params`` with every option the preset sets and the user left at its default
    replaced by the preset's value."""
    name = params.get("preset")
    if name is None:
        return params
    out = dict(params)
    for key, value in PRESETS[name].values().items():
        if key in out and ctx.get_parameter_source(key) == ParameterSource.DEFAULT:
            out[key] = value
    return out


def model_options(f):
    """The model options of ``train`` and ``summary`` (same names, same defaults)."""
    decorators = [
        click.option("--variant", type=click.Choice(["tiny", "base", "large"]), default="tiny",
                     show_default=True, help="Dense-partition variant." + paper(PAPER.variant)),
        click.option("--segments", type=click.IntRange(1), default=3, show_default=True,
                     help="TSN segments (GOPs) per clip." + paper(PAPER.segments)),
        click.option("--size", type=Size(minimum=16, square=True), default=56,
                     show_default=True,
                     help="Crop side N in pixels, square: N or NxN (I-frame, MV and "
                          "residual alike)."
                          + paper(PAPER.size)),
        click.option("--modalities", default="i,mv,r", show_default=True,
                     help="Comma-separated subset of i,mv,r (ablations, e.g. 'i')."),
        click.option("--encoder", type=click.Choice(["unified", "separate", "cross"]),
                     default="unified", show_default=True,
                     help="Transformer: one over all modalities, one per modality, or "
                          "cross-attention between modalities (ablations)."),
        click.option("--pooling", type=click.Choice(["gap", "cls"]), default="gap",
                     show_default=True,
                     help="Global average pooling or a learned class token (ablation)."),
        click.option("--no-mixer", is_flag=True,
                     help="Ablation: a 1x1 conv per modality instead of the Multi-Modal Mixer."),
        click.option("--no-skips", is_flag=True, help="Ablation: no skip conv in the mixer."),
        click.option("--no-rrdb", is_flag=True, help="Ablation: no RRDB before pooling."),
        click.option("--temporal", type=click.Choice(["stm", "common", "lstm", "none"]),
                     default="stm", show_default=True,
                     help="Ablation of the MV / residual module: an STM each, one common "
                          "STM (own first layer per modality, shared spiking layers), a "
                          "dense ConvLSTM each (not deployable to Lava), or none (the last "
                          "accumulated P-frame goes to the patch embedding)."),
        click.option("--fixed-lif", is_flag=True,
                     help="Ablation: STM thresholds and leaks fixed at their initial "
                          "values, not learned."),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def parse_modalities(text: str) -> tuple[str, ...]:
    mods = tuple(m.strip() for m in text.split(",") if m.strip())
    if not mods or set(mods) - {"i", "mv", "r"}:
        raise click.BadParameter(f"must be a subset of i,mv,r, got {text!r}",
                                 param_hint="--modalities")
    return mods


def given(ctx: click.Context, params: dict) -> set[str]:
    """The options of ``params`` the user set: on the command line, or by its --preset."""
    out = {k for k in params if ctx.get_parameter_source(k) == ParameterSource.COMMANDLINE}
    return out | (set(PRESETS[params["preset"]].values()) if params.get("preset") else set())


def given_conflicts(ctx: click.Context, p: dict, cfg) -> list[str]:
    """Each model option given on the command line whose value differs from the model
    config ``cfg`` (a ``HybridConfig``: an ``--init`` checkpoint's, which wins), as
    "--variant base (the checkpoint's: tiny)"."""
    d = cfg.dense
    have = {"variant": cfg.variant, "segments": cfg.segments, "size": cfg.size[0],
            "modalities": ",".join(cfg.modalities), "encoder": d.get("encoder", "unified"),
            "pooling": d.get("pooling", "gap"), "no_mixer": not d.get("mixer", True),
            "no_skips": not d.get("skips", True), "no_rrdb": not d.get("rrdb", True),
            "temporal": cfg.temporal, "fixed_lif": cfg.stm.get("learn_neuron", True) is False}
    out = []
    for key, value in have.items():
        if ctx.get_parameter_source(key) != ParameterSource.COMMANDLINE:
            continue
        asked = p[key]
        if key == "modalities":  # the same set, in any order, is the same model
            mods = parse_modalities(asked)
            asked = ",".join(m for m in cfg.modalities if m in mods) if set(mods) == set(
                cfg.modalities) else ",".join(mods)
        if asked != value:
            flag = f"--{key.replace('_', '-')}"
            out.append(f"{flag} (the checkpoint has not)" if asked is True else
                       f"{flag} {asked} (the checkpoint's: {value})")
    return out


def model_config(p: dict, num_classes: int, quant: str = "float"):
    """The ``HybridConfig`` of the (preset-applied) options ``p``: the one mapping from
    command-line options to a model, used by ``train`` and ``summary``."""
    from hybrid.model import STM_DEFAULTS, HybridConfig

    dense = {"encoder": p["encoder"], "pooling": p["pooling"], "mixer": not p["no_mixer"],
             "skips": not p["no_skips"], "rrdb": not p["no_rrdb"]}
    defaults = {"encoder": "unified", "pooling": "gap", "mixer": True, "skips": True,
                "rrdb": True}
    if p["fixed_lif"] and p["temporal"] not in ("stm", "common"):
        raise click.UsageError(f"--fixed-lif fixes STM neurons; --temporal {p['temporal']} "
                               "has no STM")
    stm = {**STM_DEFAULTS, **({"learn_neuron": False} if p["fixed_lif"] else {})}
    try:
        cfg = HybridConfig(
            variant=p["variant"], num_classes=num_classes, segments=p["segments"],
            size=(p["size"], p["size"]), quant=quant,
            modalities=parse_modalities(p["modalities"]), temporal=p["temporal"], stm=stm,
            dense={k: v for k, v in dense.items() if v != defaults[k]})
        cfg.dense_config()  # DenseConfig checks the combination (e.g. cross needs 2 inputs)
        return cfg
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc


def model_video_size_option(f):
    """``--video-size`` of the commands that read videos for a trained model (``run``,
    ``chip``, ``profile``): default None, the size the model was trained at."""
    return click.option(
        "--video-size", type=VIDEO_SIZE, default=None,
        help="WIDTHxHEIGHT videos (one, or a dataset folder's) are read at [default: the "
             "size the model was trained at, as the artifact or checkpoint records it; "
             "340x256 where it records none, with a warning for an artifact]; a cache "
             "keeps the size it was prepared at.")(f)
