"""nnU-Net v2 in the registry: the 2D network nnU-Net's own planner designs, built by nnU-Net's own builder.

nnU-Net (Isensee et al., Nature Methods 2021) does not ship one architecture: its planner reads a
dataset's fingerprint (image sizes, spacings, intensities) and derives a U-Net (stages, kernel sizes,
strides, features, patch and batch size). `nnunet-2d` is the network of nnU-Net's default planner
(`ExperimentPlanner`, plans `nnUNetPlans`), `nnunet-resenc-m-2d` the residual-encoder M preset that
"nnU-Net Revisited" (Isensee et al., MICCAI 2024) recommends (`nnUNetPlannerResEncM`). Without a
`plans` argument both plan a default case, the fingerprint of CT100's folds (99 single-channel CT
slices of 512 x 512 pixels, spacing 1), by running the installed nnU-Net's planner; `plans=` takes a
plans file (or dict) nnU-Net wrote for a dataset instead. Nothing of nnU-Net is re-implemented here:
the planner, `PlansManager` and `get_network_from_plans` are nnU-Net's, the network is
dynamic_network_architectures' `PlainConvUNet` / `ResidualEncoderUNet`.

`NnUNetSegmenter` adapts that network to the registry's output contract: inputs of any size are
zero-padded to a multiple of the network's total stride, at least twice it (nnU-Net's sliding window
pads a case smaller than its patch), and the logits cropped back; in train mode the deep-supervision outputs are
resized to the input and returned as `(main, *aux)`, weighted as nnU-Net weights them (1/2^i, the
lowest resolution 0, normalised to sum 1). Under the `paper` preset these models are trained by
nnU-Net itself (benchmark.training.nnunet); this module is what `list`, `profile` and the `uniform` preset use.
nnunetv2 is optional: `pip install '.[nnunet]'`.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import importlib
import io
import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from .layers import upsample_to
from ._registry import register_model

INSTALL_HINT = "pip install '.[nnunet]' (or pip install 'nnunetv2>=2.8.1,<3')"
CONFIGURATION = "2d"
#: The default case the registry's networks are planned for: CT100's folds (99 slices of 512 x 512 pixels).
DEFAULT_SIZE_PX = 512
DEFAULT_SLICES = 99
#: Spacing of a 2D slice as nnU-Net's 2D image reader (NaturalImage2DIO) reports it: (z, y, x).
SLICE_SPACING = (999.0, 1.0, 1.0)
#: The raw dataset name used for planning (any DatasetXXX_Name works: the folders are private to the planning).
PLANNING_DATASET = "Dataset001_MiniSegBench"
#: Deep-supervision outputs of the default case's plans (8 stages: 512 px down to 4 px): the aux_weights' length.
DEFAULT_DS_OUTPUTS = 7
REFERENCE = ("Isensee, Jaeger, Kohl, Petersen, Maier-Hein, nnU-Net: a self-configuring method for deep "
             "learning-based biomedical image segmentation, Nature Methods 18, 203-211 (2021)")
REVISITED = ("Isensee, Wald, Ulrich, Baumgartner, Roy, Maier-Hein, Jaeger, nnU-Net Revisited: A Call for "
             "Rigorous Validation in 3D Medical Image Segmentation, MICCAI 2024")


class NnUNetUnavailable(ImportError):
    """nnunetv2 (an optional extra) is not installed."""


@dataclass(frozen=True)
class Planner:
    """One of nnU-Net's experiment planners, and the plans file it writes."""

    module: str
    cls: str
    plans_identifier: str

    def load(self) -> type:
        """nnU-Net's planner class."""
        require_nnunet()
        return getattr(importlib.import_module(self.module), self.cls)


_PLANNERS_MODULE = "nnunetv2.experiment_planning.experiment_planners"
#: Registry name -> nnU-Net's planner for it.
PLANNERS: Mapping[str, Planner] = MappingProxyType({
    "nnunet-2d": Planner(f"{_PLANNERS_MODULE}.default_experiment_planner", "ExperimentPlanner", "nnUNetPlans"),
    "nnunet-resenc-m-2d": Planner(f"{_PLANNERS_MODULE}.residual_unets.residual_encoder_unet_planners",
                                  "nnUNetPlannerResEncM", "nnUNetResEncUNetMPlans"),
})


def require_nnunet() -> str:
    """nnunetv2's version; a clear NnUNetUnavailable (an ImportError) naming the extra when it is missing."""
    try:
        import nnunetv2  # noqa: F401
    except ImportError as err:
        raise NnUNetUnavailable(f"nnU-Net v2 (the nnunetv2 package) is not installed: {INSTALL_HINT}") from err
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("nnunetv2")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def nnunet_paths(raw: str | Path, preprocessed: str | Path) -> Iterator[None]:
    """nnU-Net's folder variables (read when used, nnunetv2 >= 2.8) set for the block only, restored after.

    nnU-Net's planner sets torch's thread count from nnUNet_n_proc_DA (or a lookup of the host name):
    one is enough for planning, so it is set to 1 where the caller left it unset (or at 0, which the planner
    cannot take).
    """
    workers = os.environ.get("nnUNet_n_proc_DA", "")
    wanted = {"nnUNet_raw": str(raw), "nnUNet_preprocessed": str(preprocessed),
              "nnUNet_n_proc_DA": workers if workers.strip() not in ("", "0") else "1"}
    saved = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def slice_fingerprint(size_px: int, n_slices: int) -> dict[str, Any]:
    """The dataset fingerprint nnU-Net's planner reads, for `n_slices` uncropped single-channel slices.

    Only sizes and spacings decide the network; the intensity statistics (those of 8-bit slices) only
    parametrise CT normalisation, which the network does not depend on.
    """
    return {
        "spacings": [list(SLICE_SPACING)] * n_slices,
        "shapes_after_crop": [[1, size_px, size_px]] * n_slices,
        "median_relative_size_after_cropping": 1.0,
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 255.0, "mean": 127.5, "median": 127.5, "min": 0.0,
            "percentile_00_5": 0.0, "percentile_99_5": 255.0, "std": 64.0,
        }},
    }


def dataset_json(n_slices: int) -> dict[str, Any]:
    """nnU-Net's dataset.json for our data: one CT channel, labels background/infection, PNG slices."""
    return {"channel_names": {"0": "CT"}, "labels": {"background": 0, "infection": 1},
            "numTraining": n_slices, "file_ending": ".png"}


@functools.lru_cache(maxsize=8)
def _planned(model_name: str, size_px: int, n_slices: int) -> str:
    """`plan_for_slices` as JSON text (cached: planning takes seconds)."""
    from PIL import Image

    planner = PLANNERS[model_name].load()
    with tempfile.TemporaryDirectory(prefix="miniseg-nnunet-plan-") as tmp:
        raw = Path(tmp, "raw", PLANNING_DATASET)
        preprocessed = Path(tmp, "preprocessed", PLANNING_DATASET)
        for folder in (raw / "imagesTr", raw / "labelsTr", preprocessed):
            folder.mkdir(parents=True)
        # The planner opens one image to pick its reader (nnU-Net's NaturalImage2DIO for PNG); the sizes it
        # plans for come from the fingerprint.
        blank = Image.new("L", (8, 8))
        blank.save(raw / "imagesTr" / "case_0000.png")
        blank.save(raw / "labelsTr" / "case.png")
        (raw / "dataset.json").write_text(json.dumps(dataset_json(n_slices)))
        (preprocessed / "dataset_fingerprint.json").write_text(json.dumps(slice_fingerprint(size_px, n_slices)))
        # The planner builds candidate networks only to count their feature maps: on the meta device that
        # allocates nothing (the plan is the same, in a quarter of the time).
        with nnunet_paths(raw.parent, preprocessed.parent), contextlib.redirect_stdout(io.StringIO()), \
                torch.device("meta"):
            plans = planner(PLANNING_DATASET).plan_experiment()
    return json.dumps(plans)


def plan_for_slices(model_name: str, size_px: int = DEFAULT_SIZE_PX, n_slices: int = DEFAULT_SLICES) -> dict:
    """The plans nnU-Net's planner for `model_name` makes for `n_slices` single-channel slices of `size_px`."""
    if model_name not in PLANNERS:
        raise KeyError(f"{model_name!r} is not an nnU-Net model; known: {', '.join(PLANNERS)}")
    return json.loads(_planned(model_name, size_px, n_slices))


def load_plans(plans: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    """A plans dict from a plans file nnU-Net wrote (or a dict, copied); errors name the file."""
    if isinstance(plans, Mapping):
        return copy.deepcopy(dict(plans))
    path = Path(plans)
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: nnU-Net plans file not found") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not an nnU-Net plans file (invalid JSON: {err})") from None
    if not isinstance(loaded, dict) or CONFIGURATION not in (loaded.get("configurations") or {}):
        raise ValueError(f"{path}: not an nnU-Net plans file with a {CONFIGURATION!r} configuration")
    return loaded


def configuration(plans: Mapping[str, Any]) -> Any:
    """nnU-Net's ConfigurationManager of the plans' 2D configuration."""
    require_nnunet()
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    return PlansManager(dict(plans)).get_configuration(CONFIGURATION)


def build_network(plans: Mapping[str, Any], in_channels: int, num_classes: int,
                  deep_supervision: bool = True) -> nn.Module:
    """The network of the plans' 2D configuration, built and initialised by nnU-Net's `get_network_from_plans`."""
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    manager = configuration(plans)
    return get_network_from_plans(
        manager.network_arch_class_name, manager.network_arch_init_kwargs,
        manager.network_arch_init_kwargs_req_import, in_channels, num_classes,
        allow_init=True, deep_supervision=deep_supervision,
    )


def deep_supervision_weights(n_outputs: int) -> tuple[float, ...]:
    """nnU-Net's loss weight per deep-supervision output, full resolution first: 1/2^i, the lowest 0, sum 1."""
    if n_outputs < 1:
        raise ValueError(f"need at least one output, got {n_outputs}")
    raw = [1.0 / 2 ** i for i in range(n_outputs)]
    if n_outputs > 1:
        raw[-1] = 0.0
    total = sum(raw)
    return tuple(w / total for w in raw)


def total_stride(strides: Any) -> tuple[int, int]:
    """Product of a plan's per-stage (y, x) strides: the size multiple the network's skips need."""
    out = [1, 1]
    for stride in strides:
        pair = (stride, stride) if isinstance(stride, int) else stride
        out = [out[0] * int(pair[0]), out[1] * int(pair[1])]
    return out[0], out[1]


def _padded(side: int, step: int) -> int:
    """The side an input is padded to: a multiple of the total stride, at least two bottleneck pixels
    (instance normalisation needs more than one value per channel in training)."""
    return max(2 * step, math.ceil(side / step) * step)


class NnUNetSegmenter(nn.Module):
    """A planned nnU-Net network under the registry's contract (see the module docstring)."""

    def __init__(self, network: nn.Module, divisor: tuple[int, int], plans: dict[str, Any]) -> None:
        super().__init__()
        self.network = network
        self.divisor = divisor
        self.plans = plans  # what it was built from (profile / records can show the plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        height, width = x.shape[-2:]
        pad_h, pad_w = (_padded(side, step) - side for side, step in zip((height, width), self.divisor))
        padded = nn.functional.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x
        self.network.decoder.deep_supervision = self.training
        output = self.network(padded)
        outputs = output if isinstance(output, (list, tuple)) else [output]
        full = padded.shape[-2:]
        logits = tuple(upsample_to(o, full)[..., :height, :width] for o in outputs)
        return logits if self.training else logits[0]


def nnunet_model(model_name: str, num_classes: int, in_channels: int,
                 plans: str | Path | Mapping[str, Any] | None) -> NnUNetSegmenter:
    """Build `model_name` from `plans` (default: nnU-Net's plan of the default case).

    A plans file for another image size may have another number of stages: the model then returns that many
    outputs in train mode, not the declared `aux_weights`' seven (our trainer's loss names the mismatch)."""
    require_nnunet()
    plan_dict = plan_for_slices(model_name) if plans is None else load_plans(plans)
    strides = configuration(plan_dict).network_arch_init_kwargs["strides"]
    network = build_network(plan_dict, in_channels, num_classes, deep_supervision=True)
    return NnUNetSegmenter(network, total_stride(strides), plan_dict)


_NOTES = ("the network nnU-Net v2's {planner} plans for CT100's folds (99 single-channel 512x512 slices), "
          "built by nnU-Net's get_network_from_plans (installed nnunetv2; `plans=` takes a plans file); trained "
          "by nnU-Net itself under the paper preset, by our trainer under uniform; needs pip install '.[nnunet]'")


@register_model("nnunet-2d", family="nnunet", source="nnunetv2", reference=REFERENCE,
                aux_weights=deep_supervision_weights(DEFAULT_DS_OUTPUTS),
                notes=_NOTES.format(planner="default planner (ExperimentPlanner, PlainConvUNet)"))
def nnunet_2d(num_classes: int = 2, in_channels: int = 3,
              plans: str | Path | Mapping[str, Any] | None = None) -> nn.Module:
    """nnU-Net's default 2D U-Net (PlainConvUNet) as its planner designs it."""
    return nnunet_model("nnunet-2d", num_classes, in_channels, plans)


@register_model("nnunet-resenc-m-2d", family="nnunet", source="nnunetv2", reference=f"{REVISITED}; {REFERENCE}",
                aux_weights=deep_supervision_weights(DEFAULT_DS_OUTPUTS),
                notes=_NOTES.format(planner="residual-encoder M planner (nnUNetPlannerResEncM, ResidualEncoderUNet)"))
def nnunet_resenc_m_2d(num_classes: int = 2, in_channels: int = 3,
                       plans: str | Path | Mapping[str, Any] | None = None) -> nn.Module:
    """nnU-Net's residual-encoder U-Net, M preset ("nnU-Net Revisited"), as its planner designs it."""
    return nnunet_model("nnunet-resenc-m-2d", num_classes, in_channels, plans)
