"""Converters from the raw downloads (NIfTI volumes, or the authors' datasets.zip) to the layout.

Slice z of a volume is `volume[:, :, z].T` (nibabel's axes; checked on P1110 against the
authors' maps), named `spec.slice_id(case, z)`. CT100 keeps all 100 slices; P9, P20 and
P1110 keep only slices whose mask has infection, as the paper. Everything is written into
a temporary folder inside the data root and renamed at the end, so an interrupted
prepare leaves nothing half-written.
"""
from __future__ import annotations

import re
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from PIL import Image
from tqdm import tqdm

from ..io import atomic_write_json
from .download import is_archive, safe_extract
from .layout import DATALIST_DIR, IMAGE_DIR, MASK_DIR, PNG, dataset_path
from .specs import DatasetSpec, get_spec

DEFAULT_WINDOW_HU = (-1250.0, 250.0)
RECORD_FILE = "prepare.json"


@dataclass(frozen=True)
class RawVolume:
    """One case of a raw download: its mask volume and (unless masks-only) its CT volume."""

    case: str
    mask: Path
    image: Path | None


@dataclass
class PrepareResult:
    """What `prepare_dataset` wrote: the folder, slice ids per case, fold ids that did not arrive."""

    path: Path
    slices_per_case: dict[str, int] = field(default_factory=dict)
    missing_fold_ids: list[str] = field(default_factory=list)

    @property
    def n_slices(self) -> int:
        return sum(self.slices_per_case.values())


def _nifti_stem(path: Path) -> str | None:
    """File name without .nii / .nii.gz, or None for other files."""
    for suffix in (".nii.gz", ".nii"):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return None


def _in_folder(path: Path, folder: str) -> bool:
    return folder in path.parts[:-1]


# The 20 case names of COVID-19-CT-Seg (Zenodo 3757476), as the dataset's authors list them in their
# benchmark's split files (Ma et al., COVID-19-CT-Seg-Benchmark, Task1/Task1_COVID_datasplit.pkl); the
# Infection_Mask volumes carry these names, and so do the MiniSeg release's P20 slice ids.
P20_CASES = tuple(
    [f"coronacases_{i:03d}" for i in range(1, 11)]
    + [
        "radiopaedia_4_85506_1", "radiopaedia_7_85703_0", "radiopaedia_10_85902_1", "radiopaedia_10_85902_3",
        "radiopaedia_14_85914_0", "radiopaedia_27_86410_0", "radiopaedia_29_86490_1", "radiopaedia_29_86491_1",
        "radiopaedia_36_86526_0", "radiopaedia_40_86625_0",
    ]
)
# CT volume names in COVID-19-CT-Seg_20cases: "coronacases_org_001", "radiopaedia_org_covid-19-pneumonia-4_85506_1-dcm".
# Copies circulate with "coronacases_org_case007" or a bare "case009" for some Coronacases volumes: accepted too.
_P20_CORONACASES = re.compile(r"(?:coronacases_org_)?(?:case)?(\d{3})")
_P20_RADIOPAEDIA = re.compile(r"radiopaedia_org_covid-19-pneumonia-(\d+_\d+_\d+)-dcm")


def _p20_case(stem: str) -> str | None:
    """The case name of a COVID-19-CT-Seg CT volume (see P20_CASES), or None for other files."""
    if m := _P20_CORONACASES.fullmatch(stem):
        return f"coronacases_{m.group(1)}"
    if m := _P20_RADIOPAEDIA.fullmatch(stem):
        return f"radiopaedia_{m.group(1)}"
    return None


def _p20_mask_case(path: Path, stem: str) -> str | None:
    """Infection_Mask volumes are named by case; a name outside P20_CASES is a foreign file, said so."""
    if not _in_folder(path, "Infection_Mask"):
        return None
    if stem not in P20_CASES:
        raise ValueError(
            f"{path}: not a COVID-19-CT-Seg case name (expected one of the 20 published names, "
            f"e.g. coronacases_001 or radiopaedia_4_85506_1)"
        )
    return stem


_P1110_MASK = re.compile(r"(study_\d{4})_mask")
_P1110_IMAGE = re.compile(r"study_\d{4}")

# dataset -> (case of a mask file stem or None, case of an image file stem or None); the Path gives the folder.
CaseOf = Callable[[Path, str], "str | None"]
RAW_LAYOUTS: dict[str, tuple[CaseOf, CaseOf]] = {
    "CT100": (
        lambda p, s: "ct100" if s == "tr_mask" else None,
        lambda p, s: "ct100" if s == "tr_im" else None,
    ),
    "P9": (
        lambda p, s: s if _in_folder(p, "rp_msk") else None,
        lambda p, s: s if _in_folder(p, "rp_im") else None,
    ),
    "P20": (
        _p20_mask_case,
        lambda p, s: _p20_case(s) if _in_folder(p, "COVID-19-CT-Seg_20cases") else None,
    ),
    "P1110": (
        lambda p, s: m.group(1) if (m := _P1110_MASK.fullmatch(s)) else None,
        lambda p, s: s if _P1110_IMAGE.fullmatch(s) else None,
    ),
}


def _index_cases(files: Iterable[Path], case_of: CaseOf, kind: str) -> dict[str, Path]:
    """case -> file; two files for one case raise a ValueError naming both."""
    found: dict[str, Path] = {}
    for path in files:
        stem = _nifti_stem(path)
        case = case_of(path, stem) if stem is not None else None
        if case is None:
            continue
        if case in found:
            raise ValueError(f"two {kind} volumes for case {case!r}: {found[case]} and {path}")
        found[case] = path
    return found


def find_volumes(spec: DatasetSpec, source: Path, masks_only: bool) -> list[RawVolume]:
    """Pair every mask volume under `source` with its CT volume (searched recursively)."""
    mask_of, image_of = RAW_LAYOUTS[spec.name]
    files = sorted(p for p in source.rglob("*.nii*") if p.is_file())
    masks = _index_cases(files, mask_of, "mask")
    if not masks:
        raise FileNotFoundError(f"{source}: no {spec.name} mask volumes found (expected {spec.raw_layout})")
    images = {} if masks_only else _index_cases(files, image_of, "image")
    missing = sorted(set(masks) - set(images)) if not masks_only else []
    if missing:
        raise FileNotFoundError(
            f"{source}: no CT volume for {len(missing)} case(s), e.g. {masks[missing[0]]} "
            f"(expected {spec.raw_layout}; use --masks-only to lay out ground truth alone)"
        )
    return [RawVolume(case, masks[case], None if masks_only else images[case]) for case in sorted(masks)]


def read_volume(path: Path) -> np.ndarray:
    """A 3-D NIfTI volume as stored (scaled to float only when the header asks for it)."""
    import nibabel as nib

    try:
        proxy = nib.load(str(path)).dataobj
        raw = np.asarray(proxy.get_unscaled()) if hasattr(proxy, "get_unscaled") else np.asarray(proxy)
        slope = float(getattr(proxy, "slope", 1.0))
        inter = float(getattr(proxy, "inter", 0.0))
    except Exception as err:  # nibabel raises many types for a corrupt file
        raise ValueError(f"{path}: unreadable NIfTI ({err})") from None
    while raw.ndim > 3 and raw.shape[-1] == 1:
        raw = raw[..., 0]
    if raw.ndim != 3:
        raise ValueError(f"{path}: expected a 3-D volume, got shape {raw.shape}")
    if slope == 1.0 and inter == 0.0:
        return raw
    return raw.astype(np.float32) * np.float32(slope) + np.float32(inter)


def is_8bit(volume: np.ndarray) -> bool:
    """True when a volume already holds display values 0..255 (P20's Radiopaedia cases), not HU."""
    return bool(volume.min() >= 0 and volume.max() <= 255)


def to_uint8(slice_values: np.ndarray, window_hu: tuple[float, float] | None) -> np.ndarray:
    """Map HU to 0..255 through `window_hu` (clipped, linear); None keeps 0..255 values as they are."""
    if window_hu is None:
        return np.rint(np.clip(slice_values, 0, 255)).astype(np.uint8)
    low, high = window_hu
    scaled = (np.clip(slice_values.astype(np.float32), low, high) - low) * np.float32(255.0 / (high - low))
    return np.rint(scaled).astype(np.uint8)


def infection(mask_volume: np.ndarray, labels: tuple[int, ...] | None) -> np.ndarray:
    """Boolean infection volume: any non-zero label, or only `labels` when given."""
    return mask_volume > 0 if labels is None else np.isin(mask_volume, labels)


def _save_png(array: np.ndarray, path: Path) -> None:
    Image.fromarray(array).save(path, compress_level=1)


def convert_volume(
    spec: DatasetSpec, volume: RawVolume, out_dir: Path, window_hu: tuple[float, float], labels: tuple[int, ...] | None
) -> int:
    """Write one case's slices (masks 0/255 PNG; images 8-bit PNG unless masks-only); return the count."""
    mask = infection(read_volume(volume.mask), labels)
    image = None
    if volume.image is not None:
        image = read_volume(volume.image)
        if image.shape != mask.shape:
            raise ValueError(f"{volume.mask}: mask shape {mask.shape} differs from CT volume {volume.image} {image.shape}")
        window = None if is_8bit(image) else window_hu
    written = 0
    for z in range(mask.shape[2]):
        mask_slice = mask[:, :, z].T
        if spec.infected_only and not mask_slice.any():
            continue
        slice_id = spec.slice_id(volume.case, z)
        _save_png(mask_slice.astype(np.uint8) * 255, out_dir / MASK_DIR / f"{spec.mask_id(slice_id)}{PNG}")
        if image is not None:
            _save_png(to_uint8(image[:, :, z].T, window), out_dir / IMAGE_DIR / f"{slice_id}{PNG}")
        written += 1
    return written


def find_release_folder(spec: DatasetSpec, source: Path) -> Path | None:
    """The `<folder>/` with a tr_mask/ inside the authors' datasets.zip layout, if `source` holds one."""
    candidates = [source] if source.name == spec.folder else []
    candidates += sorted(p for p in source.rglob(spec.folder) if p.is_dir())
    return next((c for c in candidates if (c / MASK_DIR).is_dir()), None)


def copy_release(release: Path, out_dir: Path, masks_only: bool) -> dict[str, int]:
    """Copy tr_mask/ (and tr_im/, dataList/) of a release folder; return slice counts."""
    subdirs = [MASK_DIR, DATALIST_DIR] + ([] if masks_only else [IMAGE_DIR])
    for sub in subdirs:
        if (release / sub).is_dir():
            shutil.rmtree(out_dir / sub, ignore_errors=True)
            shutil.copytree(release / sub, out_dir / sub)
    return {"release": len(list((out_dir / MASK_DIR).glob(f"*{PNG}")))}


def _convert_all(
    spec: DatasetSpec,
    volumes: list[RawVolume],
    out_dir: Path,
    window_hu: tuple[float, float],
    labels: tuple[int, ...] | None,
) -> dict[str, int]:
    """Convert every volume with a progress bar (stderr)."""
    counts: dict[str, int] = {}
    bar = tqdm(volumes, desc=f"prepare {spec.name}", unit="volume", file=sys.stderr)
    for volume in bar:
        counts[volume.case] = convert_volume(spec, volume, out_dir, window_hu, labels)
        bar.set_postfix(slices=sum(counts.values()))
    return counts


def _missing_fold_ids(spec: DatasetSpec, out_dir: Path) -> list[str]:
    """Ids in the committed folds whose mask did not arrive."""
    from .folds import get_folds

    wanted = {i for fold in get_folds(spec.name) for i in fold}
    present = {spec.image_id(p.stem) for p in (out_dir / MASK_DIR).glob(f"*{PNG}")}
    return sorted(wanted - present)


def _replace(tmp: Path, target: Path, force: bool) -> None:
    """Rename the finished temp folder onto `target` (an existing target only with `force`)."""
    if target.exists():
        if not force:
            raise ValueError(f"{target}: already exists; pass --force to replace it")
        old = target.with_name(f".{target.name}.old-{tmp.name}")
        target.rename(old)
        tmp.rename(target)
        shutil.rmtree(old)
        return
    tmp.rename(target)


def prepare_dataset(
    name: str,
    source: str | Path,
    data_root: str | Path,
    masks_only: bool = False,
    window_hu: tuple[float, float] = DEFAULT_WINDOW_HU,
    labels: tuple[int, ...] | None = None,
    force: bool = False,
) -> PrepareResult:
    """Lay out dataset `name` under `data_root` from a raw download at `source` (folder or archive)."""
    spec = get_spec(name)
    if spec.name == "synthetic":
        raise ValueError("the synthetic dataset is generated on first use; it has no raw download to prepare")
    source, root = Path(source), Path(data_root)
    target = dataset_path(spec, root)
    if not source.exists():
        raise FileNotFoundError(f"{source}: source not found")
    if target.exists() and not force:
        raise ValueError(f"{target}: already exists; pass --force to replace it")
    if window_hu[0] >= window_hu[1]:
        raise ValueError(f"window {window_hu}: LOW must be below HIGH")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{spec.folder}.tmp-", dir=root))
    try:
        counts = _fill(spec, source, tmp, masks_only, window_hu, labels)
        result = PrepareResult(path=target, slices_per_case=counts, missing_fold_ids=_missing_fold_ids(spec, tmp))
        record = {
            "schema": "miniseg-bench/prepare/1", "dataset": spec.folder, "source": str(source.resolve()),
            "masks_only": masks_only, "window_hu": list(window_hu), "labels": list(labels) if labels else None,
            "n_slices": result.n_slices, "slices_per_case": counts, "missing_fold_ids": result.missing_fold_ids,
        }
        atomic_write_json(tmp / RECORD_FILE, record)
        _replace(tmp, target, force)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def _fill(
    spec: DatasetSpec,
    source: Path,
    out_dir: Path,
    masks_only: bool,
    window_hu: tuple[float, float],
    labels: tuple[int, ...] | None,
) -> dict[str, int]:
    """Write the layout into `out_dir` from a folder or archive (release layout, else NIfTI volumes)."""
    if source.is_file() and is_archive(source):
        extracted = out_dir / ".extract"
        safe_extract(source, extracted)
        try:
            return _fill(spec, extracted, out_dir, masks_only, window_hu, labels)
        finally:
            shutil.rmtree(extracted, ignore_errors=True)
    (out_dir / MASK_DIR).mkdir(parents=True, exist_ok=True)
    if not masks_only:
        (out_dir / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    release = find_release_folder(spec, source)
    if release is not None:
        return copy_release(release, out_dir, masks_only)
    return _convert_all(spec, find_volumes(spec, source, masks_only), out_dir, window_hu, labels)
