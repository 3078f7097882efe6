"""The output contract, checked for every registered model (a new model gets it for free)."""
from __future__ import annotations

import math

import pytest
import torch

from benchmark.contract import logits_problem, train_output_problems
from models import create_model, get_model_info, list_models


def _test_size(name: str) -> tuple[int, int]:
    """The smallest input the model declares, and a non-square partner one step larger."""
    info = get_model_info(name)
    step = max(info.input_multiple, 1)
    height = max(64, info.min_input_size)
    height = math.ceil(height / step) * step
    return height, height + step * max(1, 16 // step)


@pytest.fixture(scope="module", params=list_models())
def built(request):
    torch.manual_seed(0)
    try:
        return request.param, create_model(request.param, num_classes=3)
    except ImportError as err:  # a model of an optional extra (nnU-Net) where the extra is not installed
        pytest.skip(str(err))


def test_eval_output_is_logits_at_input_size(built):
    name, model = built
    height, width = _test_size(name)
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, height, width))
    assert isinstance(out, torch.Tensor), f"{name}: eval mode must return one tensor"
    assert out.shape == (2, 3, height, width)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert logits_problem(out, (2, 3, height, width), 3, get_model_info(name).low_res_logits) is None  # train's check


def test_train_outputs_match_aux_weights_and_backward_is_finite(built):
    name, model = built
    info = get_model_info(name)
    height, width = _test_size(name)
    model.train()
    out = model(torch.randn(2, 3, height, width))
    outs = out if isinstance(out, tuple) else (out,)
    assert len(outs) == len(info.aux_weights), f"{name}: {len(outs)} outputs vs aux_weights {info.aux_weights}"
    assert train_output_problems(out, (2, 3, height, width), 3, info.aux_weights, info.low_res_logits) == []
    for o in outs:
        assert o.shape == (2, 3, height, width)
    loss = sum(w * o.float().square().mean() for w, o in zip(info.aux_weights, outs))
    model.zero_grad(set_to_none=True)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads, f"{name}: no parameter received a gradient"
    assert all(torch.isfinite(g).all() for g in grads)


def test_smallest_declared_input_is_accepted(built):
    name, model = built
    info = get_model_info(name)
    side = math.ceil(info.min_input_size / max(info.input_multiple, 1)) * max(info.input_multiple, 1)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, side, side)).shape[-2:] == (side, side)
