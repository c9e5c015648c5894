"""The hybrid layer's side of ``deploy``: a training checkpoint -> an artifact folder,
and a run's INPUT (one video, a dataset folder or a ``hybrid prepare`` cache) -> the
samples the artifact's input spec asks for. ``deploy`` never imports ``hybrid``; this
module hands it the built pieces."""
from __future__ import annotations

import dataclasses
from pathlib import Path

from deploy.artifact.folder import Artifact, check_replaceable, sha256_file, write_artifact
from deploy.artifact.inputs import InputSpec
from hybrid.data.dataset import COVIAR_NORM, UNREADABLE, CompressedVideoDataset
from hybrid.data.transforms import Normalization
from hybrid.model import HybridModel
from hybrid.training.evaluate import load_model
from hybrid.video.reader import P_PER_GOP
from hybrid.video.transcode import DEFAULT_SIZE

BRANCHES = {"mv": "stm_mv", "r": "stm_res"}


class NotDeployable(ValueError):
    """A checkpoint whose model has nothing that runs on Lava (the message says why)."""


def check_deployable(model: HybridModel, name: str | Path) -> None:
    """Raise :class:`NotDeployable` for the ablations without a spiking partition: a
    ConvLSTM is dense (no Lava form), and without STM every layer is dense."""
    t = model.cfg.temporal
    if not model.cfg.spiking and set(model.cfg.modalities) & set(BRANCHES):
        why = {"lstm": "its MV / residual modules are dense ConvLSTMs, which have no Lava "
                       "(spiking) form",
               "none": "without STM its P-frames go straight to the dense patch "
                       "embeddings: every layer is dense"}[t]
        raise NotDeployable(f"{name}: cannot deploy a model with temporal={t!r}: {why}. "
                            "Run it with `hybrid eval` / `hybrid predict` on CPU/GPU.")


def input_spec(model: HybridModel, norm: Normalization = COVIAR_NORM,
               video_size: tuple[int, int] | None = None) -> InputSpec:
    """The deployed model's input spec; ``video_size``: (W, H) its training videos were
    read at (the checkpoint's record; None where it has none)."""
    cfg = model.cfg
    stms = {m: getattr(model, BRANCHES[m]).stm for m in cfg.modalities if m in BRANCHES}
    return InputSpec(
        modalities=cfg.modalities, segments=cfg.segments, timesteps=cfg.timesteps,
        crop=cfg.size, stm_size=cfg.stm_input_size(), normalization=dataclasses.asdict(norm),
        fixed_point={m: {"frac_bits": s.cfg.input_frac_bits, "bits": s.cfg.input_bits}
                     for m, s in stms.items()},
        video_size=video_size)


def deploy_checkpoint(checkpoint: str | Path, out: str | Path, overwrite: bool = False,
                      chip: str = "loihi2", nir: bool = False) -> Artifact:
    """Cut the trained model of ``checkpoint`` at its partition boundary and write the
    artifact folder ``out``, with the STMs' mapping onto ``chip`` (a
    ``deploy.presets.CHIPS`` name) and, with ``nir``, their NIR export (CheckpointError
    for a bad checkpoint, NotDeployable for a model without a spiking partition,
    FileExistsError; ArtifactError when ``overwrite`` would replace anything but an
    earlier artifact, checked before the checkpoint is read)."""
    from deploy.presets import CHIPS

    if overwrite:
        check_replaceable(out)
    model, classes, ckpt = load_model(checkpoint)
    check_deployable(model, checkpoint)
    size = ckpt.get("video_size")
    spec = input_spec(model, video_size=(int(size[0]), int(size[1])) if size else None)
    stms = {m: getattr(model, BRANCHES[m]).stm for m in spec.stm_modalities}
    return write_artifact(out, stms, model.dense, spec, classes,
                          model_config=model.cfg.to_dict(),
                          source_sha256=sha256_file(checkpoint), overwrite=overwrite,
                          chip=CHIPS[chip], nir=nir)


def reading_size(art: Artifact, given: tuple[int, int] | None
                 ) -> tuple[tuple[int, int], str | None]:
    """(W, H) to read videos at for ``art``: ``given`` (``--video-size``), else the size
    its model was trained at (the artifact's record), else 340x256 with a one-line
    warning naming the assumed size (an artifact that records none); (size, warning)."""
    if given is not None:
        return tuple(given), None
    if art.inputs.video_size is not None:
        return art.inputs.video_size, None
    w, h = DEFAULT_SIZE
    return DEFAULT_SIZE, (f"{art.path} records no training video size (an older artifact): "
                          f"reading videos at {w}x{h}; give --video-size to choose")


def check_readable(art: Artifact) -> None:
    """ValueError naming the spec unless this toolkit's reader can feed the artifact: a
    segment is the P-frames of one GOP (:data:`hybrid.video.reader.P_PER_GOP`)."""
    if art.inputs.timesteps != P_PER_GOP:
        raise ValueError(f"{art.role_path('spec')}: inputs.timesteps {art.inputs.timesteps}, "
                         f"the video reader gives {P_PER_GOP} P-frames a segment (GOP)")


def open_input(art: Artifact, source: str | Path, fold: int = 1,
               video_size: tuple[int, int] | None = None):
    """(dataset, names, labels or None) for ``source``: one video (any format FFmpeg
    reads; transcoded in process when not MPEG-4 GOP 12 at ``video_size``, W x H, as in
    training), or the test split of a dataset folder (videos at ``video_size``) or cache.
    ``video_size`` None: the artifact's (:func:`reading_size`; the caller shows its
    warning). Raises ValueError / SplitError with a clear message."""
    video_size = reading_size(art, video_size)[0]
    from hybrid.data.sources import load_split

    check_readable(art)
    spec = art.inputs
    if spec.crop != spec.stm_size or spec.crop[0] != spec.crop[1]:
        raise ValueError(f"{art.path}: crops {spec.crop} (I-frame) and {spec.stm_size} (STM) "
                         "differ or are not square; the dataset reader makes one square crop")
    kw = {"segments": spec.segments, "train": False, "crop": spec.crop[0],
          "norm": Normalization(**{k: v for k, v in spec.normalization.items()
                                   if k != "quantize"}),  # an artifact of before the codes
          "video_size": video_size}
    source = Path(source)
    if source.is_file() and source.suffix not in (".h5", ".hdf5"):
        ds = CompressedVideoDataset.one_video(source, **kw)
        return ds, [str(source)], None
    items, classes = load_split(source, "test", fold)
    if classes != art.classes:
        raise ValueError(f"{source} has classes {classes[:4]}... but {art.path} was deployed "
                         f"with {art.classes[:4]}...")
    ds = CompressedVideoDataset(source, items, **kw)
    return ds, [rel for rel, _ in items], [lab for _, lab in items]


SKIP = UNREADABLE  # what a run reports and skips (a video that cannot be read)
