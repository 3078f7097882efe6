"""MiniSeg is provably the authors' model: their weights load strictly and reproduce their maps."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import create_model
from models.miniseg import strip_aux_heads

DATASETS = ("COVID-19-CT100", "COVID-19-P9", "COVID-19-P20", "COVID-19-P1110")
# PROTOCOL.md: CT100 fold 1's training statistics (79 slices), to 7 decimals.
CT100_FOLD1_MEAN, CT100_FOLD1_STD = 0.6023964, 0.2961877


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_paper():
    assert _params(create_model("miniseg")) == 82_912
    assert _params(create_model("miniseg", aux=False)) == 82_666


def test_architecture_facts():
    model = create_model("miniseg")
    assert [len(getattr(model, f"level{s}")) for s in (1, 2, 3, 4)] == [2, 3, 8, 6]
    assert [len(getattr(model, f"level{s}_long")) for s in (1, 2, 3, 4)] == [1, 1, 4, 3]
    assert model.level3[0].conv3.dilation == (4, 4) and model.level3[0].conv4.dilation == (8, 8)
    assert model.long2.conv1.kernel_size == (5, 5) and model.long2.conv1.groups == 24


def test_inference_build_returns_main_only_in_train_mode():
    model = create_model("miniseg", aux=False).train()
    out = model(torch.randn(2, 3, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 64, 64)


def _weights(release_dir: Path) -> list[Path]:
    files = sorted((release_dir / "Pretrained").glob("*/MiniSeg_CrossVal*.pth"))
    if len(files) != 20:
        pytest.skip(f"expected 20 released weight files under {release_dir / 'Pretrained'}, found {len(files)}")
    return files


def test_all_released_weights_load_strictly(release_dir):
    full, inference = create_model("miniseg"), create_model("miniseg", aux=False)
    for path in _weights(release_dir):
        state = torch.load(path, map_location="cpu", weights_only=True)
        full.load_state_dict(state, strict=True)
        inference.load_state_dict(strip_aux_heads(state), strict=True)


def _ct100_input(ct100_dir: Path, slice_id: str, mean: float, std: float) -> torch.Tensor:
    image = np.asarray(Image.open(ct100_dir / "tr_im" / f"{slice_id}.png").convert("L"), dtype=np.float32) / 255
    x = torch.from_numpy(image)[None, None].expand(1, 3, *image.shape)
    return (x - mean) / std


def _ct100_fold1_prediction(release_dir: Path, ct100_dir: Path, mean: float, std: float) -> np.ndarray:
    model = create_model("miniseg").eval()
    weights = release_dir / "Pretrained" / "COVID-19-CT100" / "MiniSeg_CrossVal1.pth"
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    with torch.no_grad():
        return model(_ct100_input(ct100_dir, "tr_im_0000", mean, std)).argmax(1)[0].numpy()


def _released_map(release_dir: Path) -> np.ndarray:
    path = release_dir / "SegMaps" / "COVID-19-CT100" / "CrossVal1" / "tr_im_0000.png"
    return np.asarray(Image.open(path)) > 0


def test_ct100_fold1_prediction_equals_released_map(release_dir, ct100_dir):
    pred = _ct100_fold1_prediction(release_dir, ct100_dir, CT100_FOLD1_MEAN, CT100_FOLD1_STD)
    expected = _released_map(release_dir)
    assert expected.sum() > 1000, "the released map should show a sizeable lesion"
    assert np.array_equal(pred == 1, expected)


def test_prediction_is_sensitive_to_normalisation(release_dir, ct100_dir):
    """Rounding the statistics to 4 decimals flips pixels (PROTOCOL.md): the check above is tight."""
    pred = _ct100_fold1_prediction(release_dir, ct100_dir, round(CT100_FOLD1_MEAN, 4), round(CT100_FOLD1_STD, 4))
    assert not np.array_equal(pred == 1, _released_map(release_dir))


def test_fvcore_macs_match_paper():
    from fvcore.nn import FlopCountAnalysis

    model = create_model("miniseg").eval()
    counter = FlopCountAnalysis(model, torch.zeros(1, 3, 512, 512))
    counter.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
    assert round(counter.total() / 1e9, 2) == 0.51
