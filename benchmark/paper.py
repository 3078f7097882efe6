"""The paper's published tables (package data copied from the paper, read-only facts)."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

PAPER_DIR = Path(__file__).resolve().parent / "paper"
PAPER_DATASETS = ("CT100", "P9", "P20", "P1110")


@lru_cache(maxsize=None)
def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / name, keep_default_na=False, na_values=[""])


def table4() -> pd.DataFrame:
    """Table 4: method, backbone, imagenet_pretrained, params, gflops (= GMACs at 1x3x512x512), fps."""
    return _read("table4_efficiency.csv").copy()


def table5() -> pd.DataFrame:
    """Table 5: method and <dataset>_<metric> columns (percent; HD in pixels)."""
    return _read("table5_accuracy.csv").copy()


def ablations() -> pd.DataFrame:
    """Tables 2 and 3 (COVID-19-P1110): table, variant, description and the five metrics."""
    return _read("table2_3_ablations_P1110.csv").copy()


def authors_builds() -> pd.DataFrame:
    """The authors' own build of each Table 4 row (release `full_code/`): exact `params`, `params_eval`,
    `paper_unit_params` (the printed string), `authors_counter_gflops` and `fvcore_gmacs_512`."""
    return _read("table4_authors_builds.csv").copy()


def ablation_builds() -> pd.DataFrame:
    """The authors' 26 MiniSeg ablation files: `file`, `table_row`, exact `params`, `params_eval`,
    `authors_counter_gflops`, `fvcore_gmacs_512`."""
    return _read("ablations_authors_builds.csv").copy()


def paper_rows() -> list[str]:
    """The 32 method names of Tables 4 and 5, in the paper's order."""
    return list(table4()["method"])


def registered_rows() -> dict[str, str]:
    """Paper row name -> the registered model standing for it (the first by sorted name)."""
    from models import get_model_info, list_models

    rows: dict[str, str] = {}
    for name in list_models():
        row = get_model_info(name).paper_name
        if row is not None:
            rows.setdefault(row, name)
    return rows
