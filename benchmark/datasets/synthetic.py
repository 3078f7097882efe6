"""A deterministic CT-like dataset for CPU tests and the demo, generated on first use.

Built like the real datasets: every slice is infected (the paper keeps infected slices only),
and intensities follow the usual lung window (-1250..250 HU to 0..255): air 0, soft tissue ~200,
lung parenchyma ~65 with small bright vessels (~200), and 1-3 COVID-like lesions per slice: irregular
ground-glass opacities (~110-150, textured) or denser consolidations (~160-190), mostly near the
pleura, covering roughly 1-10% of the slice as in CT100 (median 4.8%). 10 patients x 4 slices of 128x128, ids
`synth_{patient:02d}_{z:04d}`, written in the release layout (tr_im/, tr_mask/ as 0/255 PNG)
plus `patients.json` (slice -> patient, generator version).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..io import atomic_write_json
from .layout import IMAGE_DIR, MASK_DIR, PNG
from .specs import get_spec

SEED = 0
N_PATIENTS = 10
SLICES_PER_PATIENT = 4
SIZE_PX = 128
PATIENTS_FILE = "patients.json"
#: Bumped whenever the generator's output changes, so an old copy on disk is regenerated.
GENERATOR_SCHEMA = "miniseg-bench/synthetic/2"
NOISE_SIGMA = 5.0
LUNG_LEVEL = 65.0
TISSUE_LEVEL = 200.0
VESSELS_PER_LUNG = 6


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


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit standard deviation (texture and irregular borders)."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma_px)
    return field / (field.std() + 1e-12)


def _lesion_centre(rng: np.random.Generator, lung: np.ndarray) -> tuple[float, float]:
    """A point inside the lung, drawn near the pleura two times out of three (COVID-19's subpleural pattern)."""
    inner = ndimage.binary_erosion(lung, iterations=6)
    rim = lung & ~inner
    region = rim if rng.uniform() < 2 / 3 and rim.any() else lung
    ys, xs = np.nonzero(region)
    pick = rng.integers(len(ys))
    return float(ys[pick]), float(xs[pick])


def _lesions(
    rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, lungs: list[np.ndarray], count: int
) -> tuple[np.ndarray, np.ndarray]:
    """`count` irregular opacities inside the lungs: (foreground mask, intensity each lesion sets)."""
    mask = np.zeros(yy.shape, dtype=bool)
    level = np.zeros(yy.shape, dtype=np.float64)
    for _ in range(count):
        lung = lungs[rng.integers(len(lungs))]
        centre = _lesion_centre(rng, lung)
        radii = (rng.uniform(7.0, 18.0), rng.uniform(7.0, 18.0))
        border = 0.35 * _smooth_noise(rng, yy.shape, 2.0)
        blob = (_ellipse(yy, xx, centre, radii) + border <= 1) & lung
        dense = rng.uniform() < 0.25
        mean = rng.uniform(160, 190) if dense else rng.uniform(110, 150)
        texture = (4.0 if dense else 10.0) * _smooth_noise(rng, yy.shape, 1.0)
        level = np.where(blob, np.maximum(level, mean + texture), level)
        mask |= blob
    return mask, level


def _vessels(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray, lungs: list[np.ndarray]) -> np.ndarray:
    """Small bright vessel cross-sections in the lungs: distractors a model must tell from lesions by shape."""
    vessels = np.zeros(yy.shape, dtype=bool)
    for lung in lungs:
        ys, xs = np.nonzero(ndimage.binary_erosion(lung, iterations=2))
        for pick in rng.integers(len(ys), size=VESSELS_PER_LUNG):
            radius = rng.uniform(0.8, 1.6)
            vessels |= _ellipse(yy, xx, (float(ys[pick]), float(xs[pick])), (radius, radius)) <= 1
    return vessels


def synthetic_slice(rng: np.random.Generator, anatomy: Anatomy) -> tuple[np.ndarray, np.ndarray]:
    """One infected CT-like slice: (uint8 image, bool infection mask with at least one lesion pixel)."""
    yy, xx = np.mgrid[0:SIZE_PX, 0:SIZE_PX].astype(np.float64)
    body = _ellipse(yy, xx, anatomy.centre, anatomy.body_radii) <= 1
    lungs = _lungs(yy, xx, anatomy)
    image = np.zeros(yy.shape)
    image[body] = TISSUE_LEVEL + rng.uniform(-10, 10)
    image[lungs[0] | lungs[1]] = LUNG_LEVEL + rng.uniform(-8, 8)
    image[_vessels(rng, yy, xx, lungs)] = rng.uniform(185, 215)  # vessels: -50..+50 HU, brighter than ground glass
    mask = np.zeros(yy.shape, dtype=bool)
    while not mask.any():
        mask, level = _lesions(rng, yy, xx, lungs, int(rng.integers(1, 4)))
    image = np.where(mask, level, image) + rng.normal(0.0, NOISE_SIGMA, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), mask


def generate_synthetic(out_dir: Path, seed: int = SEED) -> dict[str, str]:
    """Write every synthetic slice into `out_dir` (tr_im/, tr_mask/, patients.json); return id -> patient."""
    rng = np.random.default_rng(seed)
    (out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    (out_dir / MASK_DIR).mkdir(parents=True, exist_ok=True)
    patients = slice_ids()
    anatomies = {p: _anatomy(rng) for p in sorted(set(patients.values()))}
    for slice_id, patient in patients.items():
        image, mask = synthetic_slice(rng, anatomies[patient])
        Image.fromarray(image).save(out_dir / IMAGE_DIR / f"{slice_id}{PNG}", compress_level=1)
        Image.fromarray(mask.astype(np.uint8) * 255).save(out_dir / MASK_DIR / f"{slice_id}{PNG}", compress_level=1)
    atomic_write_json(out_dir / PATIENTS_FILE, {"schema": GENERATOR_SCHEMA, "seed": seed, "patients": patients})
    return patients


def _is_current(folder: Path) -> bool:
    """True when `folder` holds a synthetic dataset written by this generator version."""
    try:
        return json.loads((folder / PATIENTS_FILE).read_text()).get("schema") == GENERATOR_SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def ensure_synthetic(data_root: str | Path) -> Path:
    """`<root>/synthetic`, generated (into a temp folder, then renamed) when absent."""
    root = Path(data_root)
    target = root / get_spec("synthetic").folder
    if _is_current(target):
        return target
    if target.exists() and not (target / PATIENTS_FILE).is_file():
        raise ValueError(f"{target}: exists without {PATIENTS_FILE}; remove it to regenerate the synthetic dataset")
    if target.exists():  # made by an older generator: replace it whole
        shutil.rmtree(target)
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
