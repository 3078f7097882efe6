"""Patients across folds: the patient maps, P20's known leak, the grouped split and the `folds` command."""
from __future__ import annotations

import json

import pytest

from benchmark.cli import main
from benchmark.datasets import DATASET_NAMES, get_folds, patient_map
from benchmark.datasets.folds import fold_leaks, grouped_from
from benchmark.records import parse_results_key, results_key


def test_patient_of_each_dataset():
    assert patient_map("P20").patient_of("radiopaedia_10_85902_1_0012") == "radiopaedia_10_85902"
    assert patient_map("P20").patient_of("radiopaedia_10_85902_3_0100") == "radiopaedia_10_85902"
    assert patient_map("P20").volume_of("radiopaedia_10_85902_3_0100") == "radiopaedia_10_85902_3"
    assert patient_map("P20").patient_of("coronacases_001_0045") == "coronacases_001"
    assert patient_map("P9").patient_of("3_0120") == "3"
    assert patient_map("P1110").patient_of("study_0255_0010") == "study_0255"
    assert patient_map("synthetic").patient_of("synth_07_0002") == "synth_07"
    assert patient_map("CT100").patient_of("tr_im_0007") == "tr_im_0007" and patient_map("CT100").volume_of("x") is None
    assert "JunMa11/COVID-19-CT-Seg-Benchmark/issues/3" in patient_map("P20").source


def test_p20_paper_folds_leak_one_patient_and_the_grouped_split_does_not():
    pmap = patient_map("P20")
    leaks = fold_leaks(get_folds("P20"), pmap.patient_of)
    assert list(leaks) == ["radiopaedia_10_85902"] and sorted(leaks["radiopaedia_10_85902"]) == [1, 3]
    grouped = get_folds("P20", split="grouped")
    assert fold_leaks(grouped, pmap.patient_of) == {}
    assert grouped == grouped_from(get_folds("P20"), pmap.patient_of)  # the committed file is what the rule gives
    assert [len(f) for f in grouped] == [363, 434 + 14, 491, 187 - 14, 369]


@pytest.mark.parametrize("name", DATASET_NAMES)
def test_grouped_split_keeps_every_slice_and_leaks_nothing(name: str):
    paper, grouped = get_folds(name), get_folds(name, split="grouped")
    assert sorted(sum(grouped, [])) == sorted(sum(paper, []))
    assert fold_leaks(grouped, patient_map(name).patient_of) == {}


def test_results_keys():
    assert results_key("P20", "grouped") == "P20-grouped" and results_key("P20") == "P20"
    assert parse_results_key("P20-grouped") == ("P20", "grouped") and parse_results_key("CT100") == ("CT100", "paper")
    with pytest.raises(ValueError, match="unknown split"):
        get_folds("P20", split="random")


def test_folds_check_cli(capsys):
    assert main(["folds", "--dataset", "P20", "--check"]) == 1
    out = capsys.readouterr().out
    assert "radiopaedia_10_85902" in out and "radiopaedia_10_85902_1" in out and "radiopaedia_10_85902_3" in out
    assert main(["folds", "--dataset", "P20", "--check", "--split", "grouped", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["patients_in_several_folds"] == [] and sum(f["slices"] for f in data["folds"]) == 1844
    assert main(["folds", "--dataset", "CT100", "--check"]) == 0
    assert "no patient id" in capsys.readouterr().out
