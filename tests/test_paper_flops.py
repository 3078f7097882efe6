"""The release's FLOP convention (benchmark.profiling.paper_flops) on hand-made modules with known answers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark import paper
from benchmark.profiling.paper_flops import count_paper_flops, leaf_registrations, paper_flops_of
from models import create_model


def ops(model: nn.Module, size: int = 16, in_channels: int = 3, meta: bool = True) -> int:
    return count_paper_flops(model, size, in_channels, meta=meta).total


def test_conv_counts_macs_plus_one_per_output_for_a_bias():
    assert ops(nn.Conv2d(3, 8, 3, padding=1)) == 8 * (3 * 3 * 3 + 1) * 16 * 16
    assert ops(nn.Conv2d(3, 8, 3, padding=1, bias=False)) == 8 * 27 * 16 * 16
    grouped = nn.Conv2d(8, 12, (3, 1), stride=2, padding=(1, 0), groups=4, bias=False)
    assert ops(grouped, in_channels=8) == 12 * (3 * 1 * 2) * 8 * 8


def test_batchnorm_and_relu_count_one_per_input_element():
    net = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(inplace=True))
    assert ops(net) == 2 * 3 * 16 * 16


def test_pools_count_kernel_area_per_output_adaptive_pools_nothing():
    assert ops(nn.MaxPool2d(2)) == 3 * 4 * 8 * 8
    assert ops(nn.AvgPool2d((3, 3), stride=2, padding=1)) == 3 * 9 * 8 * 8
    assert ops(nn.MaxPool2d(2, return_indices=True)) == 3 * 4 * 8 * 8
    assert ops(nn.AdaptiveAvgPool2d(1)) == 0


class Tokens(nn.Module):
    """A Linear on a 2-D batch and on a token sequence (B, HW, C)."""

    def __init__(self, channels: int = 3) -> None:
        super().__init__()
        self.on_rows = nn.Linear(channels, 5)
        self.on_tokens = nn.Linear(channels, 7, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.on_rows(x.flatten(2).mean(2).expand(4, -1))
        return self.on_tokens(x.flatten(2).transpose(1, 2)).sum() + rows.sum()


def test_linear_counts_weights_times_rows_of_a_2d_input_else_once():
    assert ops(Tokens()) == 4 * (15 + 5) + 21


def test_uncounted_modules_and_functional_ops():
    net = nn.Sequential(
        nn.PReLU(3), nn.ReLU6(), nn.Upsample(scale_factor=2), nn.ConvTranspose2d(3, 3, 2, stride=2), nn.Dropout(),
        nn.Softmax(1),
    )
    assert ops(net) == 0


class Functional(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(nn.functional.conv2d(x, torch.ones(4, 3, 3, 3, device=x.device)))


def test_functional_ops_count_nothing():
    assert ops(Functional()) == 0


class Shared(nn.Module):
    """One conv held by two parents and one ReLU called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        self.branch = nn.Sequential(self.conv)
        self.relu = nn.ReLU()
        self.alias = self.relu  # a second name under the same parent: children() yields it once

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.relu(self.conv(x)))


def test_a_module_held_by_two_parents_counts_at_each_registration_and_call():
    paths = [path for path, _ in leaf_registrations(Shared())]
    assert paths == ["conv", "branch.0", "relu"]
    conv, relu = 3 * 3 * 16 * 16, 3 * 16 * 16
    count = count_paper_flops(Shared(), 16)
    assert count.total == 2 * conv + 2 * relu
    assert count.by_module == {"conv": conv, "branch.0": conv, "relu": 2 * relu}
    assert count.by_kind == {"conv": 2 * conv, "relu": 2 * relu}


class ConvWithChild(nn.Conv2d):
    """A Conv2d that is not a leaf (it holds a module): the release's walk never hooks it."""

    def __init__(self) -> None:
        super().__init__(3, 3, 1)
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(super().forward(x))


def test_only_leaves_are_counted():
    assert ops(ConvWithChild()) == 3 * 16 * 16


def test_meta_and_real_forward_agree_and_leave_the_model_untouched():
    net = nn.Sequential(Shared(), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), Tokens(4))
    net.train()
    assert count_paper_flops(net, 16).device == "meta"
    assert ops(net, meta=True) == ops(net, meta=False) > 0
    tensors = [*net.parameters(), *net.buffers(), net[0].branch[0].weight]
    assert net.training and all(t.device.type == "cpu" for t in tensors)
    assert net[0].branch[0] is net[0].conv
    assert not any(m._forward_hooks for m in net.modules())


class NeedsData(nn.Module):
    """A forward that reads a value, which meta tensors cannot give: counted by a real forward."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return y * float(y.abs().max() > -1)


def test_falls_back_to_a_real_forward_when_meta_cannot_run():
    count = count_paper_flops(NeedsData(), 16)
    assert count.device == "cpu"
    assert count.total == 2 * 4 * 16 * 16


def test_miniseg_matches_the_authors_counter():
    expected = paper.authors_builds().set_index("method").loc["MiniSeg", "authors_counter_gflops"]
    count = paper_flops_of("miniseg")
    assert count.device == "meta"
    assert count.printed == f"{expected:.2f}"
    assert set(count.by_kind) == {"conv", "batchnorm", "pool"}  # MiniSeg's activations are PReLU


@pytest.mark.parametrize("size", [32, 64])
def test_conv_count_scales_with_the_input_area(size):
    net = nn.Conv2d(3, 8, 3, padding=1)
    assert ops(net, size) == 8 * 28 * size * size


class WithAux(nn.Module):
    """Our output contract: the auxiliary head runs in train mode only."""

    def __init__(self) -> None:
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2))
        self.aux = nn.Conv2d(2, 2, 1, bias=False)
        self.seen_bn_training: list[bool] = []

    def forward(self, x: torch.Tensor):
        y = self.main(x)
        self.seen_bn_training.append(self.main[1].training)
        return (y, self.aux(y)) if self.training else y


def test_aux_heads_are_counted_on_the_training_graph_with_inference_normalisation():
    net = WithAux().eval()
    main, aux = 2 * 3 * 16 * 16 + 2 * 16 * 16, 2 * 2 * 16 * 16
    assert count_paper_flops(net, 16, meta=False).total == main
    assert count_paper_flops(net, 16, meta=False, aux_heads=True).total == main + aux
    assert net.seen_bn_training == [False, False]
    assert not net.training and not net.main[1].training
    assert paper_flops_of("miniseg").printed == "0.50"
    assert paper_flops_of("miniseg").total > count_paper_flops(create_model("miniseg"), 512).total
