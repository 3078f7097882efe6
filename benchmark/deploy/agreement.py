"""Does a deployed graph compute what eager PyTorch computes? Logits compared on one CT slice.

The slice is the first real CT100 slice, `<data root>/COVID-19-CT100/tr_im/tr_im_0000.png`, where the data
root has it; else a synthetic one (a smooth, seeded CT-like image). It is replicated to 3 channels and
standardised (zero mean, unit variance: a stand-in for a fold's statistics), resized to the graph's side.
Figures: max and mean |Δ| of the logits, the largest |logit| of the reference (the scale |Δ| is read
against: a randomly initialised network can have logits of 1e3), and the share of pixels whose argmax
(the predicted class) agrees.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from torch import nn

from ..contract import main_output

REAL_SLICE = Path("COVID-19-CT100") / "tr_im" / "tr_im_0000.png"
SYNTHETIC_SEED = 0


def synthetic_slice(side: int, seed: int = SYNTHETIC_SEED) -> np.ndarray:
    """A seeded CT-like grey image: dark background, a bright smooth body with darker smooth lungs and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:side, :side] / side
    body = ((yy - 0.5) / 0.42) ** 2 + ((xx - 0.5) / 0.46) ** 2 < 1
    lungs = sum(((yy - 0.5) / 0.3) ** 2 + ((xx - centre) / 0.13) ** 2 < 1 for centre in (0.32, 0.68)) > 0
    texture = ndimage.gaussian_filter(rng.standard_normal((side, side)), sigma=max(side / 64, 1.0))
    image = np.where(body, 200.0, 0.0) - np.where(lungs, 135.0, 0.0) + 40 * texture / (texture.std() + 1e-9)
    return np.clip(image, 0, 255).astype(np.uint8)


def reference_slice(side: int, data_root: str | Path | None) -> tuple[np.ndarray, str]:
    """(1, 3, side, side) float32 input and where it came from (the PNG's path, or 'synthetic (...)')."""
    path = Path(data_root) / REAL_SLICE if data_root is not None else None
    if path is not None and path.is_file():
        with Image.open(path) as image:
            grey = np.asarray(image.convert("L"), dtype=np.float32)
        source = str(path)
    else:
        grey = synthetic_slice(side).astype(np.float32)
        source = f"synthetic (seed {SYNTHETIC_SEED}; no {path or REAL_SLICE} here)"
    return standardised(grey[None], side), source


def standardised(grey: np.ndarray, side: int) -> np.ndarray:
    """(N, H, W) grey slices -> float32 (N, 3, side, side): x/255, resized (bilinear), zero mean and unit variance
    over all of them (a stand-in for a fold's statistics), replicated to 3 channels."""
    x = torch.from_numpy(np.asarray(grey, dtype=np.float32) / np.float32(255.0))[:, None]
    if tuple(x.shape[-2:]) != (side, side):
        x = nn.functional.interpolate(x, size=(side, side), mode="bilinear", align_corners=False)
    x = (x - x.mean()) / (x.std(unbiased=False) + 1e-6)
    return x.expand(-1, 3, -1, -1).contiguous().numpy()


@torch.no_grad()
def eager_logits(model: nn.Module, inputs: np.ndarray) -> np.ndarray:
    """fp32 eager PyTorch logits of `model` (eval mode, CPU) on `inputs`; the model's mode is restored."""
    was_training = model.training
    try:
        out = model.eval()(torch.from_numpy(inputs).to(next(iter(model.parameters()), torch.empty(0)).device))
    finally:
        model.train(was_training)
    return main_output(out).float().cpu().numpy()


def agreement(reference: np.ndarray, candidate: np.ndarray) -> dict[str, Any]:
    """max / mean |Δ| of two (N, C, H, W) logit arrays, the reference's max |logit| and the argmax agreement."""
    reference, candidate = np.asarray(reference, dtype=np.float64), np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        raise ValueError(f"logits of shape {candidate.shape} cannot be compared with eager's {reference.shape}")
    diff = np.abs(candidate - reference)
    same = reference.argmax(axis=1) == candidate.argmax(axis=1)
    return {
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "max_abs_reference": float(np.abs(reference).max()),
        "argmax_agreement": float(same.mean()),
        "pixels": int(same.size),
        "finite": bool(np.isfinite(candidate).all()),
    }
