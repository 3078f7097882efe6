"""The bad-input matrix: each wrong input gives one message naming the culprit, the documented exit code,
no traceback, and leaves a results folder prepared beforehand byte-identical (README, "Reliability")."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import numpy as np
import pytest
import torch
from PIL import Image

from benchmark.cli import main
from benchmark.datasets import clear_cache, get_folds
from benchmark.datasets.synthetic import ensure_synthetic

REPO_ROOT = Path(__file__).resolve().parents[1]
TINY = f"test-bad-inputs-{uuid.uuid4().hex[:8]}"
PLUGIN = f'''
from torch import nn
from models import register_model


@register_model("{TINY}", family="test")
def tiny(num_classes=2, in_channels=3):
    return nn.Conv2d(in_channels, num_classes, 1)


class Sqrt(nn.Module):
    def forward(self, x):
        return x.sqrt()  # NaN wherever x < 0


class NanNet(nn.Module):
    def __init__(self, num_classes, in_channels):
        super().__init__()
        self.head, self.sqrt = nn.Conv2d(in_channels, num_classes, 1), Sqrt()

    def forward(self, x):
        return self.sqrt(self.head(x))


@register_model("{TINY}-nan", family="test")
def tiny_nan(num_classes=2, in_channels=3):
    return NanNet(num_classes, in_channels)


@register_model("{TINY}-one-class", family="test")
def tiny_one_class(num_classes=2, in_channels=3):
    return nn.Conv2d(in_channels, 1, 1)


@register_model("{TINY}-half", family="test")
def tiny_half(num_classes=2, in_channels=3):
    return nn.Conv2d(in_channels, num_classes, 1, stride=2)  # half-size logits, not declared low_res_logits


@register_model("{TINY}-aux", family="test", aux_weights=(1.0, 0.4))
def tiny_aux(num_classes=2, in_channels=3):
    return nn.Conv2d(in_channels, num_classes, 1)  # declares an auxiliary head it does not have
'''

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def plugin(tmp_path_factory) -> Path:
    """A plugin file registering a one-layer model (unregistered afterwards)."""
    from models import _registry, load_plugin

    path = tmp_path_factory.mktemp("plugin") / "bad_inputs_models.py"
    path.write_text(PLUGIN)
    load_plugin(str(path))
    yield path
    for name in (TINY, *(f"{TINY}-{kind}" for kind in ("nan", "one-class", "half", "aux"))):
        _registry._REGISTRY.pop(name, None)
    for key in [k for k in sys.modules if k.startswith("miniseg_plugin_bad_inputs_models_")]:
        del sys.modules[key]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, plugin) -> Path:
    """A data root (synthetic), maps of every fold, weights of every fold and a results folder to copy per case."""
    base = tmp_path_factory.mktemp("pristine")
    ensure_synthetic(base / "data")
    folds = get_folds("synthetic", base / "data")
    for k, ids in enumerate(folds, start=1):
        for slice_id in ids:
            mask = Image.open(base / "data/synthetic/tr_mask" / f"{slice_id}.png")  # a perfect map, on the masks' grid
            (base / "maps" / f"CrossVal{k}").mkdir(parents=True, exist_ok=True)
            mask.save(base / "maps" / f"CrossVal{k}" / f"{slice_id}.png")
        torch.save(torch.nn.Conv2d(3, 2, 1).state_dict(), base / f"w{k}.pt")
    _results(base / "results")
    return base


def _results(results: Path) -> None:
    """A results folder with a run, an evaluation and a profile record (hand-written, enough for the readers)."""
    fold = {"miou": 80.0, "sen": 70.0, "spc": 99.0, "dsc": 75.0, "hd": 9.0, "n_slices": 8}
    run = {"schema": "miniseg-bench/run/2", "dataset": "synthetic", "model": "unet", "fold": 0, "status": "done",
           "protocol": {"name": "smoke"}, "final": {"paper": fold, "strict": fold}, "history": []}
    _write(results / "runs/synthetic/unet/fold0/record.json", run)
    (results / "runs/synthetic/unet/fold0/per_slice.csv").write_text("id,paper_dsc\nsynth_00_0000,0.5\n")
    evaluation = {"schema": "miniseg-bench/eval/1", "dataset": "synthetic", "label": "maps", "policy": "paper",
                  "source": {"kind": "maps", "model": None}, "folds": [dict(fold, fold=k) for k in range(1, 6)],
                  "per_slice_csv": "maps.csv"}
    _write(results / "eval/synthetic/maps.json", evaluation)
    (results / "eval/synthetic/maps.csv").write_text("fold,id,paper_dsc\n1,synth_00_0000,0.5\n")
    _write(results / "profile/cpu/unet.json", {"schema": "miniseg-bench/profile/1", "model": "unet", "params": 10})


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def _snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- the damage each case does ---------------------------------------------------------------

def _slice(root: Path, fold: int = 0, index: int = 0) -> str:
    return get_folds("synthetic", root / "data")[fold][index]


def _png(path: Path, array: np.ndarray) -> None:
    Image.fromarray(array).save(path)


def remove_image(root: Path) -> str:
    path = root / "data/synthetic/tr_im" / f"{_slice(root)}.png"
    path.unlink()
    return str(path)


def garbage_image(root: Path) -> str:
    path = root / "data/synthetic/tr_im" / f"{_slice(root, 2)}.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return str(path)


def sixteen_bit_image(root: Path) -> str:
    path = root / "data/synthetic/tr_im" / f"{_slice(root, 1)}.png"
    Image.fromarray(np.full((128, 128), 1000, np.uint16)).save(path)
    return str(path)


def mask_three_labels(root: Path) -> str:
    path = root / "data/synthetic/tr_mask" / f"{_slice(root, 3)}.png"
    mask = np.zeros((128, 128), np.uint8)
    mask[:4, :4], mask[8:12, 8:12] = 1, 2
    _png(path, mask)
    return str(path)


def mask_wrong_size(root: Path) -> tuple[str, str]:
    path = root / "data/synthetic/tr_mask" / f"{_slice(root, 4)}.png"
    _png(path, np.zeros((64, 128), np.uint8))
    return str(path), str(root / "data/synthetic/tr_im" / f"{_slice(root, 4)}.png")


def slice_of_another_size(root: Path) -> tuple[str, str]:
    """Image and mask agree, at 64x64 where every other slice is 128x128: a resize would hide it. The error names
    the odd slice's image (--model stacks images first) or mask (--maps)."""
    slice_id = _slice(root, 1, 2)
    _png(root / "data/synthetic/tr_im" / f"{slice_id}.png", np.full((64, 64), 90, np.uint8))
    _png(root / "data/synthetic/tr_mask" / f"{slice_id}.png", np.zeros((64, 64), np.uint8))
    return f"/{slice_id}.png is 64x64", "slices differ in size"


def _map(root: Path, fold: int = 1, index: int = 0) -> Path:
    return root / "maps" / f"CrossVal{fold}" / f"{_slice(root, fold - 1, index)}.png"


def map_wrong_size(root: Path) -> str:
    path = _map(root, 2)
    _png(path, np.zeros((64, 64), np.uint8))
    return str(path)


def map_probabilities(root: Path) -> str:
    path = _map(root, 3)
    _png(path, np.tile(np.arange(256, dtype=np.uint8), (512, 2)))
    return str(path)


def map_garbage(root: Path) -> str:
    path = _map(root, 1)
    path.write_bytes(b"not a png")
    return str(path)


def map_in_wrong_fold(root: Path) -> str:
    stray = root / "maps/CrossVal1" / f"{_slice(root, 1)}.png"
    shutil.copy(_map(root, 2), stray)
    return str(stray)


def remove_map_folder(root: Path) -> str:
    shutil.rmtree(root / "maps")
    return str(root / "maps")


def remove_weights(root: Path) -> str:
    (root / "w3.pt").unlink()
    return str(root / "w3.pt")


def garbage_weights(root: Path) -> str:
    (root / "w1.pt").write_bytes(b"PK\x03\x04 broken zip")
    return str(root / "w1.pt")


def other_model_weights(root: Path) -> str:
    torch.save(torch.nn.Conv2d(3, 4, 1).state_dict(), root / "w1.pt")
    return "weight is (4, 3, 1, 1) in the file but (2, 3, 1, 1) in the model"


def nan_weights(root: Path) -> tuple[str, str]:
    conv = torch.nn.Conv2d(3, 2, 1)
    with torch.no_grad():
        conv.weight[0, :2] = float("nan")
    torch.save(conv.state_dict(), root / "w2.pt")
    return str(root / "w2.pt"), "'weight' holds 2 NaN of 6 values"


def nan_logit_weights(root: Path) -> tuple[str, str]:
    """Finite weights for the -nan model, whose sqrt makes NaN of every negative logit."""
    for k in range(1, 6):
        net = torch.nn.Module()
        net.head = torch.nn.Conv2d(3, 2, 1)
        with torch.no_grad():
            net.head.weight.copy_(torch.tensor([1.0, -1.0]).view(2, 1, 1, 1).expand(2, 3, 1, 1))
        torch.save(net.state_dict(), root / f"w{k}.pt")
    return str(root / "w1.pt"), "the output of module 'sqrt' (Sqrt)"


def _fail_writes_under(monkeypatch: pytest.MonkeyPatch, root: Path, target: str, code: int) -> None:
    """Make `target` ('torch.save', 'os.replace' or 'temp file') fail with OSError(code) inside root/results
    (torch.save after writing part of the file), as a full, read-only or no-longer-writable disk does."""
    results = str(root / "results")
    fault = OSError(code, os.strerror(code))
    if target == "torch.save":
        def save(obj, handle, *args, **kwargs):
            if isinstance(handle, str | Path) or not str(handle.name).startswith(results):
                return real(obj, handle, *args, **kwargs)
            handle.write(b"half a checkpoint")
            raise fault
        real = torch.save
        monkeypatch.setattr(torch, "save", save)
    elif target == "os.replace":
        def replace(src, dst, *args, **kwargs):
            if str(dst).startswith(results):
                raise fault
            return real(src, dst, *args, **kwargs)
        real = os.replace
        monkeypatch.setattr(os, "replace", replace)
    else:  # creating an atomic write's temp file
        def open_file(path, flags, *args, **kwargs):
            if str(path).startswith(results) and str(path).endswith(".tmp") and flags & os.O_CREAT:
                raise fault
            return real(path, flags, *args, **kwargs)
        real = os.open
        monkeypatch.setattr(os, "open", open_file)


def disk_full_mid_checkpoint(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    _fail_writes_under(monkeypatch, root, "torch.save", errno.ENOSPC)


def disk_read_only(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    _fail_writes_under(monkeypatch, root, "os.replace", errno.EROFS)


def write_permission_lost(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    _fail_writes_under(monkeypatch, root, "temp file", errno.EACCES)


def own_png_source(root: Path) -> str:
    """A folder of PNG slices of six patients, to `prepare` as a dataset of one's own."""
    from test_own_data import write_png_source

    write_png_source(root / "own_source")
    return ""


def fail_slice_writes(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> list[Path]:
    """`prepare` of a dataset of one's own: writing a slice under `folder` fails with OSError(code) after the first
    one, as a disk that fills up or turns read-only does; returns the list of slices written."""
    import benchmark.datasets.prepare_user as prepare_user

    real, written = prepare_user._save_png, []

    def save(array, path):
        if str(path).startswith(str(folder)) and written:
            raise OSError(code, os.strerror(code), str(path))
        written.append(path)
        real(array, path)
    monkeypatch.setattr(prepare_user, "_save_png", save)
    return written


def data_root_full(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    fail_slice_writes(monkeypatch, root / "own_root", errno.ENOSPC)


def plugin_syntax_error(root: Path) -> str:
    (root / "broken_plugin.py").write_text("def oops(:\n")
    return str(root / "broken_plugin.py")


def plugin_raises(root: Path) -> str:
    (root / "raising_plugin.py").write_text("raise RuntimeError('no GPU driver here')\n")
    return "no GPU driver here"


def corrupt_archive(root: Path) -> str:
    (root / "datasets.zip").write_bytes(b"PK\x03\x04 not really a zip")
    return str(root / "datasets.zip")


def truncate_record(root: Path) -> str:
    path = root / "results/runs/synthetic/unet/fold0/record.json"
    path.write_text(path.read_text()[:40])
    return str(path)


def foreign_eval(root: Path) -> str:
    path = root / "results/eval/synthetic/other.json"
    _write(path, {"schema": "someone-else/1", "rows": []})
    return str(path)


def record_as_list(root: Path) -> str:
    path = root / "results/runs/synthetic/miniseg/fold0/record.json"
    path.parent.mkdir(parents=True)
    path.write_text("[1, 2, 3]")
    return str(path)


def eval_csv_wrong_columns(root: Path) -> str:
    path = root / "results/eval/synthetic/maps.csv"
    path.write_text("a,b\n1,2\n")
    return str(path)


def nothing(root: Path) -> str:
    return ""


@dataclass(frozen=True)
class Case:
    """One bad input: what to break, the command, the exit code and the text that must name the culprit."""

    name: str
    damage: Callable[[Path], Union[str, tuple[str, ...]]]  # the culprit's text(s) ("" when `culprit` says it)
    argv: tuple[str, ...]
    code: int
    culprit: str | tuple[str, ...] = ""
    warning: bool = False  # the culprit is named as a warning and the command goes on
    fault: Callable[[pytest.MonkeyPatch, Path], None] | None = None  # a fault of the machine, patched in


TRAIN = ("train", "--models", "miniseg", "--datasets", "synthetic", "--folds", "0", "--protocol", "smoke",
         "--data-root", "{root}/data", "--results", "{root}/results", "--no-progress")
EVAL_MAPS = ("evaluate", "--dataset", "synthetic", "--data-root", "{root}/data", "--results", "{root}/results",
             "--maps", "{root}/maps", "--label", "new")
EVAL_WEIGHTS = ("evaluate", "--dataset", "synthetic", "--data-root", "{root}/data", "--results", "{root}/results",
                "--model", TINY, "--weights", "{root}/w{{fold}}.pt", "--label", "new", "--precision", "float32")
TRAIN_TINY = TRAIN[:2] + (TINY,) + TRAIN[3:9] + ("--set", "epochs=1", "--device", "cpu") + TRAIN[9:]
RUN_FOLDER = f"{{root}}/results/runs/synthetic/{TINY}/fold0"
PREDICT = ("predict", "--model", TINY, "--weights", "{root}/w2.pt", "--input", "{root}/data/synthetic/tr_im",
           "--out", "{root}/results/predicted", "--mean", "0.5", "--std", "0.25", "--batch-size", "2")


def _with_model(argv: tuple[str, ...], model: str) -> tuple[str, ...]:
    """`argv` with the value after --model or --models replaced by `model`."""
    at = next(i for i, a in enumerate(argv) if a in ("--model", "--models")) + 1
    return argv[:at] + (model,) + argv[at + 1:]

CASES = [
    Case("data: dataset folder missing", nothing, TRAIN[:4] + ("CT100",) + TRAIN[5:], 1, "COVID-19-CT100"),
    Case("data: a slice of the folds missing", remove_image, TRAIN, 1),
    Case("data: unreadable image PNG", garbage_image, EVAL_WEIGHTS, 1),
    Case("data: 16-bit image", sixteen_bit_image, EVAL_WEIGHTS, 1),
    Case("mask: three labels", mask_three_labels, EVAL_MAPS, 1),
    Case("mask: size differs from its image", mask_wrong_size, EVAL_WEIGHTS, 1),
    Case("mask: size differs from its image (--maps)", mask_wrong_size, EVAL_MAPS, 1),
    Case("mask: one slice of another size (--maps)", slice_of_another_size, EVAL_MAPS, 1),
    Case("mask: one slice of another size (--model)", slice_of_another_size, EVAL_WEIGHTS, 1),
    Case("maps: folder missing", remove_map_folder, EVAL_MAPS, 1),
    Case("maps: wrong size", map_wrong_size, EVAL_MAPS, 1),
    Case("maps: probability map", map_probabilities, EVAL_MAPS, 1),
    Case("maps: unreadable PNG", map_garbage, EVAL_MAPS, 1),
    Case("maps: slice of another fold", map_in_wrong_fold, EVAL_MAPS, 1),
    Case("weights: a fold's file missing", remove_weights, EVAL_WEIGHTS, 1),
    Case("weights: damaged file", garbage_weights, EVAL_WEIGHTS, 1),
    Case("weights: another model's", other_model_weights, EVAL_WEIGHTS, 1),
    Case("numbers: NaN in a fold's weights", nan_weights, EVAL_WEIGHTS, 1),
    Case("numbers: NaN logits from finite weights", nan_logit_weights, _with_model(EVAL_WEIGHTS, f"{TINY}-nan"), 1),
    Case("numbers: NaN in the weights (predict)", nan_weights, PREDICT, 1),
    Case("numbers: NaN logits from finite weights (predict)", nan_logit_weights,
         _with_model(PREDICT, f"{TINY}-nan")[:4] + ("{root}/w1.pt",) + PREDICT[5:], 1),
    Case("contract: one class channel (train)", nothing, _with_model(TRAIN, f"{TINY}-one-class"), 1,
         "eval logits have 1 channel(s) (2, 1, 64, 64) for an input of (2, 3, 64, 64); expected (2, 2, 64, 64)"),
    Case("contract: logits at half the input's size (evaluate)", nothing, _with_model(EVAL_WEIGHTS, f"{TINY}-half"), 1,
         "eval logits are (2, 2, 32, 32) for an input of (2, 3, 64, 64); expected (2, 2, 64, 64)"),
    Case("contract: logits at half the input's size (predict)", nothing, _with_model(PREDICT, f"{TINY}-half"), 1,
         f"{TINY}-half: eval logits are (2, 2, 64, 64) for an input of (2, 3, 128, 128); expected (2, C>=2, 128, 128)"),
    Case("contract: fewer train outputs than aux_weights", nothing, _with_model(TRAIN, f"{TINY}-aux"), 1,
         "train mode returns 1 output(s) but its aux_weights (1.0, 0.4) expect 2"),
    Case("disk: full while writing a checkpoint (train)", nothing, TRAIN_TINY, 1,
         (RUN_FOLDER, "no space left on device", " free of "), fault=disk_full_mid_checkpoint),
    Case("disk: read-only file system (evaluate)", nothing, EVAL_MAPS, 1,
         ("{root}/results/eval/synthetic", "read-only file system", " free of "), fault=disk_read_only),
    Case("disk: write permission lost (train)", nothing, TRAIN_TINY, 1,
         (RUN_FOLDER, "permission denied", " free of "), fault=write_permission_lost),
    Case("disk: data root full (prepare)", own_png_source,
         ("prepare", "--dataset", "Hospital", "--source", "{root}/own_source", "--data-root", "{root}/own_root"), 1,
         ("{root}/own_root: no space left on device (writing ", " free of "), fault=data_root_full),
    Case("weights: pattern without {fold}", nothing, EVAL_WEIGHTS[:-5] + ("{root}/w1.pt",) + EVAL_WEIGHTS[-4:], 1,
         "must contain {fold}"),
    Case("plugin: file missing", nothing, ("list", "--plugin", "{root}/nowhere.py"), 1, "nowhere.py"),
    Case("plugin: syntax error", plugin_syntax_error, ("list", "--plugin", "{root}/broken_plugin.py"), 1),
    Case("plugin: fails at import", plugin_raises, ("list", "--plugin", "{root}/raising_plugin.py"), 1),
    Case("archive: corrupt zip", corrupt_archive,
         ("prepare", "--dataset", "CT100", "--source", "{root}/datasets.zip", "--data-root", "{root}/new"), 1),
    Case("results: truncated record.json (report)", truncate_record,
         ("report", "--results", "{root}/results", "--out", "{root}/reports"), 0, warning=True),
    Case("results: foreign JSON in eval/ (report)", foreign_eval,
         ("report", "--results", "{root}/results", "--out", "{root}/reports"), 0, warning=True),
    Case("results: record.json not an object (train --dry-run)", record_as_list, TRAIN + ("--dry-run",), 0,
         warning=True),
    Case("results: evaluation CSV with wrong columns (compare)", eval_csv_wrong_columns,
         ("compare", "--results", "{root}/results", "--dataset", "synthetic", "--resamples", "20"), None,
         warning=True),
    Case("results: folder missing (compare)", nothing,
         ("compare", "--results", "{root}/results/nowhere", "--dataset", "synthetic"), 1, "results/nowhere"),
    Case("results: --results is a file", nothing, TRAIN[:-2] + ("{root}/w1.pt", "--no-progress"), 1, "w1.pt"),
    Case("option: unknown --set field", nothing, TRAIN + ("--set", "epoch=3"), 1, "epoch"),
    Case("option: unknown preset", nothing, TRAIN[:8] + ("turbo",) + TRAIN[9:], 1, "turbo"),
    Case("option: fold out of range", nothing, TRAIN[:6] + ("7",) + TRAIN[7:], 1, "'7'"),
    Case("option: unknown dataset", nothing, TRAIN[:4] + ("CT101",) + TRAIN[5:], 1, "CT101"),
    Case("option: unknown model", nothing, TRAIN[:2] + ("minisegg",) + TRAIN[3:], 1, "minisegg"),
    Case("option: --batch-size 0", nothing, EVAL_WEIGHTS + ("--batch-size", "0"), 1, "--batch-size"),
]


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    """A fresh copy of the pristine inputs for one case."""
    clear_cache()
    for name in ("data", "maps", "results"):
        shutil.copytree(pristine / name, tmp_path / name)
    for weights in pristine.glob("w*.pt"):
        shutil.copy(weights, tmp_path / weights.name)
    yield tmp_path
    clear_cache()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case: Case, root: Path, capsys, monkeypatch) -> None:
    culprit = case.damage(root) or case.culprit
    culprits = [c.replace("{root}", str(root)) for c in ((culprit,) if isinstance(culprit, str) else culprit)]
    before = _snapshot(root / "results")
    argv = [a.replace("{root}", str(root)).replace("{{fold}}", "{fold}") for a in case.argv]
    if case.fault is not None:
        case.fault(monkeypatch, root)
    code = main(argv)
    monkeypatch.undo()
    err = capsys.readouterr().err
    if case.code is not None:
        assert code == case.code, err
    assert all(c in err for c in culprits), err
    assert ("warning: " if case.warning else "error: ") in err, err
    assert "Traceback" not in err
    assert _snapshot(root / "results") == before, "the results folder changed"


def test_matrix_is_large_enough():
    assert len(CASES) >= 20
    # data, mask, maps, weights, numbers, contract, disk, plugin, archive, results, option
    assert len({c.name.split(":")[0] for c in CASES}) == 11


def test_no_traceback_out_of_process_and_debug_shows_it(tmp_path):
    (tmp_path / "broken.py").write_text("def oops(:\n")
    argv = [sys.executable, str(REPO_ROOT / "run_benchmark.py"), "list", "--plugin", str(tmp_path / "broken.py")]
    plain = subprocess.run(argv, capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert plain.returncode == 1 and "Traceback" not in plain.stderr + plain.stdout
    assert f"error: --plugin {tmp_path / 'broken.py'}" in plain.stderr
    debug = subprocess.run(argv + ["--debug"], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_genuine_bug_keeps_its_traceback(monkeypatch):
    import benchmark.commands.report as report

    def broken(args):  # a bug in our code, not the user's input
        raise TypeError("unsupported operand")

    monkeypatch.setattr(report, "run", broken)
    with pytest.raises(TypeError):
        main(["report", "--results", "nowhere"])
