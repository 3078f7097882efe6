"""Reports: tables, figures and index.html from fixture records, and the committed reports/ check."""
from __future__ import annotations

import csv
import io
import json
import statistics
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.reporting import write_report
from benchmark.reporting.figures import fastest_per_decade, png_source_tag
from benchmark.records import canonical_dataset
from benchmark.reporting.load import load_results
from benchmark.reporting.formatting import MISSING
from benchmark.reporting.render import latex_escape
from benchmark.reporting.tables import accuracy_file, efficiency_file, per_fold_file

REPO_ROOT = Path(__file__).resolve().parents[1]

# CT100 miniseg: DSC per fold 0..4 (paper policy); the other metrics follow from it
MINISEG_DSC = (74.0, 76.0, 78.0, 72.0, 80.0)
ENET_DSC = (70.0, 71.0, 69.0)
RELEASED_DSC = (75.0, 76.0, 77.0, 75.5, 76.05)
PAPER_NAMES = {"miniseg": "MiniSeg", "enet": "ENet"}  # as recorded in model_info (used where the registry lacks one)


def _metrics(dsc: float) -> dict:
    return {"dsc": dsc, "sen": dsc + 8, "spc": 97.5, "hd": 150 - dsc, "miou": dsc + 6}


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def write_run(results: Path, dataset: str, model: str, fold: int, dsc: float | None, epochs: int = 3) -> None:
    """A run record as the runner writes it (dsc None: a failed run)."""
    history = [{"epoch": e, "train_loss": 1.0 / e + fold * 0.01, "lr": 1e-3,
                "test": {"paper": {"dsc": dsc * e / epochs}} if dsc is not None else None}
               for e in range(1, epochs + 1)]
    record = {
        "schema": "miniseg-bench/run/1", "status": "done" if dsc is not None else "failed",
        "model": model, "dataset": dataset, "fold": fold, "seed": 0, "protocol": {"name": "fast"},
        "model_info": {"name": model, "paper_name": PAPER_NAMES.get(model)}, "timings": {"train_s": 1.0},
        "history": history if dsc is not None else [],
        "final": None if dsc is None else {"paper": _metrics(dsc), "strict": {**_metrics(dsc), "hd95": 20.0 + fold}},
        "error": None if dsc is not None else "loss diverged (NaN) at epoch 2",
    }
    _write(results / "runs" / dataset / model / f"fold{fold}" / "record.json", record)


def write_eval(results: Path) -> None:
    """The released maps of CT100, evaluated (folds numbered 1..5 as in the eval records)."""
    folds = [{"fold": k + 1, "n_slices": 20 if k < 4 else 19, **_metrics(d)} for k, d in enumerate(RELEASED_DSC)]
    _write(results / "eval" / "COVID-19-CT100" / "miniseg-released-maps.json", {
        "schema": "miniseg-bench/eval/1", "dataset": "COVID-19-CT100", "label": "MiniSeg (released maps)",
        "source": {"kind": "maps", "path": "SegMaps/COVID-19-CT100", "model": None}, "policy": "paper",
        "folds": folds, "mean": {}, "std": {},
        "strict": {"folds": [{**f, "hd95": 10.0} for f in folds]}, "per_slice_csv": "x.csv",
    })


def write_per_slice(results: Path, dataset: str, model: str, fold: int, shift: float) -> None:
    """A run's per_slice.csv: 20 CT100 slices per fold, DSC rising with the slice index, plus `shift`."""
    ids = [f"tr_im_{20 * fold + i:04d}" for i in range(20)]
    dsc = [0.5 + 0.02 * i + shift for i in range(20)]
    frame = pd.DataFrame({"id": ids, "tp": 50, "fp": 10, "fn": 10, "tn": 900, "paper_dsc": dsc, "paper_sen": dsc,
                          "paper_spc": 0.99, "paper_hd": [10.0 - 10 * d for d in dsc]})
    frame.to_csv(results / "runs" / dataset / model / f"fold{fold}" / "per_slice.csv", index=False)


def write_profile(results: Path, device: str, model: str, params: int, gmacs: float,
                  timings: list[dict], **flat: float) -> None:
    _write(results / "profile" / device / f"{model}.json", {
        "schema": "miniseg-bench/profile/1", "model": model, "paper_name": PAPER_NAMES.get(model), "params": params,
        "params_inference": params - 10, "params_active": params, "gmacs": gmacs, "gflops": 2 * gmacs,
        "input_size": [3, 512, 512], "unsupported_ops": {}, "environment": {"device_name": f"{device} name"},
        "timings": timings, **flat,
    })


@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A results folder: CT100 runs (miniseg 5 folds, enet 3 done + 1 failed), released maps, two devices."""
    results = tmp_path_factory.mktemp("results")
    for fold, dsc in enumerate(MINISEG_DSC):
        write_run(results, "CT100", "miniseg", fold, dsc)
    for fold, dsc in enumerate(ENET_DSC):
        write_run(results, "CT100", "enet", fold, dsc)
    write_run(results, "CT100", "enet", 3, None)
    for fold in (0, 1):
        write_run(results, "synthetic", "miniseg", fold, 90.0 + fold)
    write_eval(results)
    cpu_timing = [{"mode": "eager", "method": "perf_counter", "batch_size": 1, "throughput_img_s": 12.345}]
    write_profile(results, "cpu-test-2t", "miniseg", 82912, 0.5123, cpu_timing, gflops_paper=0.50174)
    write_profile(results, "cpu-test-2t", "enet", 360000, 2.0, cpu_timing)
    write_profile(results, "gpu-test", "miniseg", 82912, 0.5123, [], throughput_img_s_bs30=1837.04, gflops_paper=0.50174)
    write_profile(results, "cpu-test-2t", "mobilenet", 4274626, 4.1, [], gflops_paper=3.9, paper_counted="backbone",
                  params_backbone=3206976, gflops_paper_backbone=3.0187)
    write_profile(results, "cpu-test-2t", "unext", 1471506, 1.98, [], gflops_paper=1.9)
    return results


@pytest.fixture(scope="module")
def report_dir(fixture_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reports")
    write_report(fixture_results, out)
    return out


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def _md_row(md: str, section: str, first_cells: tuple[str, ...]) -> list[str]:
    """The cells of the Markdown row under `## <section>...` whose leading cells equal `first_cells`."""
    block = md.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    for line in block.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if tuple(cells[: len(first_cells)]) == first_cells:
            return cells
    raise AssertionError(f"no row starting {first_cells} under {section}")


def test_dataset_names_are_canonical():
    assert canonical_dataset("COVID-19-CT100") == "CT100"
    assert canonical_dataset("covid-19-p1110") == "P1110"
    assert canonical_dataset("Synthetic") == "synthetic"
    assert canonical_dataset("mine") == "mine"


def test_loader_aggregates_folds_and_keeps_failures(fixture_results: Path):
    results = load_results(fixture_results)
    by_key = {(e.dataset, e.label): e for e in results.entries}
    enet = by_key[("CT100", "enet")]
    assert [f.fold for f in enet.folds] == [0, 1, 2]
    assert enet.failed == ("fold 3: loss diverged (NaN) at epoch 2",)
    released = by_key[("CT100", "MiniSeg (released maps)")]
    assert released.paper_name == "MiniSeg" and released.kind == "maps"
    assert [f.fold for f in released.folds] == [0, 1, 2, 3, 4]  # CrossVal1..5 -> 0..4
    assert released.folds[4].n_slices == 19 and released.folds[0].strict["hd95"] == 10.0
    assert results.profile_for(released).model == "miniseg"  # maps: the profiled model of the same paper row
    assert by_key[("CT100", "miniseg")].paper_name == "MiniSeg"  # through the registry
    assert results.devices == ["cpu-test-2t", "gpu-test"]
    assert results.n_run_records == 11 and results.n_eval_records == 1


def test_table5_values_mean_std_paper_diff(fixture_results: Path):
    tf = accuracy_file(load_results(fixture_results))
    rows = {(r["dataset"], r["entry"]): r for r in tf.records}
    mine = rows[("CT100", "miniseg")]
    assert float(mine["dsc_mean"]) == pytest.approx(statistics.mean(MINISEG_DSC))
    assert float(mine["dsc_std"]) == pytest.approx(statistics.stdev(MINISEG_DSC))
    assert mine["dsc_paper"] == 75.91
    assert mine["dsc_diff"] == pytest.approx(statistics.mean(MINISEG_DSC) - 75.91)
    assert mine["hd_mean"] == pytest.approx(150 - statistics.mean(MINISEG_DSC))
    assert rows[("CT100", "enet")]["n_folds"] == 3 and rows[("CT100", "enet")]["method"] == "ENet"
    assert [t.key for t in tf.tables] == ["CT100", "P9", "P20", "P1110", "synthetic"]


def test_table5_markdown_shows_missing_not_zero_and_marks_best(report_dir: Path):
    md = (report_dir / "tables" / "table5_accuracy.md").read_text()
    unet = _md_row(md, "Table 5, CT100", ("U-Net",))
    assert unet[1:4] == [MISSING, MISSING, MISSING]  # no result of ours for U-Net
    assert unet[4:7] == [MISSING, "77.56", MISSING]  # mIoU: ours missing, paper 77.56, no diff
    assert "| 0.00" not in md and "| **0.00" not in md
    mine = _md_row(md, "Table 5, CT100", ("MiniSeg", "miniseg"))
    dsc_mean, dsc_std = statistics.mean(MINISEG_DSC), statistics.stdev(MINISEG_DSC)
    assert mine[3] == "5/5"
    # DSC is the 4th metric: columns 4 + 3*3 = 13 (ours), 14 (paper), 15 (diff)
    assert mine[13] == f"**{dsc_mean:.2f} ± {dsc_std:.2f}**"  # best of ours (76.00 > 75.91 > 70.00)
    assert mine[14] == "**75.91**"  # MiniSeg is the paper's best DSC on CT100
    assert mine[15] == f"{dsc_mean - 75.91:+.2f}"
    released = _md_row(md, "Table 5, CT100", ("MiniSeg", "MiniSeg (released maps)"))
    rel_mean, rel_std = statistics.mean(RELEASED_DSC), statistics.stdev(RELEASED_DSC)
    assert released[13] == f"{rel_mean:.2f} ± {rel_std:.2f}"
    # HD (5th metric, column 16): lower is better; hd = 150 - dsc, so the highest DSC has the best HD
    assert mine[16] == f"**{150 - dsc_mean:.2f} ± {dsc_std:.2f}**"
    assert released[16] == f"{150 - rel_mean:.2f} ± {rel_std:.2f}"
    enet = _md_row(md, "Table 5, CT100", ("ENet", "enet"))
    assert enet[3] == "3/5" and enet[16] == "80.00 ± 1.00"
    assert "enet: failed or unfinished fold 3: loss diverged" in md
    assert "The paper has no results on synthetic." in md
    syn = _md_row(md, "Table 5, synthetic", ("MiniSeg", "miniseg"))
    assert syn[3] == "2/5" and syn[5] == MISSING  # no paper value on synthetic


def test_table5_csv_missing_is_empty(report_dir: Path):
    rows = _csv_rows((report_dir / "tables" / "table5_accuracy.csv").read_text())
    unet = next(r for r in rows if r["dataset"] == "CT100" and r["method"] == "U-Net")
    assert unet["dsc_mean"] == "" and unet["dsc_paper"] == "68.3700" and unet["entry"] == ""
    assert {r["dataset"] for r in rows} == {"CT100", "P9", "P20", "P1110", "synthetic"}
    assert sum(1 for r in rows if r["dataset"] == "P9") == 32  # every paper row, even without ours


def test_table4_devices_and_paper_values(fixture_results: Path, report_dir: Path):
    tf = efficiency_file(load_results(fixture_results))
    table = tf.tables[0]
    assert table.headers[3:12] == ["Counted", "Params paper", "Params ours", "Params agree", "GFLOPs paper",
                                   "GFLOPs ours", "GFLOPs agree", "GMACs fvcore", "FPS paper"]
    assert table.headers[-2:] == ["img/s cpu-test-2t", "img/s gpu-test"]
    rows = {r[0].text + "/" + r[1].text: [c.text for c in r] for r in table.rows}
    assert rows["MiniSeg/miniseg"][3:] == ["network", "82.91K", "82.91K", "yes", "0.50", "0.50", "yes", "0.512",
                                           "516.3", "12.3 (bs1)", "1,837.0"]
    assert rows["ENet/enet"][3:10] == ["network", "0.36M", "0.36M", "yes", "1.92", MISSING, MISSING]
    assert rows["ENet/enet"][-1] == MISSING and rows["ENet/enet"][-2] == "12.3 (bs1)"
    # Table 4 counted MobileNet's backbone alone: ours is the backbone's; fvcore's GMACs stay the whole network's
    assert rows["MobileNet/mobilenet"][3:11] == ["backbone", "3.13M", "3.13M", "yes", "3.02", "3.02", "yes", "4.10"]
    assert rows["U-Net/" + MISSING][3:] == [MISSING, "8.43M", MISSING, MISSING, "65.73", MISSING, MISSING, MISSING,
                                            "57.3", MISSING, MISSING]
    assert "unext" not in {r[1].text for r in table.rows}
    assert any("release's own counter" in n for n in tf.notes) and any("GMACs fvcore" in n for n in tf.notes)
    csv_rows = _csv_rows((report_dir / "tables" / "table4_efficiency.csv").read_text())
    mini = next(r for r in csv_rows if r["model"] == "miniseg")
    assert mini["img_s_gpu-test"] == "1837.0400" and mini["batch_size_cpu-test-2t"] == "1"
    assert mini["paper_params"] == "82910" and mini["params"] == "82912" and mini["params_paper_unit"] == "82.91K"
    assert (mini["gflops_paper"], mini["gflops_agree"], mini["gmacs_fvcore"]) == ("0.5017", "yes", "0.5123")
    mobile = next(r for r in csv_rows if r["model"] == "mobilenet")
    assert (mobile["counted"], mobile["params"], mobile["params_counted"]) == ("backbone", "4274626", "3206976")
    md = (report_dir / "tables" / "table4_efficiency.md").read_text()
    assert "## Since the paper" in md


def test_table4_since_the_paper_section(fixture_results: Path):
    since = efficiency_file(load_results(fixture_results)).tables[1]
    assert since.key == "since_paper" and since.title.startswith("Since the paper")
    row = [c.text for c in since.rows[0]]
    assert row[:7] == ["unext", "1.44M", "1.90", "1.98", "1.47M", "0.570", "256x256"]


def test_miniseg_rows_table(report_dir: Path):
    md = (report_dir / "tables" / "table5_miniseg.md").read_text()
    mean, std = statistics.mean(MINISEG_DSC), statistics.stdev(MINISEG_DSC)
    assert _md_row(md, "MiniSeg", ("CT100", "miniseg"))[6] == f"{mean:.2f} ± {std:.2f} (75.91)"
    assert _md_row(md, "MiniSeg", ("P9",))[1:4] == [MISSING, MISSING, "— (85.31)"]
    assert _md_row(md, "MiniSeg", ("synthetic", "miniseg"))[6] == "90.50 ± 0.71 (—)"


def test_per_fold_table_has_both_policies(fixture_results: Path):
    tf = per_fold_file(load_results(fixture_results))
    rows = [r for r in tf.records if r["entry"] == "miniseg" and r["dataset"] == "CT100"]
    assert [(r["policy"], r["fold"]) for r in rows] == [(p, k) for p in ("paper", "strict") for k in range(5)]
    assert rows[2]["dsc"] == MINISEG_DSC[2] and rows[7]["hd95"] == 22.0 and rows[0]["hd95"] is None


def test_strict_table(report_dir: Path):
    md = (report_dir / "tables" / "table5_strict.md").read_text()
    header = _md_row(md, "Strict policy, CT100", ("Ours",))
    assert header[-1] == "HD95"
    released = _md_row(md, "Strict policy, CT100", ("MiniSeg (released maps)",))
    assert released[-1] == "**10.00 ± 0.00**"


def test_latex_is_escaped_and_balanced(report_dir: Path):
    assert latex_escape("a_b & 5% ± —") == r"a\_b \& 5\% $\pm$ --"
    tex = (report_dir / "tables" / "table5_accuracy.tex").read_text()
    assert tex.count(r"\begin{table}") == tex.count(r"\end{table}") == 5
    assert r"\textbf{75.91}" in tex and "±" not in tex and "—" not in tex
    for line in tex.splitlines():
        if line.endswith(r"\\") and "&" in line:
            assert line.count("&") - line.count(r"\&") == 19, line  # 20 columns in every Table 5 row (last: vs reference)


def test_figures_are_valid_pngs(report_dir: Path):
    names = sorted(p.name for p in (report_dir / "figures").glob("*.png"))
    assert names == ["dsc_vs_gmacs.png", "folds_dsc.png", "throughput_vs_params.png",
                     "training_curves_CT100.png", "training_curves_synthetic.png"]
    for name in names:
        with Image.open(report_dir / "figures" / name) as img:
            img.load()
            assert img.format == "PNG" and img.width >= 500 and img.height >= 350, name
            assert img.text.get("Source") == png_source_tag() and "Software" not in img.text
            # not a blank canvas: the plot draws in several colours
            assert len(img.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 20, name


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tables: list[str] = []
        self.imgs: list[str] = []
        self.links: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attr = dict(attrs)
        self.tags.append(tag)
        if tag == "table":
            self.tables.append(attr.get("id", ""))
        if tag == "img":
            self.imgs.append(attr.get("src", ""))
        for key in ("href", "src"):
            if attr.get(key):
                self.links.append(attr[key])


def test_index_html_structure(report_dir: Path):
    text = (report_dir / "index.html").read_text()
    parser = _PageParser()
    parser.feed(text)
    assert parser.tables == ["efficiency", "since_paper", "miniseg", "CT100", "P9", "P20", "P1110", "synthetic", "CT100", "synthetic",
                             "CT100", "synthetic"]
    assert sorted(parser.imgs) == sorted(f"figures/{p.name}" for p in (report_dir / "figures").glob("*.png"))
    for link in parser.links:  # no external resources: every reference is a local file or an anchor
        assert not link.startswith(("http:", "https:", "//", "data:")), link
        if not link.startswith("#"):
            assert (report_dir / link).is_file(), link
    assert "<link" not in text and "@import" not in text and "url(" not in text
    assert "<strong>75.91</strong>" in text and str(report_dir) not in text


def test_report_cli_is_deterministic_and_cleans_its_own_stale_files(
    fixture_results: Path, report_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
):
    stale, keep = tmp_path / "figures" / "old.png", tmp_path / "notes.txt"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    keep.write_text("mine")
    assert main(["report", "--results", str(fixture_results), "--out", str(tmp_path)]) == 0
    assert f"report: {tmp_path / 'index.html'}" in capsys.readouterr().out
    assert not stale.exists() and keep.read_text() == "mine"
    for path in sorted(report_dir.rglob("*")):  # same records, same bytes
        if path.is_file():
            assert (tmp_path / path.relative_to(report_dir)).read_bytes() == path.read_bytes(), path.name
    assert main(["report", "--results", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 1
    assert "error: results folder not found" in capsys.readouterr().err


def test_corrupt_record_is_named_and_left_out(tmp_path: Path, capsys):
    good = tmp_path / "eval" / "CT100" / "good.json"
    good.parent.mkdir(parents=True)
    good.write_text(json.dumps({"schema": "miniseg-bench/eval/1", "label": "good", "folds": []}))
    bad = tmp_path / "eval" / "CT100" / "broken.json"
    bad.write_text("{not json")
    assert [e.label for e in load_results(tmp_path).entries] == ["good"]
    assert f"warning: {bad}: not valid JSON" in capsys.readouterr().err
    other = tmp_path / "eval" / "CT100" / "other.json"
    other.write_text(json.dumps({"schema": "miniseg-bench/run/1"}))
    assert [e.label for e in load_results(tmp_path).entries] == ["good"]
    assert f"warning: {other}: schema" in capsys.readouterr().err


def _pixels_equal(a: Path, b: Path) -> bool:
    with Image.open(a) as ia, Image.open(b) as ib:
        return ia.size == ib.size and ia.convert("RGBA").tobytes() == ib.convert("RGBA").tobytes()


def test_committed_reports_match_committed_results(tmp_path: Path):
    """reports/ must be what `run_benchmark.py report` makes from results/ (regenerate and commit both)."""
    fix = ("rerun `python run_benchmark.py report` (results/ -> reports/) and commit reports/ "
           "together with the results/ it was made from")
    committed = REPO_ROOT / "reports"
    write_report(REPO_ROOT / "results", tmp_path)
    made = {p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file()}
    have = {p.relative_to(committed) for p in committed.rglob("*") if p.is_file() and p.name != ".gitkeep"}
    differ = [str(p) for p in sorted(made ^ have)]
    assert not differ, f"reports/ and what results/ gives differ in {len(differ)} file(s) ({differ[:4]}...): {fix}"
    for rel in sorted(made):
        new, old = tmp_path / rel, committed / rel
        if new.read_bytes() == old.read_bytes():
            continue
        assert rel.suffix == ".png", f"reports/{rel} differs from what results/ gives: {fix}"
        with Image.open(old) as img:
            drawn_by = img.text.get("Source")
        if drawn_by != png_source_tag():
            pytest.skip(f"reports/{rel} was drawn by {drawn_by!r}, this is {png_source_tag()!r}: pixels may differ")
        assert _pixels_equal(new, old), f"reports/{rel} differs from what results/ gives: {fix}"


def test_mean_std_is_the_sample_std():
    from benchmark.reporting.tables import mean_std

    assert mean_std([]) == (None, None)
    assert mean_std([1.0]) == (1.0, None)
    mean, std = mean_std([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3) and std == pytest.approx(statistics.stdev([1.0, 2.0, 4.0]))


def test_run_source_names_the_preset_and_what_was_changed():
    from benchmark.reporting.load import _protocol_name

    protocol = {"name": "fast", "base_size": 128, "epochs": 10, "differs_from_preset": ["base_size"]}
    assert _protocol_name(protocol) == "fast, base_size=128"
    assert _protocol_name({"name": "paper", "differs_from_preset": []}) == "paper"


def test_table5_ci_significance_and_statistics_figures(tmp_path: Path):
    """With per-slice results: Table 5 cells as mean [95% CI], the Holm column, CD and rank-stability figures."""
    results = tmp_path / "results"
    for model, shift in (("miniseg", 0.1), ("enet", -0.2), ("espnet", 0.0)):
        for fold in range(5):
            write_run(results, "CT100", model, fold, 60.0)
            write_per_slice(results, "CT100", model, fold, shift)
    out = tmp_path / "reports"
    write_report(results, out)
    md = (out / "tables" / "table5_accuracy.md").read_text()
    enet = _md_row(md, "Table 5, CT100", ("ENet", "enet"))
    cell = enet[13].strip("*")  # the three tie on the recorded fold means, so all are bold
    low, high = (float(v) for v in cell.split("[")[1].rstrip("]").split(", "))
    assert cell.startswith("60.00 [") and low < high  # the recorded fold mean and the per-slice bootstrap CI
    assert enet[-1].startswith("worse (p=") and _md_row(md, "Table 5, CT100", ("MiniSeg", "miniseg"))[-1] == "reference"
    for name in ("cd_CT100", "rank_stability_CT100"):
        with Image.open(out / "figures" / f"{name}.png") as image:
            assert image.size[0] > 300
    assert 'id="fig-cd_CT100"' in (out / "index.html").read_text()
    compared = json.loads((out / "stats" / "compare_CT100.json").read_text())
    assert compared["reference"] == "miniseg" and compared["models"]["enet"]["p_holm"] < 0.05


def test_throughput_figure_names_the_fastest_model_of_each_size_decade():
    points = [(8.3e4, 7.0), (3.0e4, 15.0), (5.0e4, 9.0), (1.6e6, 6.9), (2.4e6, 3.4), (1.3e8, 0.24)]
    assert fastest_per_decade(points) == {1, 3, 5}  # 10K-100K: 15 img/s; 1M-10M: 6.9; 100M+: the only one


def test_cd_diagram_crossbars_are_drawn_left_to_right_whatever_the_set_order():
    """scikit-posthocs draws a crossbar through its models in the order of a set of names, which Python's string
    hashing changes per process; sorted, the bar's pixels (and the committed PNG) no longer depend on it."""
    from matplotlib.figure import Figure

    from benchmark.reporting.figures import _sort_crossbar_points

    ax = Figure().add_subplot(1, 1, 1)
    bar = ax.plot([3.01, 2.99, 3.18, 3.0], [-1, -1, -1, -1])
    _sort_crossbar_points({"crossbars": [bar]})
    assert list(bar[0].get_xdata()) == [2.99, 3.0, 3.01, 3.18] and list(bar[0].get_ydata()) == [-1] * 4
    _sort_crossbar_points(None)  # a library version that returns nothing is left as drawn
