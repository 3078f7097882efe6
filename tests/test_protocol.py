"""The training protocol: presets, `--set` parsing, the paper's iteration plan and lr, augmentation."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.training.augment import augment_batch, crop_flip_params, draw_pass
from benchmark.training.bn_init import batchnorm_init
from benchmark.normalization import IMAGENET_MEAN, IMAGENET_STD
from benchmark.protocol import PRESETS, Protocol, get_protocol
from benchmark.recipes import resolve
from benchmark.training.train import FoldData, Trainer, TrainOptions


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def test_paper_preset_is_the_release_recipe():
    p = PRESETS["paper"]
    assert (p.lr, p.betas, p.eps, p.weight_decay, p.poly_power) == (1e-3, (0.9, 0.999), 1e-8, 1e-4, 0.9)
    assert (p.epochs, p.batch_size, p.drop_last, p.base_size) == (80, 5, True, 512)
    assert p.passes == ((1.5, 50), (1.25, 50), (0.75, 16), (1.0, 16))
    assert (p.crop_prob, p.flip_prob) == (0.5, 0.5)
    assert [p.pass_size_px(s) for s, _ in p.passes] == [768, 640, 384, 512]
    assert PRESETS["fast"].passes == ((1.0, 16),) and PRESETS["fast"].epochs < p.epochs


def test_set_overrides_parse_by_field_type():
    p = get_protocol("paper", ["epochs=3", "passes=((1.0, 16),)", "drop_last=false", "betas=0.8,0.95", "lr=2e-3"])
    assert p.epochs == 3 and p.passes == ((1.0, 16),) and p.drop_last is False
    assert p.betas == (0.8, 0.95) and p.lr == 0.002 and isinstance(p.passes[0][0], float)
    assert get_protocol("smoke", seed=7).seed == 7
    assert p.to_dict()["differs_from_preset"] == ["betas", "drop_last", "epochs", "lr", "passes"]


@pytest.mark.parametrize(
    "assignment, error, text",
    [
        ("epoch=3", KeyError, "fields: name, epochs, batch_size"),
        ("epochs=three", ValueError, "'epochs' expects int"),
        ("epochs=2.5", ValueError, "'epochs' expects int"),
        ("passes=(1.0, 16)", ValueError, "'passes' expects"),
        ("epochs=0", ValueError, "epochs must be >= 1"),
        ("flip_prob=1.5", ValueError, "probabilities"),
        ("epochs", ValueError, "key=value"),
        ("normalization=minmax", ValueError, "normalization must be one of fold, imagenet"),
        ("loss=dice", ValueError, "loss must be one of ce-weighted, bce"),
        ("bn_init=xavier", ValueError, "bn_init must be one of default, torch041"),
        ("recipes=mine", ValueError, "recipes must be one of paper, uniform"),
        ("aux_weights=(0.0, 0.4)", ValueError, "the main output's > 0"),
        ("user_set=('lr',)", KeyError, "unknown protocol field"),
    ],
)
def test_bad_overrides_name_the_problem(assignment, error, text):
    with pytest.raises(error, match=text.replace("(", r"\(").replace(")", r"\)")):
        get_protocol("paper", [assignment])


def test_unknown_preset_lists_presets():
    with pytest.raises(KeyError, match="presets: paper, uniform, fast, smoke"):
        get_protocol("quick")


def test_to_dict_is_json_and_miniseg_trains_with_the_base_recipe():
    d = json.loads(json.dumps(PRESETS["paper"].to_dict()))
    assert d["passes"] == [[1.5, 50], [1.25, 50], [0.75, 16], [1.0, 16]] and d["differs_from_preset"] == []
    assert "user_set" not in d and (d["normalization"], d["pretrained"], d["loss"]) == ("fold", False, "ce-weighted")
    effective, exception = resolve(PRESETS["paper"], "miniseg")
    assert exception is None and effective.aux_weights == (1.0, 0.4, 0.4, 0.4)
    assert effective == Protocol(aux_weights=(1.0, 0.4, 0.4, 0.4))


def test_uniform_is_the_paper_base_recipe_for_every_model():
    uniform, paper = PRESETS["uniform"], PRESETS["paper"]
    assert uniform.recipes == "uniform" and paper.recipes == "paper"
    assert uniform.to_dict() | {"name": "paper", "recipes": "paper"} == paper.to_dict()


def test_differs_from_preset_lists_what_the_user_changed_not_the_model_recipe():
    unet, exception = resolve(get_protocol("paper", ["base_size=128"]), "unet")
    assert unet.passes == ((1.0, 16),) and exception["changes"] == {"passes": [[1.0, 16]]}
    assert unet.to_dict()["differs_from_preset"] == ["base_size"]
    same, _ = resolve(get_protocol("paper", ["normalization=fold"]), "unet")  # the recipe's own value
    assert same.to_dict()["differs_from_preset"] == [] and same == unet.with_overrides({"base_size": 512})
    changed, exception = resolve(get_protocol("paper", ["normalization=imagenet"]), "unet")
    assert changed.normalization == "imagenet" and changed.to_dict()["differs_from_preset"] == ["normalization"]
    assert exception["deviations"] == ["normalization=imagenet set with --set (the recipe's: fold)"]


def test_margins_scale_with_base_size():
    assert PRESETS["paper"].margin_px(50) == 50
    assert PRESETS["paper"].with_overrides({"base_size": 128}).margin_px(50) == 12


def _fake_fold(n_train: int) -> FoldData:
    """A FoldData with `n_train` blank 8x8 slices: enough for the schedule, nothing is trained."""
    return FoldData(
        train_images=torch.zeros(n_train, 8, 8, dtype=torch.uint8), train_masks=torch.zeros(n_train, 8, 8, dtype=torch.bool),
        test_ids=[], test_images=np.zeros((0, 8, 8), np.uint8), test_masks=np.zeros((0, 8, 8), bool),
        mean=0.5, std=0.25, class_weights=np.array([1.0, 1.0]),
    )


def test_paper_iteration_plan_for_ct100_fold0_is_what_the_trainer_steps():
    """79 training slices: 15 batches per pass, 60 per epoch, 4,800 in all; poly lr at those iterations."""
    protocol = PRESETS["paper"]
    trainer = Trainer("miniseg", _fake_fold(79), protocol, TrainOptions(device="cpu"))
    assert (protocol.batches_per_pass(79), protocol.iterations_per_epoch(79), trainer.total_iterations) == (15, 60, 4800)
    lrs, sizes, per_epoch = [], [], []
    for _ in range(protocol.epochs):
        start = len(lrs)
        for lr, size_px, index, params in trainer.iterate_epoch():
            assert index.shape == (5,) and params.shape == (5, 3)
            lrs.append(lr)
            sizes.append(size_px)
        per_epoch.append(len(lrs) - start)
    assert len(lrs) == trainer.iteration == 4800 and set(per_epoch) == {60}
    assert sizes[:60] == [768] * 15 + [640] * 15 + [384] * 15 + [512] * 15
    assert lrs[0] == pytest.approx(1e-3, rel=1e-12)
    assert lrs[2400] == pytest.approx(1e-3 * 0.5**0.9, rel=1e-12)
    assert lrs[4799] == pytest.approx(1e-3 * (1 / 4800) ** 0.9, rel=1e-12)
    assert all(a > b for a, b in zip(lrs, lrs[1:]))


def test_a_pass_visits_each_slice_at_most_once_and_drops_the_last_partial_batch():
    draw = draw_pass(torch.Generator().manual_seed(0), 79, 5, 512, 16, 0.5, 0.5)
    assert len(draw) == 15 and len(draw.order) == 75 and len(set(draw.order.tolist())) == 75
    again = draw_pass(torch.Generator().manual_seed(0), 79, 5, 512, 16, 0.5, 0.5)
    assert torch.equal(draw.order, again.order) and torch.equal(draw.params, again.params)
    margins, flips = draw.params[:, :2], draw.params[:, 2]
    assert ((margins >= 0) & (margins <= 16)).all() and (margins == 16).any()
    assert 0.2 < (margins.sum(1) == 0).float().mean() < 0.8  # about half not cropped (crop_prob 0.5)
    assert 0.2 < flips.mean() < 0.8 and set(flips.tolist()) == {0.0, 1.0}
    assert len(draw_pass(torch.Generator(), 79, 5, 64, 2, 0.5, 0.5, drop_last=False)) == 16


def test_crop_resize_flip_match_explicit_operations():
    """The one-resample crop equals cropping and resizing back (bilinear); the flip is a row reversal."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (2, 20, 20), generator=gen, dtype=torch.uint8)
    masks = torch.rand(2, 20, 20, generator=gen) > 0.5
    params = crop_flip_params(torch.tensor([[3, 2], [0, 0]]), torch.tensor([False, True]))
    x, y = augment_batch(images, masks, params, 20, mean=0.5, std=0.25)
    normalised = (images.float() / 255 - 0.5) / 0.25
    cropped = F.interpolate(normalised[None, :1, 3:17, 2:18], size=(20, 20), mode="bilinear", align_corners=False)
    assert x.shape == (2, 3, 20, 20) and y.dtype == torch.int64
    torch.testing.assert_close(x[0, 0], cropped[0, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(x[1, 2], normalised[1].flip(0), atol=1e-5, rtol=0)
    assert torch.equal(y[1], masks[1].flip(0).long())
    assert set(y.unique().tolist()) <= {0, 1}


def test_per_channel_normalisation_equals_the_scalar_one_per_channel():
    images = torch.randint(0, 256, (2, 6, 6), dtype=torch.uint8, generator=torch.Generator().manual_seed(2))
    masks = images > 128
    identity = crop_flip_params(torch.zeros(2, 2, dtype=torch.long), torch.tensor([False, False]))
    x, _ = augment_batch(images, masks, identity, 6, mean=IMAGENET_MEAN, std=IMAGENET_STD)
    for c in range(3):
        one, _ = augment_batch(images, masks, identity, 6, mean=IMAGENET_MEAN[c], std=IMAGENET_STD[c])
        torch.testing.assert_close(x[:, c], one[:, c], atol=1e-6, rtol=0)
    assert not torch.allclose(x[:, 0], x[:, 2])


def test_torch041_batchnorm_init_draws_gamma_uniform_and_is_undone_after_the_block():
    torch.manual_seed(0)
    with batchnorm_init("torch041"):
        bn = torch.nn.BatchNorm2d(64)
    gamma = bn.weight.detach()
    assert 0 <= gamma.min() and gamma.max() <= 1 and gamma.std() > 0.1 and torch.equal(bn.bias, torch.zeros(64))
    assert torch.equal(torch.nn.BatchNorm2d(4).weight.detach(), torch.ones(4))
    with batchnorm_init("default"):
        assert torch.equal(torch.nn.BatchNorm2d(4).weight.detach(), torch.ones(4))
    with pytest.raises(ValueError, match="bn_init must be"):
        with batchnorm_init("uniform"):
            pass


def test_rescale_pass_resizes_images_bilinear_and_masks_nearest():
    images = torch.arange(64, dtype=torch.uint8).reshape(1, 8, 8)
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 2:6, 2:6] = True
    identity = crop_flip_params(torch.zeros(1, 2, dtype=torch.long), torch.tensor([False]))
    x, y = augment_batch(images, masks, identity, 12, mean=0.0, std=1.0)
    expected = F.interpolate(images[None].float() / 255, size=(12, 12), mode="bilinear", align_corners=False)
    torch.testing.assert_close(x[0, 0], expected[0, 0], atol=1e-6, rtol=0)
    assert torch.equal(y[0], F.interpolate(masks[None].float(), size=(12, 12), mode="nearest")[0, 0].long())
    assert y.sum() == 36
