"""Datasets: the four COVID-19 CT datasets of the MiniSeg paper and a synthetic one.

Layout of a data root (the authors' release layout, so their datasets.zip drops in):
`<root>/COVID-19-<NAME>/tr_im/<id>.png`, `tr_mask/<mask id>.png`, optional `dataList/`.
"""
from .folds import SPLITS, get_folds, patient_folds, patient_map, train_ids
from .loading import SliceSet, clear_cache, dataset_dir, list_slice_ids, load_dataset, load_on_truth_grid
from .specs import DATASET_NAMES, DatasetSpec, RemoteFile, get_spec, spec_for_ids
from .stats import class_weights, normalization_stats

__all__ = [
    "DATASET_NAMES",
    "DatasetSpec",
    "SPLITS",
    "RemoteFile",
    "SliceSet",
    "class_weights",
    "clear_cache",
    "dataset_dir",
    "get_folds",
    "get_spec",
    "list_slice_ids",
    "load_dataset",
    "load_on_truth_grid",
    "normalization_stats",
    "patient_folds",
    "patient_map",
    "spec_for_ids",
    "train_ids",
]
