"""The profile record of one model on one device: counts, MACs, timings, environment."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

from ..env import device_slug, environment
from ..records import PROFILE_SCHEMA, profile_dir
from .macs import count_macs
from .modes import Mode, parse_mode
from .paper_flops import count_paper_flops
from .paper_rows import counted_part
from .params import ACTIVE_PROBE_SIZE, active_params, count_params, inference_params
from .timing import error_text, time_mode

def fit_size(size: int, min_input_size: int = 1, input_multiple: int = 1) -> int:
    """The smallest side >= `size` and `min_input_size` that is a multiple of `input_multiple`."""
    side = max(size, min_input_size)
    return -(-side // input_multiple) * input_multiple


def profile_path(results: str | Path, device: torch.device, model: str) -> Path:
    """`<results>/profile/<device-slug>/<model>.json`."""
    return profile_dir(results, device_slug(device)) / f"{model}.json"


def flat_timing_keys(timings: Sequence[dict[str, Any]]) -> dict[str, float]:
    """`latency_ms_bs<B>[_<mode>][_paper]` and `throughput_img_s_bs<B>...` of every measured entry.

    B is the batch that ran (after any OOM fallback); eager has no mode suffix.
    """
    flat: dict[str, float] = {}
    for entry in timings:
        if entry.get("status") != "ok":
            continue
        suffix = parse_mode(entry["mode"]).key_suffix + ("_paper" if entry["method"] == "paper" else "")
        per_call = "latency_ms_mean" if entry["method"] == "paper" else "latency_ms_median"
        flat[f"latency_ms_bs{entry['batch_size']}{suffix}"] = entry[per_call]
        flat[f"throughput_img_s_bs{entry['batch_size']}{suffix}"] = entry["throughput_img_s"]
    return flat


def profile_model(
    name: str,
    device: torch.device,
    *,
    size: int = 512,
    modes: Sequence[Mode] = (Mode(),),
    batch_sizes: Sequence[int] = (1, 30),
    methods: Sequence[str] = ("events",),
    warmup: int = 10,
    repeats: int = 50,
    timing: bool = True,
    on_timing: Callable[[dict[str, Any]], None] | None = None,
    extra: Callable[[torch.nn.Module, int], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Profile registered model `name` on `device`; `on_timing` is called after each timing entry.

    `extra(model, side)` adds fields measured on the same model (the deployment backends' entries)."""
    from models import create_model, get_model_info

    info = get_model_info(name)
    side = fit_size(size, info.min_input_size, info.input_multiple)
    probe_side = fit_size(ACTIVE_PROBE_SIZE, info.min_input_size, info.input_multiple)
    model = create_model(name).to(device).eval()
    probe_shape = (1, 3, probe_side, probe_side)
    n_inference, inference_source = inference_params(name, model, probe_shape, device)
    record: dict[str, Any] = {
        "schema": PROFILE_SCHEMA,
        "model": name,
        "paper_name": info.paper_name,
        "params": count_params(model),
        "params_inference": n_inference,
        "params_inference_source": inference_source,
        "params_active": active_params(model, probe_shape, device),
        "input_size": [3, side, side],
        **_mac_fields(model, (1, 3, side, side), device),
        **_paper_flop_fields(model, side, info.paper_name, info.has_aux),
        "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "environment": environment(device),
        "timings": [],
    }
    if timing:
        for method in methods:
            for mode in modes:
                for batch_size in batch_sizes:
                    entry = time_mode(
                        model, mode, batch_size, size=side, device=device, method=method, warmup=warmup, repeats=repeats
                    )
                    record["timings"].append(entry)
                    if on_timing:
                        on_timing(entry)
    record.update(flat_timing_keys(record["timings"]))
    if extra is not None:
        record.update(extra(model, side))
    return record


def _mac_fields(model: torch.nn.Module, input_shape: Sequence[int], device: torch.device) -> dict[str, Any]:
    """gmacs, gflops, unsupported_ops, flop_counter_gmacs and mac_error (counting never stops a run)."""
    try:
        macs = count_macs(model, input_shape, device)
    except Exception as err:  # noqa: BLE001 - recorded; the timings may still be measured
        return {"gmacs": None, "gflops": None, "unsupported_ops": {}, "flop_counter_gmacs": None,
                "mac_error": error_text(err)}
    return {"gmacs": macs.gmacs, "gflops": macs.gflops, "unsupported_ops": macs.unsupported_ops,
            "macs_counted_on": macs.counted_on, "flop_counter_gmacs": macs.flop_counter_gmacs, "mac_error": None}


def _paper_flop_fields(
    model: torch.nn.Module, side: int, paper_name: str | None, aux_heads: bool = False
) -> dict[str, Any]:
    """gflops_paper (the release's counter on the training model, aux heads included: Table 4's convention);
    for a row whose Table 4 figures are the backbone's alone, also params_backbone and gflops_paper_backbone
    (None when no backbone is exposed)."""
    fields: dict[str, Any] = {"gflops_paper": None, "gflops_paper_error": None}
    try:
        fields["gflops_paper"] = count_paper_flops(model, side, aux_heads=aux_heads).gflops
    except Exception as err:  # noqa: BLE001 - recorded; the other counts and timings still stand
        fields["gflops_paper_error"] = error_text(err)
    part, counted = counted_part(model, paper_name)
    if counted != "network":
        fields["paper_counted"] = counted
        fields["params_backbone"] = count_params(part) if part is not None else None
        fields["gflops_paper_backbone"] = count_paper_flops(part, side).gflops if part is not None else None
    return fields
