"""``hybrid stm verify``: the quantised torch STM against Lava's fixed-point simulation."""
from __future__ import annotations

import json

import click

from hybrid.cli.types import FiniteFloatRange, Size


def _read_extract(path: str, channels: int, steps: int, sequences: int):
    """(N, C, H, W, T) float32 from a `hybrid extract` file: per GOP, 'mv'
    (G, 11, H, W, 2) or 'residual' (G, 11, H, W, 3); format 'hybrid-compressed-video' v1."""
    import h5py
    import numpy as np

    from hybrid.video.extract import FormatError, check_format

    key = "mv" if channels == 2 else "residual"
    try:
        with h5py.File(path, "r") as f:
            try:
                check_format(f, path)
            except FormatError as e:
                raise click.ClickException(f"{e} (expected a `hybrid extract` file)") from e
            if key not in f:
                raise click.ClickException(f"{path}: no '{key}' dataset")
            a = f[key][:sequences]
    except OSError as e:
        raise click.ClickException(f"{path}: not a readable HDF5 file ({e})") from e
    if a.ndim != 5 or a.shape[-1] != channels:
        raise click.ClickException(f"{path}: '{key}' has shape {a.shape}, expected "
                                   f"(G, T, H, W, {channels})")
    if steps > a.shape[1]:
        raise click.BadParameter(f"--steps {steps} exceeds the file's {a.shape[1]} P-frames")
    return np.ascontiguousarray(a[:, :steps].transpose(0, 4, 2, 3, 1), dtype=np.float32)


def _load_stm(path: str, channels: int):
    """The STM of a file: a neuro.export .h5, a hybrid training checkpoint (its MV STM
    for 2 channels, its residual STM for 3) or a torch file {config, state_dict}."""
    import torch

    from hybrid.training.checkpoint import FORMAT, CheckpointError
    from hybrid.training.evaluate import load_model
    from neuro.export import StmFileError, load_stm
    from neuro.stm import STM, STMConfig

    if path.endswith((".h5", ".hdf5")):
        try:
            return load_stm(path)
        except StmFileError as e:
            raise click.ClickException(str(e)) from e
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001  any unreadable checkpoint is a user error
        # one line: torch's own text runs to many and invites weights_only=False
        raise click.ClickException(f"{path}: not an STM checkpoint (torch cannot load it "
                                   f"as tensors: {type(e).__name__})") from None
    if isinstance(ck, dict) and ck.get("format") == FORMAT:
        try:
            model, _, _ = load_model(path)
        except CheckpointError as e:
            raise click.ClickException(str(e)) from e
        branch = model.stm_mv if channels == 2 else model.stm_res
        if not hasattr(branch, "stm"):
            kind = "MV" if channels == 2 else "residual"
            raise click.ClickException(f"{path}: this model has no {kind} STM (modalities "
                                       f"{model.cfg.modalities})")
        return branch.stm
    try:
        model = STM(STMConfig(**ck["config"]))
        model.load_state_dict(ck["state_dict"])
    except Exception as e:  # noqa: BLE001
        raise click.ClickException(f"{path}: not an STM checkpoint ({e})") from e
    return model


@click.group()
def stm() -> None:
    """The Spiking Temporal Modulator (spiking partition)."""


@stm.command()
@click.option("--checkpoint", type=click.Path(exists=True, dir_okay=False),
              help="An STM to check: an export from neuro.export (.h5), a `hybrid train` "
                   "checkpoint (its MV or residual STM, by --channels) or a torch file "
                   "holding {'config': STMConfig fields, 'state_dict': ...}. "
                   "Default: random weights.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed for the random STM and the random inputs.")
@click.option("--size", default="16x16", show_default=True, type=Size(order="hw"),
              help="Input size WIDTHxHEIGHT (N: NxN).")
@click.option("--steps", type=click.IntRange(1, 1000), default=11, show_default=True,
              help="Timesteps (P-frames) per sequence.")
@click.option("--channels", type=click.Choice(["2", "3"]), default="2", show_default=True,
              help="Input channels: 2 (MV) or 3 (residual).")
@click.option("--sequences", type=click.IntRange(1, 10000), default=4, show_default=True,
              help="Random sparse MV-like sequences streamed through one compiled network.")
@click.option("--input", "input_path", type=click.Path(exists=True, dir_okay=False),
              help="Use the GOPs of a `hybrid extract` file (its 'mv' for 2 channels, "
                   "'residual' for 3) instead of random inputs; --size is then the file's.")
@click.option("--input-scale", type=FiniteFloatRange(), default=1.0, show_default=True,
              help="Multiply --input values by this before the STM (MV are in pixels).")
@click.option("--conv", type=click.Choice(["fused", "lava", "im2col"]), default="fused",
              show_default=True,
              help="Layer processes: one ConvLIF per layer (fused), or Lava's Conv Process "
                   "with Lava's own model (lava, the reference) or neuro's im2col one.")
@click.option("--tiles", type=click.IntRange(1, 256), default=8, show_default=True,
              help="Sequences simulated side by side in one compiled network.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
def verify(checkpoint, seed, size, steps, channels, sequences, input_path, input_scale,
           conv, tiles, as_json) -> None:
    """Run the same inputs through the quantised torch STM and Lava fixed_pt.

    Exit status 0 only when spikes (every layer, neuron, step) and the output
    membrane potentials agree exactly.
    """
    import torch

    import neuro  # noqa: F401  (applies the lava compatibility layer first)
    from neuro import verify as ver
    from neuro.stm import STM, STMConfig

    torch.manual_seed(seed)
    model = STM(STMConfig(in_channels=int(channels))) if checkpoint is None \
        else _load_stm(checkpoint, int(channels))
    if model.cfg.in_channels != int(channels) and checkpoint is not None:
        click.echo(f"note: the checkpoint's STM takes {model.cfg.in_channels} channels",
                   err=True)
    if input_path is not None:
        x = _read_extract(input_path, model.cfg.in_channels, steps, sequences) * input_scale
    else:
        x = ver.random_mv(sequences, model.cfg.in_channels, *size, steps, seed)
    batches = min(len(x), max(2, len(x) // 4))
    if as_json:
        rep = ver.verify(model, x, batches=batches, conv=conv, tiles=tiles)
    else:
        with click.progressbar(length=len(x), label="torch vs Lava fixed_pt") as bar:
            rep = ver.verify(model, x, batches=batches, progress=bar.update,
                             conv=conv, tiles=tiles)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
    else:
        for layer in rep["layers"]:
            mark = "==" if layer["spikes_equal"] else "!="
            click.echo(f"layer {layer['layer']}: spikes torch {layer['spikes_torch']} {mark} "
                       f"lava {layer['spikes_lava']}")
        click.echo(f"max |v| difference: {rep['max_v_diff']:g} (float units)")
        click.echo(f"torch {rep['torch_s']:.3f} s, Lava compile {rep['lava_compile_s']:.2f} s, "
                   f"Lava {rep['lava_per_sequence_s']:.3f} s per sequence")
        click.echo("EXACT" if rep["exact"] else "MISMATCH")
    if not rep["exact"]:
        raise SystemExit(1)
