"""Published training and evaluation settings as values (``--preset NAME`` of ``hybrid
train``, ``eval`` and ``summary``). An option given beside a preset overrides that one
value; the CLI's own defaults are the demo's (``tiny``, small and fast on a CPU).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    source: str  # where the values come from; secondary sources are named per field
    variant: str  # dense-partition variant (a key of ann.config.VARIANTS)
    segments: int  # TSN segments per clip in training (one GOP each)
    size: int  # crop side in px (I-frame, MV and residual alike)
    video_size: tuple[int, int]  # (W, H) every frame is resized to before cropping
    optimizer: str  # "adam" (coupled L2 weight decay) or "adamw" (decoupled)
    lr: float  # initial learning rate
    eps: float  # Adam's epsilon
    weight_decay: float  # weight decay of the weights (not biases, norms, neuron params)
    lr_steps: tuple[int, ...]  # epochs at which the lr is multiplied by 0.1 (step decay)
    warmup_epochs: int  # linear warm-up epochs before the schedule
    epochs: int  # training epochs
    views: tuple[int, int]  # evaluation views: (segments, crops)

    def __post_init__(self):
        if self.optimizer not in ("adam", "adamw"):
            raise ValueError(f"{self.name}: optimizer {self.optimizer!r}")
        if self.views[0] % self.segments != 0:
            raise ValueError(f"{self.name}: {self.views[0]} view segments is not a multiple of "
                             f"{self.segments}")

    def values(self) -> dict:
        """Option name -> value, for every option the preset sets."""
        return {k: v for k, v in asdict(self).items() if k not in ("name", "source")}


PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        source="Das Biswas et al., 'Towards Scalable Modeling of Compressed Videos for "
               "Efficient Action Recognition', Implementation Details and Table 1 "
               "(UCF-101 method row: 8x1 views); values the text lost are CoViAR's "
               "(Wu et al. 2018, pytorch-coviar train.py / train_options.py) and "
               "TEAM-Net's (Wang et al. 2021, train.sh), which the paper says it follows",
        variant="base",           # paper: depth 12, 12 heads, 64 filters (appendix Sec. 3)
        segments=8,               # paper: 8 segments (Table 1 views 8x1; TEAM-Net: 8)
        size=224,                 # paper: crops resized to 224 (following TSN)
        video_size=(340, 256),    # paper: videos resized to 340x256 (TSN, CoViAR)
        optimizer="adam",         # paper: Adam with weight decay (CoViAR's coupled decay)
        lr=1e-3,                  # secondary: CoViAR's default lr (the paper's is lost)
        eps=1e-3,                 # paper / CoViAR: eps 0.001
        weight_decay=1e-4,        # paper / CoViAR: 1e-4
        lr_steps=(5, 10, 15),     # secondary: TEAM-Net's UCF-101 train.sh (x0.1 each)
        warmup_epochs=0,          # CoViAR and TEAM-Net: no warm-up
        epochs=30,                # secondary: TEAM-Net's UCF-101 train.sh
        views=(8, 1),             # paper: 8x1 views, centre crop
    ),
}
