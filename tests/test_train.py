"""The trainer: deep-supervision loss, exact resume from a state dict, failures recorded, real CT100."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.protocol import get_protocol
from benchmark.records import read_run_record, validate_run_record
from benchmark.training.train import FoldData, Trainer, TrainOptions, run_training


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _random_fold(n_train: int = 16, size_px: int = 32, seed: int = 0, truth_scale: int = 1) -> FoldData:
    """Blob-like random slices, enough to take a few real optimiser steps; test masks `truth_scale` x larger."""
    gen = np.random.default_rng(seed)
    images = gen.integers(0, 256, (n_train + 4, size_px, size_px), dtype=np.uint8)
    masks = images > 180
    truth = masks[n_train:].repeat(truth_scale, axis=1).repeat(truth_scale, axis=2)
    return FoldData(
        train_images=torch.from_numpy(images[:n_train]), train_masks=torch.from_numpy(masks[:n_train]),
        test_ids=[f"s{i}" for i in range(4)], test_images=images[n_train:], test_masks=truth,
        mean=0.5, std=0.29, class_weights=np.array([1.5, 4.0]),
    )


SMALL = get_protocol("smoke", ["epochs=3", "passes=((1.0, 2),)"])


def test_loss_sums_weighted_heads_upsampled_to_the_target():
    trainer = Trainer("miniseg", _random_fold(), SMALL, TrainOptions(device="cpu"))
    gen = torch.Generator().manual_seed(0)
    target = torch.randint(0, 2, (2, 16, 16), generator=gen)
    heads = [torch.randn(2, 2, 16, 16, generator=gen)] + [torch.randn(2, 2, 8, 8, generator=gen) for _ in range(3)]
    weight = torch.tensor([1.5, 4.0])
    expected = sum(
        w * F.cross_entropy(F.interpolate(h, size=(16, 16), mode="bilinear", align_corners=False), target, weight=weight)
        for w, h in zip((1.0, 0.4, 0.4, 0.4), heads)
    )
    torch.testing.assert_close(trainer.loss(tuple(heads), target), expected)
    with pytest.raises(ValueError, match="returned 1 output"):
        trainer.loss(heads[0], target)


def test_bce_loss_is_the_sigmoid_bce_of_the_foreground_logit_without_class_weights():
    """Inf-Net's recipe (trainInfNet.py): BCE on z for [0, z] logits, 1.0/0.4/0.4/0.4, no class weights."""
    trainer = Trainer("miniseg", _random_fold(), SMALL.with_overrides({"loss": "bce"}), TrainOptions(device="cpu"))
    gen = torch.Generator().manual_seed(1)
    target = torch.randint(0, 2, (2, 8, 8), generator=gen)
    z = [torch.randn(2, 1, 8, 8, generator=gen) for _ in range(4)]
    heads = tuple(torch.cat([torch.zeros_like(m), m], dim=1) for m in z)
    expected = sum(w * F.binary_cross_entropy(torch.sigmoid(m[:, 0]), target.float())
                   for w, m in zip((1.0, 0.4, 0.4, 0.4), z))
    torch.testing.assert_close(trainer.loss(heads, target), expected)
    unweighted = sum(w * F.cross_entropy(h, target) for w, h in zip((1.0, 0.4, 0.4, 0.4), heads))
    torch.testing.assert_close(trainer.loss(heads, target), unweighted)


def test_heads_weighted_zero_are_left_out_of_the_loss():
    """The release's baselines train on the main output only: aux_weights (1, 0, 0, 0)."""
    main_only = SMALL.with_overrides({"aux_weights": (1.0, 0.0, 0.0, 0.0)})
    trainer = Trainer("miniseg", _random_fold(), main_only, TrainOptions(device="cpu"))
    gen = torch.Generator().manual_seed(2)
    target = torch.randint(0, 2, (2, 8, 8), generator=gen)
    heads = (torch.randn(2, 2, 8, 8, generator=gen),) + (torch.full((2, 2, 8, 8), float("nan")),) * 3
    expected = F.cross_entropy(heads[0], target, weight=torch.tensor([1.5, 4.0]))
    torch.testing.assert_close(trainer.loss(heads, target), expected)


def test_test_fold_is_scored_on_the_ground_truths_grid():
    """A model trained at 32 px is scored on 64 px masks: its logits are resized (bilinear) before the argmax."""
    from benchmark.evaluation.evaluate import predict

    data = _random_fold(truth_scale=2)
    trainer = Trainer("miniseg", data, SMALL, TrainOptions(device="cpu"))
    per_slice = trainer.evaluate()
    assert len(per_slice) == 4 and data.summary()["score_size_px"] == 64 and data.summary()["size_px"] == 32
    model = trainer.model.eval()
    with torch.no_grad():
        x = (torch.from_numpy(data.test_images).float() / 255 - data.mean) / data.std
        logits = model(x[:, None].expand(-1, 3, -1, -1).contiguous())
        resized = F.interpolate(logits, size=(64, 64), mode="bilinear", align_corners=False)
    got = predict(model, data.test_images, data.mean, data.std, "cpu", out_size=(64, 64))
    assert got.shape == (4, 64, 64) and np.array_equal(got, (resized.argmax(1) != 0).numpy())


def test_imagenet_normalisation_reaches_the_model_inputs():
    trainer = Trainer("miniseg", _random_fold(), SMALL.with_overrides({"normalization": "imagenet"}),
                      TrainOptions(device="cpu"))
    assert (trainer.input_mean, trainer.input_std) == ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    seen = []
    trainer.model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach()))
    trainer.train_epoch()
    first = seen[0]
    assert not torch.allclose(first[:, 0], first[:, 2])  # the channels are normalised apart


def test_checkpoints_record_the_input_statistics_the_model_was_trained_with():
    fold = _random_fold()
    state = Trainer("miniseg", fold, SMALL, TrainOptions(device="cpu")).state_dict()
    assert (state["input_mean"], state["input_std"]) == ([0.5], [0.29])
    imagenet = Trainer("miniseg", fold, get_protocol("smoke", ["normalization=imagenet"]), TrainOptions(device="cpu"))
    assert imagenet.state_dict()["input_mean"] == [0.485, 0.456, 0.406]


def test_resuming_from_a_state_dict_continues_exactly():
    """Two epochs straight equal one epoch, a save/load round trip into a new trainer, one more epoch."""
    straight = Trainer("miniseg", _random_fold(), SMALL, TrainOptions(device="cpu"))
    first = straight.train_epoch()
    buffer = io.BytesIO()
    torch.save(straight.state_dict(), buffer)
    second = straight.train_epoch()

    torch.manual_seed(123)  # the global generator is restored from the checkpoint, whatever it holds now
    resumed = Trainer("miniseg", _random_fold(), SMALL, TrainOptions(device="cpu"))
    buffer.seek(0)
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    again = resumed.train_epoch()
    assert first["train_loss"] != second["train_loss"]
    assert (again["train_loss"], again["lr"], resumed.iteration) == (second["train_loss"], second["lr"], straight.iteration)
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    return tmp_path_factory.mktemp("data")


def test_divergence_is_recorded_as_failed(synthetic_root, tmp_path, monkeypatch):
    monkeypatch.setattr(Trainer, "_step", lambda self, x, y, lr: torch.tensor(float("nan")))
    record = run_training("miniseg", "synthetic", 1, get_protocol("smoke"), TrainOptions(device="cpu", progress=False),
                          synthetic_root, tmp_path)
    assert record["status"] == "failed" and record["error"].startswith("diverged: training loss is nan in epoch 1")
    assert record["final"] is None and record["history"] == []
    assert validate_run_record(read_run_record(tmp_path / "record.json").to_dict()) == []
    assert not (tmp_path / "last.pt").exists()


@pytest.mark.parametrize(("interval_s", "saved_epochs"), [(0.0, [1, 2, 3]), (1e9, [3])])
def test_checkpoints_follow_the_interval_and_the_last_epoch_is_always_written(
    synthetic_root, tmp_path, monkeypatch, interval_s, saved_epochs
):
    import benchmark.training.train as train_module

    saved = []
    write = train_module.save_checkpoint
    monkeypatch.setattr(train_module, "save_checkpoint", lambda trainer, run_dir: (saved.append(trainer.epoch),
                                                                                   write(trainer, run_dir)))
    monkeypatch.setattr(Trainer, "_step", lambda self, x, y, lr: torch.tensor(0.5))  # no optimiser work needed
    options = TrainOptions(device="cpu", progress=False, checkpoint_every_s=interval_s)
    record = run_training("miniseg", "synthetic", 1, get_protocol("smoke", ["epochs=3"]), options,
                          synthetic_root, tmp_path)
    assert record["status"] == "done" and saved == saved_epochs
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 3


def test_a_negative_checkpoint_interval_is_refused():
    with pytest.raises(ValueError, match="checkpoint interval must be >= 0 seconds, got -1"):
        TrainOptions(checkpoint_every_s=-1)


@pytest.mark.slow
@pytest.mark.shared_data
def test_one_fast_epoch_on_real_ct100_fold0_at_128px(shared_data, tmp_path):
    """The `fast` protocol, one epoch, on ../shared/data's CT100: 79 training slices -> 15 steps."""
    if not (shared_data / "COVID-19-CT100").is_dir():
        pytest.skip(f"real data not present: {shared_data / 'COVID-19-CT100'}")
    protocol = get_protocol("fast", ["epochs=1", "base_size=128"])
    record = run_training("miniseg", "CT100", 0, protocol, TrainOptions(device="cpu", progress=False),
                          shared_data, tmp_path)
    assert record["status"] == "done", record["error"]
    assert record["iterations"] == 15 and record["data"]["n_train"] == 79 and record["data"]["n_test"] == 20
    assert record["data"]["size_px"] == 128 and record["data"]["score_size_px"] == 512
    assert record["schema"] == "miniseg-bench/run/2" and record["protocol_exception"] is None
    assert record["data"]["mean"] == pytest.approx(0.6024, abs=0.01)  # fold 1 at 512 px: 0.6023964
    assert np.isfinite(record["history"][0]["train_loss"]) and record["history"][0]["test"]["paper"]["n_slices"] == 20
    for policy in ("paper", "strict"):
        assert 0 <= record["final"][policy]["dsc"] <= 100
    assert record["timings"]["train_img_s"] > 0 and record["protocol"]["base_size"] == 128
    assert len((tmp_path / "per_slice.csv").read_text().splitlines()) == 21


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_and_channels_last_train_on_cpu(amp):
    options = TrainOptions(device="cpu", amp=amp, channels_last=True)
    trainer = Trainer("miniseg", _random_fold(), SMALL, options)
    entry = trainer.train_epoch()
    assert np.isfinite(entry["train_loss"]) and trainer.iteration == 2
    assert trainer.scaler.is_enabled() == (amp == "fp16")
    assert options.to_dict(trainer.device) == {"device": "cpu", "amp": amp, "channels_last": True, "compile": None,
                                              "cudnn_benchmark": False}
    with pytest.raises(ValueError, match="amp must be one of"):
        TrainOptions(amp="fp8")
