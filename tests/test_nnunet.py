"""nnU-Net v2 in the benchmark: registry networks as nnU-Net builds them, and a real nnU-Net training in the runner.

The smoke run (one fold of the synthetic data at 32 px, 2 epochs x 2 steps) goes through nnU-Net's own
fingerprint, planning, preprocessing, trainer and validation; it is interrupted after its first epoch and
resumed. The whole module skips where nnunetv2 (the `nnunet` extra) is not installed, except the test of
that very situation.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from benchmark import frameworks
from benchmark.cli import main
from benchmark.datasets import get_folds, load_on_truth_grid, train_ids
from benchmark.evaluation.metrics import fold_summary, slice_metrics
from benchmark.preflight import TrainRequest, run_checks
from benchmark.protocol import PRESETS, get_protocol
from benchmark.recipes import resolve
from benchmark.training.backends import backend
from benchmark.training.runner import job_state, plan_jobs
from benchmark.training.train import TrainOptions, run_training
from models import create_model, get_model_info

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

CPU = TrainOptions(device="cpu", progress=False)


def _nnunet():
    """nnunetv2, or skip with the reason."""
    return pytest.importorskip("nnunetv2", reason="nnU-Net v2 is an optional extra: pip install '.[nnunet]'")


# --- the recipe: who trains, with what schedule, what --set may change -----------------------------------------

def test_nnunet_models_train_with_nnunet_under_paper_presets_and_with_ours_under_uniform():
    effective, exception = frameworks.resolve(PRESETS["paper"], "nnunet-2d", frameworks.FRAMEWORKS["nnunet"])
    assert (effective.trainer, effective.epochs, effective.steps_per_epoch) == ("nnunet", 1000, 250)
    assert exception["script"] == "nnunetv2/nnUNetTrainer" and exception["deviations"] == []
    assert effective.to_dict()["differs_from_preset"] == []  # nnU-Net's own schedule is not a user's change
    smoke = frameworks.framework_of("nnunet-2d", get_protocol("smoke"))
    assert smoke is not None and smoke.schedule("smoke") == (2, 2)
    uniform = get_protocol("uniform")
    assert frameworks.framework_of("nnunet-2d", uniform) is None
    assert frameworks.framework_of("miniseg", PRESETS["paper"]) is None
    from benchmark.training.nnunet import job

    assert backend(effective) is job.run and backend(uniform) is run_training


def test_set_epochs_and_steps_are_recorded_as_deviations_from_nnunets_schedule():
    requested = get_protocol("paper", ["epochs=3", "steps_per_epoch=5"])
    effective, exception = resolve(requested, "nnunet-2d")
    assert (effective.epochs, effective.steps_per_epoch) == (3, 5)
    assert effective.to_dict()["differs_from_preset"] == ["epochs", "steps_per_epoch"]
    assert len(exception["deviations"]) == 2 and "epochs=3 set with --set" in exception["text"]
    assert "(nnU-Net v2's under paper: 1000)" in exception["deviations"][0]


def test_our_protocol_records_keep_their_keys():
    """Records written before the framework fields existed still read as the same protocol."""
    stored = PRESETS["paper"].to_dict()
    assert "trainer" not in stored and "steps_per_epoch" not in stored


def test_set_fields_nnunet_does_not_take_are_refused_before_training():
    def problems(model, *assignments):
        return run_checks(TrainRequest("paper", assignments, (model,)))

    assert any("--set lr does not apply: nnU-Net v2 trains nnunet-2d" in p for p in problems("nnunet-2d", "lr=0.1"))
    assert any("steps_per_epoch does not apply" in p for p in problems("miniseg", "steps_per_epoch=3"))
    assert not [p for p in problems("nnunet-2d", "epochs=3", "steps_per_epoch=4", "base_size=64")
                if "does not apply" in p]
    with pytest.raises(KeyError, match="unknown protocol field"):
        get_protocol("paper", ["trainer=nnunet"])  # who trains is the recipe's decision, not a --set field


def test_child_environment_bounds_workers_by_the_cpus_and_never_compiles_on_cpu(tmp_path, monkeypatch):
    from benchmark.training.nnunet.job import child_env
    from benchmark.training.nnunet.workspace import Workspace

    workspace = Workspace.under(tmp_path, "synthetic", 32)
    env = child_env(workspace, tmp_path / "r", 1, 0, torch.device("cpu"), compile_model=True)
    assert (env["nnUNet_n_proc_DA"], env["nnUNet_def_n_proc"], env["nnUNet_compile"]) == ("0", "1", "false")
    assert env["nnUNet_raw"] == str(workspace.raw.resolve()) and env["OMP_NUM_THREADS"] == "1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert child_env(workspace, tmp_path, 4, 3, torch.device("cuda", 1), True)["CUDA_VISIBLE_DEVICES"] == "3"


def test_log_probabilities_resized_give_the_argmax_of_resized_logits(tmp_path):
    from benchmark.training.nnunet.job import probabilities_to_masks
    from models.layers import upsample_to

    logits = torch.randn(3, 2, 24, 24, generator=torch.Generator().manual_seed(0)) * 4
    for index, one in enumerate(logits):
        np.savez(tmp_path / f"s{index}.npz", probabilities=one.softmax(0)[:, None].numpy())
    masks = probabilities_to_masks(tmp_path, ["s0", "s1", "s2"], (40, 40))
    expected = upsample_to(logits.double(), (40, 40)).argmax(1) != 0
    assert masks.shape == (3, 40, 40) and (masks == expected.numpy()).mean() > 0.999  # float rounding at ties


# --- the registry: the network nnU-Net plans and builds -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", ["nnunet-2d", "nnunet-resenc-m-2d"])
def test_registry_network_is_the_one_nnunets_trainer_builds_from_the_plan(name):
    _nnunet()
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    from models.nnunet import DEFAULT_DS_OUTPUTS, deep_supervision_weights

    with torch.device("meta"):  # shapes only: nothing is allocated
        ours = create_model(name, in_channels=1)
        manager = PlansManager(ours.plans)
        theirs = nnUNetTrainer.build_network_architecture(manager, manager.get_configuration("2d"), 1, 2, True)
    assert type(ours.network) is type(theirs)
    shapes = {k: tuple(v.shape) for k, v in ours.network.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    config = ours.plans["configurations"]["2d"]
    assert config["patch_size"] == [512, 512] and ours.plans["experiment_planner_used"] == PLANNER_CLASSES[name]
    assert len(config["architecture"]["arch_kwargs"]["strides"]) - 1 == DEFAULT_DS_OUTPUTS
    assert get_model_info(name).aux_weights == deep_supervision_weights(DEFAULT_DS_OUTPUTS)


PLANNER_CLASSES = {"nnunet-2d": "ExperimentPlanner", "nnunet-resenc-m-2d": "nnUNetPlannerResEncM"}


def test_planning_leaves_no_nnunet_variable_behind():
    _nnunet()
    from models.nnunet import nnunet_paths

    before = {k: v for k, v in os.environ.items() if k.startswith("nnUNet_")}
    with nnunet_paths("/tmp/raw", "/tmp/pre"):
        assert os.environ["nnUNet_raw"] == "/tmp/raw" and os.environ["nnUNet_n_proc_DA"] != "0"
    assert {k: v for k, v in os.environ.items() if k.startswith("nnUNet_")} == before


def test_without_nnunetv2_a_one_line_error_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "nnunetv2", None)  # `import nnunetv2` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install '\.\[nnunet\]'"):
        create_model("nnunet-2d")
    results = tmp_path / "results"
    code = main(["train", "--models", "nnunet-2d", "--datasets", "synthetic", "--folds", "0", "--protocol", "smoke",
                 "--data-root", str(tmp_path / "data"), "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "error: nnunet-2d: nnU-Net v2 (the nnunetv2 package) is not installed: pip install '.[nnunet]'" in err
    assert err.count("error: ") == 1, err  # not also an output-contract failure of a network that cannot be built
    assert not (results / "runs").exists()
    code = main(["evaluate", "--dataset", "synthetic", "--data-root", str(tmp_path / "data"), "--model", "nnunet-2d",
                 "--weights", str(tmp_path / "w{fold}.pt"), "--results", str(results)])
    err = capsys.readouterr().err
    assert code == 1 and "error: --model nnunet-2d: nnU-Net v2 (the nnunetv2 package) is not installed" in err
    assert "input" not in err.split("error: --model nnunet-2d")[1].splitlines()[0]


# --- a real nnU-Net training through the runner ---------------------------------------------------------------

@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """Fold 0 of the synthetic data trained by nnU-Net under `smoke`: stopped after epoch 1, then resumed by
    `train`; returns (data root, results folder, the train command's exit code, the job's status and detail in
    between). Trained once per session: pytest-xdist workers share the first one's run (see `_once`)."""
    _nnunet()
    run = _once(tmp_path_factory, "nnunet-smoke", _train_smoke)
    return Path(run["data_root"]), Path(run["results"]), run["code"], run["between"]


def _train_smoke(folder: Path) -> dict:
    from benchmark.training.nnunet import job

    data_root, results = folder / "data", folder / "results"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the job's CPUs: one, so nnU-Net augments in-process
    try:
        [first] = plan_jobs(["nnunet-2d"], ["synthetic"], [0], get_protocol("smoke"), CPU, data_root, results)
        with pytest.raises(job.SessionEnded):
            job.run(first.model, first.dataset, 0, first.protocol, CPU, data_root, first.run_dir, stop_after_epoch=1)
        between = job_state(first)
        code = main(["train", "--models", "nnunet-2d", "--datasets", "synthetic", "--folds", "0", "--protocol",
                     "smoke", "--data-root", str(data_root), "--results", str(results), "--device", "cpu",
                     "--threads", "1", "--no-progress"])
    finally:
        torch.set_num_threads(threads)
    return {"data_root": str(data_root), "results": str(results), "code": code,
            "between": {"status": between.status, "detail": between.detail}}


def _once(tmp_path_factory, name: str, produce) -> dict:
    """`produce(folder)`'s JSON result, computed once per session: under pytest-xdist every worker's module fixture
    would train again, so they share the session's temporary root and the first worker's result (a file lock)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return produce(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent / name  # the session's root, above each worker's own
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = shared / "result.json"
        if not result.is_file():  # a worker that failed left no result: the next one trains in a folder of its own
            folder = shared / worker
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            result.write_text(json.dumps(produce(folder)))
        return json.loads(result.read_text())


def _fold_dir(results: Path) -> Path:
    return results / "runs" / "synthetic" / "nnunet-2d" / "fold0"


@pytest.mark.slow
def test_smoke_run_resumes_the_interrupted_fold_and_writes_a_done_record(smoke):
    data_root, results, code, between = smoke
    assert between == {"status": "partial", "detail": "epoch 1/2"}
    assert code == 0
    record = json.loads((_fold_dir(results) / "record.json").read_text())
    assert record["schema"] == "miniseg-bench/run/2" and record["status"] == "done" and record["error"] is None
    assert record["resumed_from_epoch"] == 1 and [h["epoch"] for h in record["history"]] == [1, 2]
    assert record["iterations"] == 4 and record["protocol"]["trainer"] == "nnunet"
    assert record["protocol_exception"]["script"] == "nnunetv2/nnUNetTrainer"
    nnunet = record["nnunet"]
    assert nnunet["version"] == version("nnunetv2")
    plan = nnunet["plan"]
    assert plan["patch_size"] == [32, 32] and plan["features_per_stage"][0] == 32 and plan["n_stages"] >= 2
    assert plan["batch_size"] >= 2 and plan["normalization_schemes"] == ["CTNormalization"]
    assert 0.0 <= nnunet["validation_dice"] <= 1.0
    # our schedule table's full schedule is nnU-Net's own default, as its trainer reports it
    defaults = nnunet["defaults"]
    assert frameworks.FRAMEWORKS["nnunet"].schedule("paper") == (defaults["num_epochs"],
                                                                 defaults["num_iterations_per_epoch"])


@pytest.mark.slow
def test_nnunet_trained_on_exactly_our_training_slices_and_predicted_exactly_our_test_slices(smoke):
    data_root, results, _, _ = smoke
    folds = get_folds("synthetic", data_root)
    fold_dir = _fold_dir(results)
    cases = json.loads((fold_dir / "nnunet" / "fold_cases.json").read_text())  # what nnU-Net's own split gave it
    assert sorted(cases["train"]) == sorted(train_ids(folds, 0)) and sorted(cases["val"]) == sorted(folds[0])
    record = json.loads((fold_dir / "record.json").read_text())
    validation = Path(record["nnunet"]["output_folder"]) / "validation"
    assert sorted(p.stem for p in validation.glob("*.npz")) == sorted(folds[0])
    assert list(pd.read_csv(fold_dir / "per_slice.csv")["id"]) == folds[0]


@pytest.mark.slow
def test_test_slices_are_scored_by_our_metrics_from_nnunets_own_predictions(smoke):
    from benchmark.training.nnunet.job import probabilities_to_masks

    data_root, results, _, _ = smoke
    ids = get_folds("synthetic", data_root)[0]
    record = json.loads((_fold_dir(results) / "record.json").read_text())
    validation = Path(record["nnunet"]["output_folder"]) / "validation"
    # read at nnU-Net's own grid, the probabilities give nnU-Net's own exported segmentation
    ours_at_32 = probabilities_to_masks(validation, ids, (32, 32))
    theirs = np.stack([np.asarray(Image.open(validation / f"{i}.png")) > 0 for i in ids])
    assert (ours_at_32 == theirs).all()
    truth = load_on_truth_grid("synthetic", data_root, ids, masks_only=True).masks
    pred = probabilities_to_masks(validation, ids, tuple(truth.shape[-2:]))
    assert truth.shape == (8, 128, 128)  # scored on the ground truth's grid, not at the 32 px nnU-Net saw
    recomputed = slice_metrics(pred, truth, ids)
    stored = pd.read_csv(_fold_dir(results) / "per_slice.csv")
    np.testing.assert_allclose(stored["paper_dsc"], recomputed["paper_dsc"])
    assert record["final"]["paper"]["dsc"] == pytest.approx(fold_summary(recomputed)["paper"]["dsc"])
    maps = results / "runs" / "synthetic" / "nnunet-2d" / "maps" / "CrossVal1"
    assert sorted(p.stem for p in maps.glob("*.png")) == sorted(ids)
    saved = np.stack([np.asarray(Image.open(maps / f"{i}.png")) > 0 for i in ids])
    assert (saved == pred).all()  # the scored masks, on the ground truth's grid where evaluate --maps scores them


@pytest.mark.slow
def test_planned_network_parameters_equal_what_nnunet_trained(smoke):
    _, results, _, _ = smoke
    record = json.loads((_fold_dir(results) / "record.json").read_text())
    plans = Path(record["nnunet"]["workspace"]) / "nnUNet_preprocessed" / "Dataset001_synthetic" / "nnUNetPlans.json"
    with torch.device("meta"):
        ours = create_model("nnunet-2d", plans=plans, in_channels=record["nnunet"]["input_channels"])
    assert sum(p.numel() for p in ours.parameters()) == record["nnunet"]["network_params"]
    from models.nnunet import deep_supervision_weights

    weights = record["nnunet"]["deep_supervision_weights"]  # nnU-Net's loss wrapper's, read in its process
    assert weights == pytest.approx(deep_supervision_weights(len(weights)))


@pytest.mark.slow
def test_finished_job_is_skipped_and_compare_and_report_read_it(smoke, capsys):
    data_root, results, _, _ = smoke
    capsys.readouterr()
    assert main(["train", "--models", "nnunet-2d", "--datasets", "synthetic", "--folds", "0", "--protocol", "smoke",
                 "--data-root", str(data_root), "--results", str(results), "--json", "--no-progress"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "skipped"
    from benchmark.evaluation.comparison import load_cases
    from benchmark.reporting.load import load_results
    from benchmark.reporting.tables import accuracy_table

    [cases] = [c for c in load_cases(results, "synthetic") if c.name == "nnunet-2d"]
    assert cases.folds == (0,) and len(cases.frame) == 8
    _, rows = accuracy_table("synthetic", load_results(results))
    [row] = [r for r in rows if r["entry"] == "nnunet-2d"]
    record = json.loads((_fold_dir(results) / "record.json").read_text())
    assert row["n_folds"] == 1 and row["dsc_mean"] == pytest.approx(record["final"]["paper"]["dsc"])


def test_evaluate_model_of_an_nnunet_job_points_to_its_maps(tmp_path, capsys):
    """nnU-Net's jobs keep nnU-Net's checkpoints, not last.pt: `evaluate --model` says where their maps are."""
    _nnunet()
    argv = ["evaluate", "--dataset", "synthetic", "--data-root", str(tmp_path / "data"), "--model", "nnunet-2d",
            "--weights", str(tmp_path / "results/runs/synthetic/nnunet-2d/fold{fold0}/last.pt"),
            "--results", str(tmp_path / "results")]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert f"--maps {tmp_path / 'results' / 'runs' / 'synthetic' / 'nnunet-2d' / 'maps'}" in err
    assert "nothing was evaluated" in err and not (tmp_path / "results" / "eval").exists()
    argv[argv.index("nnunet-2d")] = "miniseg"  # a model of ours: no such hint
    assert main(argv) == 1
    assert "--maps" not in capsys.readouterr().err


def test_a_full_disk_stops_the_nnunet_grid_like_ours(tmp_path, monkeypatch):
    """A StorageFailure inside an nnU-Net job is re-raised (the grid stops), not written as a failed record."""
    _nnunet()
    from benchmark.errors import StorageFailure
    from benchmark.training.nnunet import job

    def full(*args, **kwargs):
        raise StorageFailure(f"{tmp_path}: no space left on device")

    monkeypatch.setattr(job, "prepare_workspace", full)
    [first] = plan_jobs(["nnunet-2d"], ["synthetic"], [0], get_protocol("smoke"), CPU, tmp_path / "data",
                        tmp_path / "results")
    with pytest.raises(StorageFailure):
        job.run(first.model, first.dataset, 0, first.protocol, CPU, tmp_path / "data", first.run_dir)
    assert not (first.run_dir / "record.json").exists()
