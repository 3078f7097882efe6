"""Tensor-side augmentation of the protocol, run on the training device.

One pass = resize to `scale * base_size` (bilinear images, nearest masks), then with
probability `crop_prob` crop a margin drawn uniformly in 0..m px from both sides of each
axis and resize back, then flip vertically with probability `flip_prob`. The crop and the
flip of a whole pass are drawn at once on the CPU from a seeded generator (so runs are
reproducible and resumable on any device), copied to the device once per pass, and applied
per batch as one resampling with fixed shapes: no host sync per step, CUDA-graph friendly.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class PassDraw:
    """The random choices of one pass: the slice order and each slice's crop/flip transform."""

    order: torch.Tensor  # int64 (n,) slice indices in batch order (a dropped last batch excluded)
    params: torch.Tensor  # float32 (n, 3) per batch position: margin y, margin x (px), flip (0/1)
    batch_size: int

    def to(self, device: torch.device) -> "PassDraw":
        """The same draw on `device` (two copies per pass, none per batch)."""
        return PassDraw(self.order.to(device), self.params.to(device), self.batch_size)

    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(indices (B,), params (B, 3)) per batch, as views."""
        for start in range(0, len(self.order), self.batch_size):
            stop = start + self.batch_size
            yield self.order[start:stop], self.params[start:stop]

    def __len__(self) -> int:
        return -(-len(self.order) // self.batch_size)


def draw_pass(
    generator: torch.Generator,
    n_items: int,
    batch_size: int,
    size_px: int,
    margin_px: int,
    crop_prob: float,
    flip_prob: float,
    drop_last: bool = True,
) -> PassDraw:
    """Shuffle `n_items` into batches and draw every slice's crop margins and flip for one pass."""
    order = torch.randperm(n_items, generator=generator)
    crop = torch.rand(n_items, generator=generator) < crop_prob
    margins = torch.randint(0, margin_px + 1, (n_items, 2), generator=generator) * crop.unsqueeze(1)
    flip = torch.rand(n_items, generator=generator) < flip_prob
    used = n_items - n_items % batch_size if drop_last else n_items
    return PassDraw(order[:used], crop_flip_params(margins, flip)[:used], batch_size)


def crop_flip_params(margins_px: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Per-slice transform parameters (N, 3) float32: margin y, margin x (px), flip (0/1)."""
    return torch.cat([margins_px.to(torch.float32), flip.to(torch.float32).unsqueeze(1)], dim=1)


def crop_flip_grid(params: torch.Tensor, size_px: int) -> torch.Tensor:
    """Sampling grid (B, S, S, 2) that crops each margin from both sides, resizes back and flips rows.

    Output pixel d reads crop coordinate (d + 0.5) * (S - 2m) / S - 0.5, clamped to the crop
    (a bilinear resize of the crop, edges replicated), shifted by the margin m; a flipped
    slice reads its rows in reverse order.
    """
    margins = params[:, :2]  # (B, 2): y, x
    kept = size_px - 2 * margins
    centres = torch.arange(size_px, device=params.device, dtype=torch.float32) + 0.5
    src = centres * (kept / size_px).unsqueeze(-1) - 0.5  # (B, 2, S) in crop pixels
    src = torch.minimum(src.clamp(min=0.0), (kept - 1).unsqueeze(-1)) + margins.unsqueeze(-1)
    rows = torch.where(params[:, 2:3] > 0.5, src[:, 0].flip(-1), src[:, 0])
    norm_rows, norm_cols = ((2 * rows + 1) / size_px - 1), ((2 * src[:, 1] + 1) / size_px - 1)
    batch = params.shape[0]
    return torch.stack(
        [norm_cols.unsqueeze(1).expand(batch, size_px, size_px), norm_rows.unsqueeze(2).expand(batch, size_px, size_px)],
        dim=-1,
    )


def augment_batch(
    images_u8: torch.Tensor,
    masks: torch.Tensor,
    params: torch.Tensor,
    size_px: int,
    mean: float | Sequence[float],
    std: float | Sequence[float],
    channels: int = 3,
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 (B,H,W) slices and bool masks -> normalised float (B,C,S,S) inputs and int64 (B,S,S) targets.

    `mean` / `std`: one value for every channel (the fold's statistics) or one per channel (ImageNet's).
    """
    x = images_u8.unsqueeze(1).to(torch.float32)
    y = masks.unsqueeze(1).to(torch.float32)
    if tuple(x.shape[-2:]) != (size_px, size_px):
        x = F.interpolate(x, size=(size_px, size_px), mode="bilinear", align_corners=False)
        y = F.interpolate(y, size=(size_px, size_px), mode="nearest")
    grid = crop_flip_grid(params, size_px)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    y = F.grid_sample(y, grid, mode="nearest", padding_mode="border", align_corners=False)
    if isinstance(mean, (int, float)) and isinstance(std, (int, float)):
        x = (x * (1.0 / 255.0) - mean) * (1.0 / std)
        return x.expand(-1, channels, -1, -1), y.squeeze(1).to(torch.int64)
    m, sd = (torch.as_tensor(v, dtype=torch.float32, device=x.device).reshape(1, -1, 1, 1) for v in (mean, std))
    x = (x.expand(-1, channels, -1, -1) * (1.0 / 255.0) - m) * (1.0 / sd)
    return x, y.squeeze(1).to(torch.int64)
