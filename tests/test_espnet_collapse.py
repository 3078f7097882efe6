"""Issue 16: the mechanism by which a 2-class ESPNet can get stuck predicting background everywhere.

ESPNet ends with a conv-BN-PReLU (`merge1`) feeding a bias-free 2x2 transposed-conv classifier, so at
each output pixel the foreground-minus-background logit is w . y (y: merge1's output at one input
pixel, w: the classifier's weight difference at one kernel tap), with no offset. A PReLU with slope
a <= 0 maps every input to y >= 0 (x for x > 0, a x >= 0 otherwise). When every channel's slope is
<= 0 and w <= 0 componentwise, w . y <= 0 for EVERY input: the pixel is background whatever the
image, and the earlier layers cannot undo it. Our earlier build had ONE shared slope there
(it used `ConvBNAct(act=nn.PReLU)`, which builds nn.PReLU() with a single parameter), so a single parameter
turning negative trapped both channels at once; the release (and now ours) has nn.PReLU(2): a
channel whose slope stays positive still takes both signs, and foreground stays reachable.
"""
from __future__ import annotations

import torch
from torch import nn

from models import create_model

TRAPPING_CLASSIFIER = (1.0, 0.5)  # classifier weight towards (background, foreground) from every channel and tap


def _espnet(slopes: tuple[float, float]) -> nn.Module:
    """The registered 2-class ESPNet (eval) with merge1's PReLU slopes and a classifier whose foreground weights
    are below its background weights everywhere (w <= 0 componentwise)."""
    torch.manual_seed(0)
    model = create_model("espnet").eval()
    prelu = model.merge1[2]
    assert isinstance(prelu, nn.PReLU) and prelu.num_parameters == 2
    with torch.no_grad():
        prelu.weight.copy_(torch.tensor(slopes))
        background, foreground = TRAPPING_CLASSIFIER
        model.classifier.weight[:, 0].fill_(background)  # ConvTranspose2d weight: (in, out, kh, kw)
        model.classifier.weight[:, 1].fill_(foreground)
    return model


def _foreground_and_classifier_input(model: nn.Module, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax == 1 mask of one random image, and what the classifier received."""
    seen: dict = {}
    handle = model.classifier.register_forward_hook(lambda m, inputs, out: seen.update(y=inputs[0]))
    torch.manual_seed(seed)
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
    handle.remove()
    return logits.argmax(1) == 1, seen["y"]


def test_non_positive_slopes_trap_every_input_in_background():
    model = _espnet((-0.25, -0.25))
    for seed in range(3):
        foreground, y = _foreground_and_classifier_input(model, seed)
        assert (y >= 0).all()  # the classifier only ever sees the non-negative orthant
        assert not foreground.any()


def test_the_same_weights_with_positive_slopes_do_predict_foreground():
    foreground, y = _foreground_and_classifier_input(_espnet((0.25, 0.25)), seed=0)
    assert (y < 0).any() and foreground.any()


def test_per_channel_slopes_keep_foreground_reachable_when_one_slope_turns_negative():
    foreground, y = _foreground_and_classifier_input(_espnet((-0.25, 0.25)), seed=0)
    assert (y[:, 0] >= 0).all() and (y[:, 1] < 0).any()
    assert foreground.any()


def test_a_shared_slope_puts_both_channels_in_the_trap_at_once():
    """Our earlier last block: 3x3 conv -> BN -> nn.PReLU() with ONE slope for all channels."""
    block = nn.Sequential(nn.Conv2d(21, 2, 3, padding=1, bias=False), nn.BatchNorm2d(2), nn.PReLU()).eval()
    with torch.no_grad():
        block[2].weight.fill_(-0.25)
        y = block(torch.randn(2, 21, 32, 32))
    assert (y >= 0).all()
