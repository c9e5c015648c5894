"""The pretext tasks' labels, computed from the unlabeled clips themselves (IMRNet, Yu et
al., ICLR 2021, "Self-Supervised Learning of Compressed Video Representations";
its poster is ``../shared/paper/imrnet-poster.txt``). No class label is read here.

PMSP (pyramidal motion statistics prediction). A clip's motion vectors, mv (B, S, T, 2,
H, W) (S segments = GOPs, T P-frames each, in time order), give a motion energy per
P-frame and pixel, ``|mv|**2`` (the "zeroth-order motion statistics": the magnitude of
the motion field as the model receives it; with accumulated P-frames, the displacement
back to the GOP's I-frame). A pyramid level ``(grid, chunks)`` cuts the S*T P-frames
into ``chunks`` consecutive temporal chunks and each frame into ``grid x grid`` cells
(item i of n in part ``floor(i * k / n)`` of k, so any size works); its label per chunk
is the cell whose summed energy is highest, numbered row-major. The poster's examples
are ``([2x2], 5)`` (five answers in 1..4) and ``([4x4], 1)`` (one answer in 1..16); we
number from 0. A chunk whose cells all hold the same energy (no motion) has no answer:
label :data:`IGNORE`, left out of the loss and the accuracy.

CTP (correspondence type prediction): the P-frame streams (MV and residual together) are
kept with their I-frames or transformed, and the model names which:

- ``aligned``: unchanged;
- ``shifted``: each segment's P-frames are those of another segment of the same clip
  (the segments rolled by 1..S-1 places), so they start from another I-frame;
- ``swapped``: the P-frames of another clip of the batch.

IMRNet's exact list of transformations could not be recovered from the text available
here (its poster says only "different types of transformations applied on P-frame"); the
two above are the temporal misalignments its abstract names ("correspondence types
between I-frames and P-frames after applying temporal transformations"). The binary
variant (``ctp-binary``) asks only aligned or not (half aligned, half transformed, the
transformed half split evenly between the two transformations).
"""
from __future__ import annotations

import torch
from torch import nn

#: Target of a chunk without an answer: cross_entropy's default ignore_index.
IGNORE = -100
TASKS = ("pmsp", "ctp", "ctp-binary")
CTP_TYPES = ("aligned", "shifted", "swapped")
DEFAULT_LEVELS = ((2, 3), (4, 1))  # (grid, chunks): 2x2 per segment at 3 segments, 4x4 whole


def _membership(n: int, k: int) -> torch.Tensor:
    """(n, k) one-hot: item i of n falls in part floor(i * k / n) of k."""
    if not (1 <= k <= n):
        raise ValueError(f"cannot cut {n} items into {k} parts")
    return nn.functional.one_hot(torch.arange(n) * k // n, k).double()


def motion_energy(mv: torch.Tensor) -> torch.Tensor:
    """mv (B, S, T, 2, H, W) -> (B, S*T, H, W) squared motion magnitude, frames in time order."""
    if not (mv.dim() == 6 and mv.shape[3] == 2):
        raise ValueError(f"mv must be (B, S, T, 2, H, W), got {tuple(mv.shape)}")
    return mv.float().pow(2).sum(3).flatten(1, 2)


def cell_energy(energy: torch.Tensor, grid: int, chunks: int) -> torch.Tensor:
    """energy (B, L, H, W) -> (B, chunks, grid*grid): summed per temporal chunk and cell."""
    B, L, H, W = energy.shape
    rows, cols = _membership(H, grid), _membership(W, grid)  # (H, g), (W, g)
    t = _membership(L, chunks)  # (L, c)
    e = torch.einsum("blhw,hi,wj,lc->bcij", energy.double(), rows, cols, t)
    return e.reshape(B, chunks, grid * grid)


def pmsp_targets(mv: torch.Tensor, levels) -> list[torch.Tensor]:
    """Per level (grid, chunks): (B, chunks) long, the highest-energy cell per chunk
    (row-major), or :data:`IGNORE` where all cells hold the same energy."""
    energy = motion_energy(mv)
    out = []
    for grid, chunks in levels:
        e = cell_energy(energy, grid, chunks)  # (B, c, g*g)
        top = e.argmax(-1)
        flat = e.amax(-1) - e.amin(-1) <= 1e-9 * e.amax(-1).clamp_min(1e-30)
        out.append(torch.where(flat, torch.full_like(top, IGNORE), top))
    return out


def ctp_classes(task: str) -> int:
    return 2 if task == "ctp-binary" else len(CTP_TYPES)


def draw_ctp(batch_size: int, task: str, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """(transform (B,) indices into CTP_TYPES, label (B,)) for ``task`` 'ctp' (label =
    the type) or 'ctp-binary' (label 1 = transformed; half the clips)."""
    if task == "ctp":
        kind = torch.randint(len(CTP_TYPES), (batch_size,), generator=gen)
        return kind, kind.clone()
    if task != "ctp-binary":
        raise ValueError(f"unknown CTP task {task!r}")
    moved = torch.rand(batch_size, generator=gen) < 0.5
    kind = torch.where(moved, 1 + torch.randint(2, (batch_size,), generator=gen), 0)
    return kind, moved.long()


def apply_ctp(mv: torch.Tensor, residual: torch.Tensor, kind: torch.Tensor,
              gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The P-frame streams (B, S, T, C, H, W) transformed per clip by ``kind`` (indices
    into CTP_TYPES). Returns (mv, residual, kind actually applied): a batch of one clip
    has no other clip to swap with, and such a clip is shifted instead."""
    B, S = mv.shape[:2]
    if S < 2:
        raise ValueError(f"CTP's shifted type needs at least 2 segments per clip, got {S}")
    kind = kind.clone()
    if B == 1:
        kind[kind == 2] = 1
    src_clip = torch.arange(B)
    src_clip = torch.where(kind == 2, (src_clip + 1) % B, src_clip)  # swapped: next clip
    shift = torch.where(kind == 1, torch.randint(1, S, (B,), generator=gen), 0)
    seg = (torch.arange(S)[None, :] + shift[:, None]) % S  # (B, S) source segment
    idx = src_clip[:, None].expand(B, S)
    return mv[idx, seg], residual[idx, seg], kind
