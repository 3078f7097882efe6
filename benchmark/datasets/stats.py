"""Per-fold statistics of the training split: input normalisation and loss class weights."""
from __future__ import annotations

import numpy as np

CLASS_WEIGHT_NORM = 1.10


def normalization_stats(images_uint8: np.ndarray) -> tuple[float, float]:
    """(mean, std) as the paper: mean of per-image means and of per-image population stds of img/255."""
    images = np.asarray(images_uint8)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"normalization_stats expects a non-empty (N, H, W) array, got shape {images.shape}")
    scaled = images.reshape(images.shape[0], -1).astype(np.float64) / 255.0
    return float(scaled.mean(axis=1).mean()), float(scaled.std(axis=1).mean())


def class_weights(masks_bool: np.ndarray) -> np.ndarray:
    """Loss weights (background, infection) = 1 / ln(1.10 + p_c), p_c = share of class c in all pixels."""
    masks = np.asarray(masks_bool, dtype=bool)
    if masks.size == 0:
        raise ValueError("class_weights needs at least one mask pixel")
    p_fg = np.count_nonzero(masks) / masks.size
    shares = np.array([1.0 - p_fg, p_fg], dtype=np.float64)
    return 1.0 / np.log(CLASS_WEIGHT_NORM + shares)
