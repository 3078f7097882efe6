"""Deployment benchmarks: each model's forward on every runtime target beside torch eager, and the issue's
target for MiniSeg (its best backend >= 2.3x the release's eager forward on one CPU thread, same run, with
CT100 DSC within 0.1 of fp32 PyTorch).

  pytest benchmarks/test_deploy.py --bench-models miniseg --bench-size 512 --bench-device cpu --benchmark-autosave
  pytest benchmarks/test_deploy.py -k target -s        # the target alone (needs ../shared/data for the DSC part)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.deploy.agreement import agreement, eager_logits, reference_slice
from benchmark.deploy.backends import adapter, plan_targets
from benchmark.deploy.export import export_onnx, export_path
from benchmark.env import device_name
from benchmark.profiling import fit_size
from benchmark.profiling.timing import events_loop
from models import create_model, get_model_info

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
CPU = torch.device("cpu")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
TARGET_SPEEDUP = 2.3
TARGET_DSC_CHANGE = 0.1
TARGET_SIDE = 512
MIN_ARGMAX_AGREEMENT = 0.99  # a sanity floor on one slice (bf16 gave 99.84% on tr_im_0000 here); DSC is the check
RELEASED_WEIGHTS = SHARED_DATA / "miniseg-release" / "Pretrained" / "COVID-19-CT100" / "MiniSeg_CrossVal{fold}.pth"


def _targets() -> list:
    return plan_targets(["onnxruntime", "openvino"], CPU, None)


def _model(name: str) -> torch.nn.Module:
    """The registered model; MiniSeg with the released CT100 fold-1 weights where ../shared/data has them
    (random weights put many pixels near a tie, which says little about a reduced precision's agreement)."""
    model = create_model(name)
    weights = Path(str(RELEASED_WEIGHTS).format(fold=1))
    if name == "miniseg" and weights.is_file():
        from benchmark.evaluation.evaluate import load_weights

        load_weights(model, weights, CPU, name)
    return model.eval()


@pytest.fixture(scope="session")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Exported graphs by (model, side), made once per session."""
    out, cache = tmp_path_factory.mktemp("exports"), {}

    def get(name: str, side: int):
        if (name, side) not in cache:
            model = _model(name)
            cache[(name, side)] = (model, export_onnx(model, name, export_path(out, name, side), side))
        return cache[(name, side)]

    return get


@pytest.mark.parametrize("target", _targets(), ids=lambda t: f"{t.backend}-{t.precision}")
def test_backend_forward(benchmark, model_name: str, target, exports, bench_size: int, bench_batch: int) -> None:
    info = get_model_info(model_name)
    side = fit_size(bench_size, info.min_input_size, info.input_multiple)
    _, exported = exports(model_name, side)
    if not exported.ok:
        pytest.skip(f"{model_name} does not export: {exported.error}")
    session = adapter(target.backend).open(exported.path, target, torch.get_num_threads())
    batch = np.random.default_rng(0).standard_normal((bench_batch, 3, side, side), dtype=np.float32)
    session.run(batch)  # compilation for this batch size stays out of the timings
    benchmark.group = f"deploy {model_name} {side}px batch {bench_batch}"
    benchmark.extra_info.update(model=model_name, backend=target.backend, device=target.device,
                                precision=target.precision, execution_precision=session.execution_precision(),
                                runtime_version=session.runtime_version, cpu=device_name(CPU),
                                threads=torch.get_num_threads())
    output = benchmark(session.run, batch)
    assert output.shape == (bench_batch, 2, side, side)


def test_miniseg_best_backend_meets_the_target(exports, capsys) -> None:
    """One thread, same run: torch eager vs every runtime target of the released MiniSeg network."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, exported = exports("miniseg", TARGET_SIDE)
        assert exported.ok, exported.error
        x = torch.randn(1, 3, TARGET_SIDE, TARGET_SIDE)
        with torch.inference_mode():
            eager_ms = float(np.median(events_loop(lambda: model(x), CPU, 5, 20)))
        inputs, _ = reference_slice(TARGET_SIDE, SHARED_DATA)
        reference = eager_logits(model, inputs)
        figures = {}
        for target in _targets():
            session = adapter(target.backend).open(exported.path, target, 1)
            match = agreement(reference, session.run(inputs))
            batch = x.numpy()
            figures[target] = (eager_ms / float(np.median(events_loop(lambda: session.run(batch), CPU, 5, 20))),
                               match["argmax_agreement"], session.execution_precision())
    finally:
        torch.set_num_threads(before)
    best = max(figures, key=lambda t: figures[t][0])
    with capsys.disabled():
        shown = [f"{t.backend} {t.precision} (ran {p}): {s:.2f}x, argmax {100 * a:.3f}%"
                 for t, (s, a, p) in figures.items()]
        print(f"\ntorch eager {eager_ms:.1f} ms; " + "; ".join(shown))
    assert figures[best][0] >= TARGET_SPEEDUP, f"best backend {best.key}: {figures[best][0]:.2f}x < {TARGET_SPEEDUP}x"
    assert figures[best][1] >= MIN_ARGMAX_AGREEMENT
    if not SHARED_DATA.is_dir():
        pytest.skip("no ../shared/data: the CT100 DSC part of the target needs the released weights")
    _dsc_within_target(best)


def _dsc_within_target(best) -> None:
    """The best backend's CT100 DSC against fp32 PyTorch's, both from the released weights (all 5 folds)."""
    import tempfile

    from benchmark.deploy.evaluate import FoldDeployer
    from benchmark.evaluation.evaluate import evaluate_weights

    def dsc(deploy=None) -> float:
        result = evaluate_weights("CT100", SHARED_DATA, "miniseg", str(RELEASED_WEIGHTS), CPU, 10,
                                  dtype=torch.float32, deploy=deploy)
        return result.summary["paper"]["mean"]["dsc"]

    with tempfile.TemporaryDirectory() as workdir:
        deployed = dsc(FoldDeployer("miniseg", best, workdir, 1))
    change = deployed - dsc()
    assert abs(change) <= TARGET_DSC_CHANGE, f"{best.key}: DSC changes by {change:+.3f} from fp32 PyTorch"
