"""The input spec of a deployed model: what the host must feed the hybrid chip.

Written into every artifact (``spec.json``) so that the runtime, or any other host code,
prepares inputs exactly as in training: which modalities, how many TSN segments of how
many P-frames, the crop sizes, the normalisation (CoViAR's, its fields as given by the
training side) and each STM's fixed-point input quantisation.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

STM_CHANNELS = {"mv": 2, "r": 3}  # input channels of each STM branch


@dataclass(frozen=True)
class InputSpec:
    modalities: tuple[str, ...]  # subset of ("i", "mv", "r"), in that order
    segments: int  # S: TSN segments (GOPs) per video
    timesteps: int  # T: P-frames per segment = STM timesteps
    crop: tuple[int, int]  # (H, W) of the I-frame crop fed to the dense partition
    stm_size: tuple[int, int]  # (H, W) of the MV / residual crops fed to the STMs
    normalization: dict = field(default_factory=dict)  # the training side's normalisation
    # per STM modality: {"frac_bits", "bits"}: graded messages round(x * 2**frac_bits),
    # clamped to signed ``bits``
    fixed_point: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "modalities", tuple(self.modalities))
        object.__setattr__(self, "crop", tuple(int(v) for v in self.crop))
        object.__setattr__(self, "stm_size", tuple(int(v) for v in self.stm_size))
        assert self.modalities and set(self.modalities) <= {"i", "mv", "r"}, (
            f"input spec: modalities {self.modalities} must be a non-empty subset of i, mv, r")
        assert self.segments >= 1 and self.timesteps >= 1, (
            f"input spec: segments {self.segments} and timesteps {self.timesteps} must be >= 1")
        assert len(self.crop) == 2 and len(self.stm_size) == 2, "input spec: sizes are (H, W)"
        stms = {m for m in self.modalities if m in STM_CHANNELS}
        assert set(self.fixed_point) == stms, (
            f"input spec: fixed_point has {sorted(self.fixed_point)}, STMs {sorted(stms)}")

    @property
    def stm_modalities(self) -> tuple[str, ...]:
        return tuple(m for m in self.modalities if m in STM_CHANNELS)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Per sample key: the (S, ...) shape one video's input must have."""
        S, T = self.segments, self.timesteps
        return {"iframe": (S, 3, *self.crop), "mv": (S, T, 2, *self.stm_size),
                "residual": (S, T, 3, *self.stm_size)}

    def check(self, sample: dict, name: str) -> None:
        """Raise ValueError naming ``name`` when ``sample`` does not fit this spec."""
        keys = {"i": "iframe", "mv": "mv", "r": "residual"}
        for m in self.modalities:
            want, got = self.shapes()[keys[m]], tuple(sample[keys[m]].shape)
            if got != want:
                raise ValueError(f"{name}: input {keys[m]!r} has shape {got}, the deployed "
                                 f"model needs {want}")

    def to_dict(self) -> dict:
        d = asdict(self)
        return {**d, "modalities": list(self.modalities), "crop": list(self.crop),
                "stm_size": list(self.stm_size)}

    @classmethod
    def from_dict(cls, d: dict) -> InputSpec:
        return cls(**d)
