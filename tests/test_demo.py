"""The demo: train, profile and report on the synthetic dataset (tiny settings; `make demo` runs the full one)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from benchmark.cli import build_parser, main


def test_demo_defaults_stay_out_of_committed_results():
    args = build_parser().parse_args(["demo"])
    assert args.results == Path("demo-output/results") and args.out == Path("demo-output/reports")
    assert args.models.split(",")[0] == "miniseg" and len(args.models.split(",")) == 3
    assert args.protocol == "fast" and args.folds == "0-4"


def test_demo_recipe_and_parallel_cpu_workers():
    from benchmark.commands.demo import train_argv

    parser = build_parser()
    cpu = parser.parse_args(["demo", "--device", "cpu", "--workers", "2"])
    argv = train_argv(cpu, "synthetic")
    train = parser.parse_args(argv)  # the train command accepts what the demo passes
    assert train.executor == "pool" and train.workers == 2 and train.cpus_per_job == 1
    assert {"epochs=8", "batch_size=2", "lr=0.004", "eval_every=2", "base_size=96"} <= set(train.overrides)
    assert train.checkpoint_every == 60
    single = parser.parse_args(train_argv(parser.parse_args(["demo", "--device", "cpu", "--workers", "1"]), "synthetic"))
    assert single.executor == "local"


def test_demo_picks_ct100_only_where_the_data_root_has_it(tmp_path: Path):
    from benchmark.commands.demo import choose_dataset

    assert choose_dataset(None, tmp_path) == "synthetic"
    (tmp_path / "COVID-19-CT100").mkdir()
    assert choose_dataset(None, tmp_path) == "CT100"
    assert choose_dataset("P9", tmp_path) == "P9"


def test_demo_evaluates_released_maps_only_where_present(tmp_path: Path):
    from benchmark.commands.demo import evaluate_argv, released_maps

    assert released_maps("CT100", tmp_path) is None
    maps = tmp_path / "miniseg-release" / "SegMaps" / "COVID-19-CT100"
    maps.mkdir(parents=True)
    assert released_maps("CT100", tmp_path) == maps and released_maps("synthetic", tmp_path) is None
    args = build_parser().parse_args(["demo", "--data-root", str(tmp_path), "--results", "r"])
    argv = evaluate_argv(args, "CT100", maps)
    assert build_parser().parse_args(argv).maps == str(maps)  # the evaluate command accepts what the demo passes


@pytest.mark.slow
def test_demo_smoke_writes_records_and_report(tmp_path: Path, capsys: pytest.CaptureFixture):
    results, out = tmp_path / "results", tmp_path / "reports"
    code = main([
        "demo", "--data-root", str(tmp_path / "data"), "--results", str(results), "--out", str(out),
        "--models", "miniseg,enet", "--protocol", "smoke", "--folds", "0-1", "--set", "epochs=1",
        "--size", "64", "--profile-size", "64", "--device", "cpu", "--threads", "1", "--workers", "1",
    ])
    assert code == 0
    stdout = capsys.readouterr().out
    assert stdout.rstrip().splitlines()[-1] == f"report: {out / 'index.html'}"
    for model in ("miniseg", "enet"):
        for fold in (0, 1):
            record = json.loads((results / "runs" / "synthetic" / model / f"fold{fold}" / "record.json").read_text())
            assert record["status"] == "done" and record["protocol"]["base_size"] == 64
        profiles = list((results / "profile").glob(f"*/{model}.json"))
        assert len(profiles) == 1 and json.loads(profiles[0].read_text())["input_size"] == [3, 64, 64]
    rows = list(csv.DictReader((out / "tables" / "table5_accuracy.csv").open()))
    ours = {r["entry"]: r for r in rows if r["dataset"] == "synthetic"}
    assert set(ours) == {"miniseg", "enet"}
    for row in ours.values():
        assert row["n_folds"] == "2" and 0.0 <= float(row["dsc_mean"]) <= 100.0 and row["dsc_paper"] == ""
    assert (out / "figures" / "training_curves_synthetic.png").is_file()
    table4 = list(csv.DictReader((out / "tables" / "table4_efficiency.csv").open()))
    mini = next(r for r in table4 if r["model"] == "miniseg")
    assert mini["params"] == "82912" and mini["input_size"] == "64"
