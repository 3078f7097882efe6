"""What each dataset is: where it comes from, its licence, its slice ids and expected sizes.

Facts from the MiniSeg paper (Table 1) and the authors' released prediction maps
(../shared/paper/PROTOCOL.md). The fold files in `folds/` are the ground truth for
membership; the counts here let `prepare` and the tests check what arrived. A dataset of your own
is described by its `<data root>/<NAME>/dataset.json` (user.py); `get_spec` finds it through the data root.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .user import DATASET_FILE, NAME_PATTERN, UserDataset, find_user_dataset

DATASET_NAMES = ("CT100", "P9", "P20", "P1110", "synthetic")

ZENODO_P20_RECORD = "https://zenodo.org/api/records/3757476"


@dataclass(frozen=True)
class RemoteFile:
    """One file a `download` fetches: its URL, the name to save it as, and how to check it."""

    url: str
    filename: str
    md5: str | None = None
    checksum_url: str | None = None  # a Zenodo record API URL that lists "md5:<hex>" per file


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset as the benchmark uses it (names, origin, licence, ids, expected counts)."""

    name: str
    folder: str
    title: str
    source: str
    source_url: str
    licence: str
    n_slices: int
    fold_sizes: tuple[int, ...]
    n_patients: int
    id_regex: str
    slice_id_format: str = "{case}_{z:04d}"
    image_prefix: str = ""
    mask_prefix: str = ""
    infected_only: bool = True
    raw_layout: str = ""
    downloads: tuple[RemoteFile, ...] = ()
    # The side its slices are brought to when they come in several sizes (P9, P20: Radiopaedia volumes are
    # 630x630 beside 512x512 ones; the paper's data hold them at 512). None: every slice must match its mask
    # and the other slices as it is; a differing one is an error naming it, never silently resized.
    resize_px: int | None = None

    def mask_id(self, slice_id: str) -> str:
        """The mask file's stem for an image id (CT100: tr_im_XXXX -> tr_mask_XXXX; others: same)."""
        if self.image_prefix and slice_id.startswith(self.image_prefix):
            return self.mask_prefix + slice_id[len(self.image_prefix):]
        return slice_id

    def image_id(self, mask_id: str) -> str:
        """Inverse of `mask_id`: the slice id of a mask file's stem."""
        if self.mask_prefix and mask_id.startswith(self.mask_prefix):
            return self.image_prefix + mask_id[len(self.mask_prefix):]
        return mask_id

    def slice_id(self, case: str, z: int) -> str:
        """Slice id of index `z` (0-based, third NIfTI axis) of volume `case`."""
        return self.slice_id_format.format(case=case, z=z)

    def is_valid_id(self, slice_id: str) -> bool:
        """True when `slice_id` matches this dataset's id pattern."""
        return re.fullmatch(self.id_regex, slice_id) is not None


_MEDSEG_URL = "http://medicalsegmentation.com/covid19/"

SPECS: dict[str, DatasetSpec] = {
    "CT100": DatasetSpec(
        name="CT100",
        folder="COVID-19-CT100",
        title="COVID-19-CT100: 100 axial CT slices of ~60 COVID-19 patients (Italian SIRM cases)",
        source="MedSeg 'COVID-19 CT segmentation dataset': tr_im.nii.gz + tr_mask.nii.gz (512x512x100)",
        source_url=_MEDSEG_URL,
        licence="no licence stated by MedSeg (images from SIRM); research use, cite MedSeg and SIRM",
        n_slices=99,
        fold_sizes=(20, 20, 20, 20, 19),
        n_patients=60,
        id_regex=r"tr_im_\d{4}",
        slice_id_format="tr_im_{z:04d}",
        image_prefix="tr_im_",
        mask_prefix="tr_mask_",
        infected_only=False,
        raw_layout="tr_im.nii.gz and tr_mask.nii.gz anywhere under --source",
    ),
    "P9": DatasetSpec(
        name="P9",
        folder="COVID-19-P9",
        title="COVID-19-P9: 9 Radiopaedia CT volumes annotated by MedSeg (infected slices)",
        source="MedSeg 'Segmentation dataset nr. 2': rp_im/<n>.nii.gz + rp_msk/<n>.nii.gz, n = 1..9",
        source_url=_MEDSEG_URL,
        licence="Radiopaedia cases CC BY-NC-SA 3.0; MedSeg annotations: no licence stated",
        n_slices=268,
        fold_sizes=(14, 73, 45, 9, 127),
        n_patients=9,
        id_regex=r"\d+_\d{4}",
        raw_layout="rp_im/<n>.nii.gz and rp_msk/<n>.nii.gz under --source",
        resize_px=512,
    ),
    "P20": DatasetSpec(
        name="P20",
        folder="COVID-19-P20",
        title="COVID-19-P20: 20 CT volumes (10 Coronacases, 10 Radiopaedia), Ma et al. 2020 (infected slices)",
        source="Zenodo record 3757476: COVID-19-CT-Seg_20cases.zip + Infection_Mask.zip",
        source_url="https://zenodo.org/records/3757476",
        licence="CC BY-NC-SA 4.0 (Zenodo record 3757476)",
        n_slices=1844,
        fold_sizes=(363, 434, 491, 187, 369),
        n_patients=20,
        id_regex=r"(coronacases_\d{3}|radiopaedia_\d+_\d+_\d+)_\d{4}",
        raw_layout="COVID-19-CT-Seg_20cases/*.nii.gz and Infection_Mask/*.nii.gz under --source",
        resize_px=512,
        downloads=(
            RemoteFile(
                url="https://zenodo.org/records/3757476/files/COVID-19-CT-Seg_20cases.zip?download=1",
                filename="COVID-19-CT-Seg_20cases.zip",
                checksum_url=ZENODO_P20_RECORD,
            ),
            RemoteFile(
                url="https://zenodo.org/records/3757476/files/Infection_Mask.zip?download=1",
                filename="Infection_Mask.zip",
                checksum_url=ZENODO_P20_RECORD,
            ),
        ),
    ),
    "P1110": DatasetSpec(
        name="P1110",
        folder="COVID-19-P1110",
        title="COVID-19-P1110: MosMedData, the 50 studies with infection masks (infected slices)",
        source="MosMedData COVID19_1110: studies/CT-*/study_XXXX.nii.gz + masks/study_XXXX_mask.nii.gz (0255..0304)",
        source_url="https://mosmed.ai/datasets/covid19_1110/",
        licence="CC BY-NC-ND 3.0 (MosMedData)",
        n_slices=785,
        fold_sizes=(132, 163, 154, 164, 172),
        n_patients=50,
        id_regex=r"study_\d{4}_\d{4}",
        raw_layout="masks/study_XXXX_mask.nii.gz (and studies/**/study_XXXX.nii.gz for images) under --source",
    ),
    "synthetic": DatasetSpec(
        name="synthetic",
        folder="synthetic",
        title="synthetic: CT-like 128x128 slices generated on first use (body, lungs, lesion blobs)",
        source="generated by benchmark.datasets.synthetic (deterministic, seed 0)",
        source_url="",
        licence="MIT (generated by this project)",
        n_slices=40,
        fold_sizes=(8, 8, 8, 8, 8),
        n_patients=10,
        id_regex=r"synth_\d{2}_\d{4}",
        infected_only=False,
    ),
}

_ALIASES = {name.lower(): name for name in SPECS} | {spec.folder.lower(): name for name, spec in SPECS.items()}


def builtin_name(name: str) -> str | None:
    """The built-in dataset `name` stands for ("ct100", "COVID-19-CT100" -> "CT100"), or None."""
    return _ALIASES.get(str(name).strip().lower())


def get_spec(name: str, data_root: str | Path | None = None) -> DatasetSpec:
    """The spec of `name`: a built-in ("CT100" or "COVID-19-CT100", any case), else, with `data_root`, a dataset
    of your own laid out by `prepare` as `<data_root>/<name>/dataset.json`; unknown names raise KeyError."""
    key = builtin_name(name)
    if key is not None:
        return SPECS[key]
    if data_root is not None:
        found = find_user_dataset(str(name).strip(), data_root)
        if found is not None:
            return user_spec(found)
    close = difflib.get_close_matches(str(name), list(DATASET_NAMES), n=3, cutoff=0.3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    own = "" if data_root is None else (f", or a dataset of your own laid out by prepare "
                                        f"(no {Path(data_root) / str(name).strip() / DATASET_FILE})")
    raise KeyError(f"unknown dataset {name!r}{hint}; known: {', '.join(DATASET_NAMES)}{own}")


def user_spec(dataset: UserDataset) -> DatasetSpec:
    """The DatasetSpec of a dataset of your own, from what its dataset.json says."""
    return DatasetSpec(
        name=dataset.name, folder=dataset.name, title=dataset.title, source=dataset.source, source_url="",
        licence=dataset.licence, n_slices=dataset.n_slices, fold_sizes=dataset.fold_sizes,
        n_patients=dataset.n_patients, id_regex=NAME_PATTERN, infected_only=dataset.drops_empty,
        raw_layout=dataset.layout,
    )


def spec_for_ids(ids: Sequence[str]) -> DatasetSpec | None:
    """The one dataset whose id pattern every id matches (the patterns do not overlap), else None."""
    ids = list(ids)
    matching = [spec for spec in SPECS.values() if ids and all(spec.is_valid_id(i) for i in ids)]
    return matching[0] if len(matching) == 1 else None
