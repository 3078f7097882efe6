"""Every row of the paper's Table 4 and every MiniSeg ablation file, counted as the authors counted them.

Expected figures: benchmark/paper/table4_authors_builds.csv and ablations_authors_builds.csv (the
authors' own builds, their counter and fvcore at 1x3x512x512). Models are built and counted on the
meta device, so the ResNet-101 nets at 512 take about a second each.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmark import paper
from benchmark._format import paper_unit_params, params_text
from benchmark.cli import main
from benchmark.profiling.paper_flops import measure_registered
from benchmark.profiling.paper_rows import BACKBONE_NOTE, backbone_only_rows, paper_counts
from models import get_model_info, list_models
from models.miniseg_ablations import authors_file_models

FVCORE_TOLERANCE = 0.01
#: Whole-network rows known not to reproduce authors_counter_gflops at two decimals, with the reason.
#: (The issue accepts at least 26 of the 28 whole-network rows.) Strict: a row that starts to match fails
#: here until it is taken off the list.
GFLOPS_EXCEPTIONS: dict[str, str] = {
    "Inf-Net": "27.29 vs 27.30: our forward does not run the edge head's last conv (the original edge_conv4, "
               "64->1 at 1/4 scale, 9.4M MACs + its BN), which the authors' training graph returns as a side "
               "map; parameters are equal",
}


def _table4_cases() -> list[Any]:
    return [pytest.param(("table4", rec["method"]), id=rec["method"]) for rec in paper.authors_builds().to_dict("records")]


def _ablation_cases() -> list[Any]:
    return [pytest.param(("ablation", rec["file"]), id=Path(rec["file"]).stem)
            for rec in paper.ablation_builds().to_dict("records")]


CASES = _table4_cases() + _ablation_cases()
_COUNTS: dict[tuple[str, str], dict[str, Any]] = {}


def expected(case: tuple[str, str]) -> dict[str, Any]:
    """The CSV row of a case."""
    kind, key = case
    table = paper.authors_builds().set_index("method") if kind == "table4" else paper.ablation_builds().set_index("file")
    return table.loc[key].to_dict()


def registered(case: tuple[str, str]) -> str:
    """The registered model of a case, or a failure that names the missing row."""
    kind, key = case
    name = (paper.registered_rows() if kind == "table4" else authors_file_models()).get(key)
    if name is None:
        pytest.fail(f"{key}: no registered model stands for this row")
    return name


def counts(case: tuple[str, str]) -> dict[str, Any]:
    """Our params, paper-unit string, gflops_paper and fvcore GMACs of the part the authors counted (cached)."""
    if case not in _COUNTS:
        name = registered(case)
        row = case[1] if case[0] == "table4" else None
        aux_heads = get_model_info(name).has_aux
        _COUNTS[case] = measure_registered(
            name, lambda model: paper_counts(model, row, aux_heads=aux_heads, with_fvcore=True)
        )
        _COUNTS[case]["model"] = name
    out = _COUNTS[case]
    if out["params"] is None:
        pytest.fail(f"{case[1]} ({out['model']}): {out['counted']}")
    return out


# --- the rows and the registry --------------------------------------------------------------------

def test_paper_tables_agree_on_rows():
    assert paper.paper_rows() == list(paper.table5()["method"]) == list(paper.authors_builds()["method"])
    assert len(paper.paper_rows()) == 32


def test_every_paper_row_is_registered():
    missing = [row for row in paper.paper_rows() if row not in paper.registered_rows()]
    assert not missing, f"paper rows without a registered model: {missing}"


def test_paper_names_are_real_rows():
    unknown = sorted(set(paper.registered_rows()) - set(paper.paper_rows()))
    assert not unknown, f"paper_name values that are not rows of Table 4: {unknown}"


def test_every_ablation_file_has_one_registered_model():
    files = authors_file_models()
    assert set(files) == set(paper.ablation_builds()["file"])
    assert set(files.values()) <= set(list_models()) and len(set(files.values())) == len(files)


def test_backbone_only_rows_are_the_four_light_backbones():
    assert backbone_only_rows() == {"MobileNet", "MobileNetv2", "ShuffleNet", "ShuffleNetv2"}


# --- the paper's unit ---------------------------------------------------------------------------------

def test_paper_unit_reproduces_the_csv_strings():
    builds = paper.authors_builds()
    assert [paper_unit_params(int(n)) for n in builds["params"]] == list(builds["paper_unit_params"])
    assert (paper_unit_params(82_912), paper_unit_params(363_197), paper_unit_params(8_637_378)) == (
        "82.91K", "0.36M", "8.43M")
    assert (params_text(878_000), params_text(878_000, k_below=1_000_000), params_text(1_470_000)) == (
        "0.88M", "878.00K", "1.47M")


def test_printed_params_differ_from_the_authors_build_only_for_ocnet():
    builds = paper.authors_builds()
    differ = [row.method for row in builds.itertuples() if params_text(row.paper_params) != row.paper_unit_params]
    assert differ == ["OCNet"]


# --- each row counted as the authors counted it --------------------------------------------------------

@pytest.mark.parametrize("case", CASES)
def test_params_exact(case):
    ours, theirs = counts(case), expected(case)
    assert ours["params"] == theirs["params"], (
        f"{case[1]} ({ours['model']}, {ours['counted']}): {ours['params']:,} params vs the authors' {theirs['params']:,}")


@pytest.mark.parametrize("case", _table4_cases())
def test_params_in_the_papers_unit(case):
    ours, theirs = counts(case), expected(case)
    assert ours["params_paper_unit"] == theirs["paper_unit_params"]


@pytest.mark.parametrize("case", CASES)
def test_fvcore_gmacs_within_one_percent(case):
    ours, theirs = counts(case), expected(case)
    assert ours["fvcore_gmacs"] == pytest.approx(theirs["fvcore_gmacs_512"], rel=FVCORE_TOLERANCE), (
        f"{case[1]} ({ours['model']}): fvcore {ours['fvcore_gmacs']:.3f} vs the authors' {theirs['fvcore_gmacs_512']:.3f}")


def _gflops_cases() -> list[Any]:
    """CASES, with the known exceptions marked xfail (strict) and their reason."""
    out = []
    for case in CASES:
        (kind, key), = case.values
        reason = GFLOPS_EXCEPTIONS.get(key)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        out.append(pytest.param((kind, key), id=case.id, marks=marks))
    return out


@pytest.mark.parametrize("case", _gflops_cases())
def test_gflops_paper_equal_at_two_decimals(case):
    ours, theirs = counts(case), expected(case)
    assert f"{ours['gflops_paper']:.2f}" == f"{theirs['authors_counter_gflops']:.2f}", (
        f"{case[1]} ({ours['model']}): gflops_paper {ours['gflops_paper']:.4f} vs the authors' counter "
        f"{theirs['authors_counter_gflops']:.2f}")


def test_gflops_exceptions_are_whole_network_rows_and_few():
    whole = set(paper.paper_rows()) - backbone_only_rows()
    assert set(GFLOPS_EXCEPTIONS) <= whole
    assert len(whole) - len(GFLOPS_EXCEPTIONS) >= 26


# --- the listing ----------------------------------------------------------------------------------------

def test_list_paper_compares_in_the_papers_unit(capsys):
    assert main(["list", "--paper", "--models", "miniseg,shufflenet-g3", "--json"]) == 0
    rows = {r["paper_row"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(rows) == {"MiniSeg", "ShuffleNet"}
    mini, shuffle = rows["MiniSeg"], rows["ShuffleNet"]
    assert (mini["params_printed"], mini["params_ours"], mini["params_eq"]) == ("82.91K", "82.91K", "=")
    assert (mini["gflops_printed"], mini["gflops_ours"], mini["gflops_eq"]) == ("0.50", "0.50", "=")
    assert (mini["counted"], mini["note"]) == ("network", None)
    assert (shuffle["counted"], shuffle["note"]) == ("backbone", BACKBONE_NOTE)
    assert shuffle["params"] == counts(("table4", "ShuffleNet"))["params"]
