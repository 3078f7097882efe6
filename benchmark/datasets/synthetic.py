"""A deterministic CT-like dataset for CPU tests and the demo, generated on first use.

Each slice: dark air, an elliptic body, two darker lung fields, and 0-3 lesion blobs of
varied size and contrast inside the lungs (about a quarter of the slices have none).
10 patients x 4 slices of 128x128, ids `synth_{patient:02d}_{z:04d}`, written in the
release layout (tr_im/, tr_mask/ as 0/255 PNG) plus `patients.json` (slice -> patient).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..io import atomic_write_json
from .loading import IMAGE_DIR, MASK_DIR, PNG
from .specs import get_spec

SEED = 0
N_PATIENTS = 10
SLICES_PER_PATIENT = 4
SIZE_PX = 128
PATIENTS_FILE = "patients.json"
NOISE_SIGMA = 6.0


@dataclass(frozen=True)
class Anatomy:
    """One patient's geometry: body centre and radii, lung centres' offset and radii (pixels)."""

    centre: tuple[float, float]
    body_radii: tuple[float, float]
    lung_offset: float
    lung_radii: tuple[float, float]


def slice_ids() -> dict[str, str]:
    """Slice id -> patient id for every synthetic slice (no generation needed)."""
    return {
        f"synth_{p:02d}_{z:04d}": f"patient_{p:02d}"
        for p in range(N_PATIENTS)
        for z in range(SLICES_PER_PATIENT)
    }


def _ellipse(yy: np.ndarray, xx: np.ndarray, centre: tuple[float, float], radii: tuple[float, float]) -> np.ndarray:
    """Normalised squared distance to an axis-aligned ellipse (<= 1 inside)."""
    return ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2


def _anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw a patient's body and lung geometry."""
    half = SIZE_PX / 2
    return Anatomy(
        centre=(half + rng.uniform(-4, 4), half + rng.uniform(-4, 4)),
        body_radii=(rng.uniform(38, 44), rng.uniform(50, 56)),
        lung_offset=rng.uniform(20, 24),
        lung_radii=(rng.uniform(24, 30), rng.uniform(13, 17)),
    )


def _lungs(yy: np.ndarray, xx: np.ndarray, anatomy: Anatomy) -> list[np.ndarray]:
    """Boolean masks of the left and right lung fields."""
    cy, cx = anatomy.centre
    return [_ellipse(yy, xx, (cy - 3, cx + side * anatomy.lung_offset), anatomy.lung_radii) <= 1 for side in (-1, 1)]


def _lesions(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, lungs: list[np.ndarray], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` blobs inside the lungs: (foreground mask, added intensity)."""
    mask = np.zeros(yy.shape, dtype=bool)
    added = np.zeros(yy.shape, dtype=np.float64)
    for _ in range(count):
        lung = lungs[rng.integers(len(lungs))]
        ys, xs = np.nonzero(lung)
        pick = rng.integers(len(ys))
        radii = (rng.uniform(2.5, 10.0), rng.uniform(2.5, 10.0))
        dist = _ellipse(yy, xx, (float(ys[pick]), float(xs[pick])), radii)
        blob = (dist <= 1) & lung
        contrast = rng.uniform(35, 120)
        added = np.maximum(added, np.where(blob, contrast * (1.0 - 0.4 * dist), 0.0))
        mask |= blob
    return mask, added


def synthetic_slice(rng: np.random.Generator, anatomy: Anatomy, has_lesions: bool) -> tuple[np.ndarray, np.ndarray]:
    """One CT-like slice: (uint8 image, bool infection mask)."""
    yy, xx = np.mgrid[0:SIZE_PX, 0:SIZE_PX].astype(np.float64)
    body = _ellipse(yy, xx, anatomy.centre, anatomy.body_radii) <= 1
    lungs = _lungs(yy, xx, anatomy)
    image = np.full(yy.shape, 10.0)
    image[body] = rng.uniform(140, 170)
    image[lungs[0] | lungs[1]] = rng.uniform(30, 50)
    mask, added = _lesions(rng, yy, xx, lungs, int(rng.integers(1, 4)) if has_lesions else 0)
    image += added + rng.normal(0.0, NOISE_SIGMA, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def generate_synthetic(out_dir: Path, seed: int = SEED) -> dict[str, str]:
    """Write every synthetic slice into `out_dir` (tr_im/, tr_mask/, patients.json); return id -> patient."""
    rng = np.random.default_rng(seed)
    (out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / MASK_DIR).mkdir(parents=True, exist_ok=True)
    patients = slice_ids()
    anatomies = {p: _anatomy(rng) for p in sorted(set(patients.values()))}
    for index, (slice_id, patient) in enumerate(patients.items()):
        image, mask = synthetic_slice(rng, anatomies[patient], has_lesions=index % 4 != 3)
        Image.fromarray(image).save(out_dir / IMAGE_DIR / f"{slice_id}{PNG}", compress_level=1)
        Image.fromarray(mask.astype(np.uint8) * 255).save(out_dir / MASK_DIR / f"{slice_id}{PNG}", compress_level=1)
    atomic_write_json(out_dir / PATIENTS_FILE, {"schema": "miniseg-bench/synthetic/1", "seed": seed, "patients": patients})
    return patients


def ensure_synthetic(data_root: str | Path) -> Path:
    """`<root>/synthetic`, generated (into a temp folder, then renamed) when absent."""
    root = Path(data_root)
    target = root / get_spec("synthetic").folder
    if (target / PATIENTS_FILE).is_file():
        return target
    if target.exists():
        raise ValueError(f"{target}: exists without {PATIENTS_FILE}; remove it to regenerate the synthetic dataset")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic.tmp-", dir=root))
    try:
        generate_synthetic(tmp)
        os.rename(tmp, target)
    except OSError:
        if not (target / PATIENTS_FILE).is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
