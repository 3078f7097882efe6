"""The profiler: parameter and MAC counts against known values, timing logic on CPU, records, CLI."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch
from torch import nn

from benchmark.cli import main
from benchmark.env import device_slug
from benchmark.profiling import (
    Mode,
    active_params,
    count_macs,
    count_params,
    fit_size,
    flat_timing_keys,
    inference_params,
    parse_mode,
    parse_modes,
    summarise,
    time_mode,
    with_oom_fallback,
)
from benchmark.profiling.macs import fvcore_macs, fvcore_macs_meta
from benchmark.profiling.paper_flops import count_paper_flops
from benchmark.profiling.paper_rows import NO_BACKBONE
from benchmark.profiling.record import _paper_flop_fields
from benchmark.records import PROFILE_SCHEMA
from benchmark.profiling.timing import PAPER_DROPPED, PAPER_ITERATIONS, SKIPPED_NEEDS_CUDA, is_out_of_memory
from models import create_model

CPU = torch.device("cpu")
RECORD_KEYS = {
    "schema", "model", "paper_name", "params", "params_inference", "params_active", "gmacs", "gflops",
    "input_size", "unsupported_ops", "flop_counter_gmacs", "gflops_paper", "environment", "timings",
}
TIMING_KEYS = {
    "mode", "method", "batch_size", "latency_ms_median", "latency_ms_iqr", "throughput_img_s",
    "peak_memory_mib", "oom_fallback_from", "status", "error",
}


@pytest.fixture(scope="module")
def miniseg() -> nn.Module:
    return create_model("miniseg")


@pytest.fixture(scope="module")
def smp():
    return pytest.importorskip("segmentation_models_pytorch")


def tiny_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))


# --- parameters and MACs against independently known values ---------------------------------

def test_miniseg_params_training_inference_active(miniseg):
    assert count_params(miniseg) == 82_912
    assert inference_params("miniseg", miniseg, (1, 3, 64, 64)) == (82_666, "built with aux=False")
    # The eval forward never calls pred2..pred4, so they are not active either.
    assert active_params(miniseg) == 82_666
    assert miniseg.training, "active_params must leave the caller's model untouched"
    assert all(p.grad is None for p in miniseg.parameters())


def test_miniseg_macs_at_512(miniseg):
    macs = count_macs(miniseg, (1, 3, 512, 512))
    assert macs.gmacs == pytest.approx(0.5117, abs=5e-4)  # fvcore: 0.512 (PROTOCOL.md)
    assert round(macs.gmacs, 2) == 0.51
    assert macs.gflops == pytest.approx(2 * macs.gmacs)
    assert macs.counted_on == "meta" and macs.unsupported_ops is None  # a meta forward lists no unsupported ops
    traced, unsupported = fvcore_macs(miniseg, torch.zeros(1, 3, 512, 512))
    assert traced == round(macs.gmacs * 1e9)  # the meta count is fvcore's own count
    assert unsupported["aten::prelu"] == 40
    # FlopCounterMode counts convolutions only; fvcore adds batch norm and upsampling.
    assert 0.45 < macs.flop_counter_gmacs < macs.gmacs


def test_mac_counting_is_silent(miniseg, recwarn, caplog):
    with caplog.at_level(logging.DEBUG, logger="fvcore"):
        count_macs(miniseg, (1, 3, 32, 32))
    assert [str(w.message) for w in recwarn] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_smp_unet_resnet34_params_and_macs_at_512(smp):
    unet = smp.Unet(encoder_name="resnet34", encoder_weights=None, classes=2)
    assert count_params(unet) == 24_436_514
    macs = count_macs(unet, (1, 3, 512, 512))  # measured here at 512 directly (fvcore ~1 s on CPU)
    assert macs.gmacs == pytest.approx(31.4, abs=0.05)
    assert macs.flop_counter_gmacs == pytest.approx(31.29, abs=0.05)


def test_smp_pspnet_keeps_encoder_stages_it_never_runs(smp):
    psp = smp.PSPNet(encoder_name="resnet34", encoder_weights=None, classes=2)
    total, active = count_params(psp), active_params(psp)
    assert total == 21_442_594
    assert active < total
    unused = count_params(psp.encoder.layer3) + count_params(psp.encoder.layer4)
    assert total - active == unused  # encoder depth 3: layer3 and layer4 are built but never run


def test_fit_size_rounds_up_to_the_model_constraints():
    assert fit_size(500, 32, 16) == 512
    assert fit_size(16, 32, 1) == 32
    assert fit_size(512, 32, 16) == 512


# --- modes -------------------------------------------------------------------------------------

def test_parse_mode_canonical_names():
    assert parse_mode("eager") == Mode()
    assert (Mode().name, Mode().key_suffix) == ("eager", "")
    mode = parse_mode("cudagraph+channels_last+BF16")
    assert mode == Mode(dtype="bf16", channels_last=True, cudagraph=True)
    assert mode.name == "bf16+channels_last+cudagraph"
    assert mode.key_suffix == "_bf16_channels_last_cudagraph"
    assert parse_mode("fp16+compile").name == "fp16+compile"


def test_parse_modes_keeps_order_and_drops_repeats():
    assert [m.name for m in parse_modes("eager,bf16, channels_last+bf16,eager,bf16+channels_last")] == [
        "eager", "bf16", "bf16+channels_last",
    ]


@pytest.mark.parametrize(
    "text, message",
    [("", "empty"), ("bf16+", "empty"), ("turbo", "unknown"), ("eager+bf16", "combines with nothing"),
     ("bf16+fp16", "one of bf16 and fp16"), ("compile+compile", "repeats")],
)
def test_parse_mode_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mode(text)


# --- OOM fallback and failures -------------------------------------------------------------------

def fake_runner(fits_up_to: int, tried: list[int]):
    def run(batch_size: int) -> dict:
        tried.append(batch_size)
        if batch_size > fits_up_to:
            raise torch.OutOfMemoryError(f"CUDA out of memory at batch {batch_size}")
        return {"throughput_img_s": float(batch_size)}

    return run


def test_oom_fallback_halves_the_batch_until_it_fits():
    tried: list[int] = []
    result = with_oom_fallback(fake_runner(8, tried), 30)
    assert tried == [30, 15, 7]
    assert result == {"throughput_img_s": 7.0, "batch_size": 7, "oom_fallback_from": 30, "status": "ok", "error": None}


def test_oom_even_at_batch_1_is_recorded_not_raised():
    tried: list[int] = []
    result = with_oom_fallback(fake_runner(0, tried), 4)
    assert tried == [4, 2, 1]
    assert (result["status"], result["batch_size"], result["oom_fallback_from"]) == ("failed", 1, 4)
    assert result["error"].startswith("out of memory even at batch 1 (asked for 4)")


def test_other_failures_are_recorded_without_retry():
    tried: list[int] = []

    def broken(batch_size: int) -> dict:
        tried.append(batch_size)
        raise ValueError("boom")

    result = with_oom_fallback(broken, 30)
    assert tried == [30]
    assert result == {"batch_size": 30, "oom_fallback_from": None, "status": "failed", "error": "ValueError: boom"}


def test_cpu_allocation_failure_counts_as_oom():
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 bytes"))
    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory"))
    assert not is_out_of_memory(RuntimeError("size mismatch"))


def test_failing_forward_becomes_a_failed_entry():
    entry = time_mode(nn.Linear(3, 2), Mode(), 2, size=8, device=CPU, warmup=0, repeats=1)
    assert entry["status"] == "failed" and entry["error"].startswith("RuntimeError")
    assert (entry["mode"], entry["batch_size"], entry["oom_fallback_from"]) == ("eager", 2, None)
    assert TIMING_KEYS <= set(entry) and entry["throughput_img_s"] is None


# --- the timing path on CPU --------------------------------------------------------------------

def test_summarise_statistics():
    stats = summarise([1.0, 2.0, 3.0, 4.0, 100.0], batch_size=10, method="events")
    assert (stats["latency_ms_median"], stats["latency_ms_iqr"], stats["latency_ms_mean"]) == (3.0, 2.0, 22.0)
    assert stats["throughput_img_s"] == pytest.approx(10 * 1000 / 3.0)
    paper = summarise([1.0, 2.0, 3.0, 4.0, 100.0], batch_size=10, method="paper")
    assert (paper["statistic"], paper["throughput_img_s"]) == ("mean", pytest.approx(10 * 1000 / 22.0))


@pytest.mark.parametrize("mode", ["eager", "bf16+channels_last"])
def test_time_mode_on_cpu_entry_is_consistent_with_its_samples(mode):
    entry = time_mode(tiny_model(), parse_mode(mode), 2, size=16, device=CPU, warmup=1, repeats=5)
    assert TIMING_KEYS <= set(entry)
    assert (entry["status"], entry["error"], entry["mode"], entry["timer"]) == ("ok", None, mode, "perf_counter")
    samples = entry["latency_ms_samples"]
    assert len(samples) == entry["repeats"] == 5 and min(samples) > 0
    assert entry["latency_ms_median"] == pytest.approx(np.median(samples))
    q25, q75 = np.percentile(samples, [25, 75])
    assert entry["latency_ms_iqr"] == pytest.approx(q75 - q25)
    assert entry["throughput_img_s"] == pytest.approx(2 * 1000 / entry["latency_ms_median"])
    assert entry["peak_memory_kind"] == "process_peak_rss" and entry["peak_memory_mib"] > 10
    assert entry["load_avg_1m"] >= 0


def test_paper_method_runs_the_release_loop():
    entry = time_mode(tiny_model(), Mode(), 1, size=8, device=CPU, method="paper")
    assert entry["repeats"] == PAPER_ITERATIONS - PAPER_DROPPED == 89
    assert entry["statistic"] == "mean"
    assert entry["throughput_img_s"] == pytest.approx(1000 / np.mean(entry["latency_ms_samples"]))


def test_cudagraph_on_cpu_is_skipped_and_bad_method_rejected():
    entry = time_mode(tiny_model(), parse_mode("bf16+cudagraph"), 30, size=8, device=CPU)
    assert (entry["status"], entry["error"], entry["mode"]) == ("skipped", SKIPPED_NEEDS_CUDA, "bf16+cudagraph")
    with pytest.raises(ValueError, match="unknown timing method"):
        time_mode(tiny_model(), Mode(), 1, size=8, device=CPU, method="stopwatch")


def test_flat_timing_keys_name_batch_mode_and_method():
    base = {"status": "ok", "latency_ms_median": 2.0, "latency_ms_mean": 3.0, "throughput_img_s": 9.0}
    timings = [
        {**base, "mode": "eager", "method": "events", "batch_size": 1},
        {**base, "mode": "bf16+channels_last", "method": "events", "batch_size": 15},
        {**base, "mode": "eager", "method": "paper", "batch_size": 30},
        {"mode": "cudagraph", "method": "events", "batch_size": 1, "status": "skipped"},
    ]
    assert flat_timing_keys(timings) == {
        "latency_ms_bs1": 2.0, "throughput_img_s_bs1": 9.0,
        "latency_ms_bs15_bf16_channels_last": 2.0, "throughput_img_s_bs15_bf16_channels_last": 9.0,
        "latency_ms_bs30_paper": 3.0, "throughput_img_s_bs30_paper": 9.0,
    }


# --- the command and its record ------------------------------------------------------------------

def test_profile_command_writes_the_record(tmp_path, capsys):
    argv = ["profile", "--models", "miniseg", "--device", "cpu", "--size", "32", "--batch-sizes", "1",
            "--modes", "eager,cudagraph", "--repeats", "1", "--warmup", "0", "--results", str(tmp_path), "--json"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert [r["model"] for r in printed] == ["miniseg"]
    path = tmp_path / "profile" / device_slug(CPU) / "miniseg.json"
    record = json.loads(path.read_text())
    assert RECORD_KEYS <= set(record)
    assert (record["schema"], record["model"], record["paper_name"]) == (PROFILE_SCHEMA, "miniseg", "MiniSeg")
    assert (record["params"], record["params_inference"], record["params_active"]) == (82_912, 82_666, 82_666)
    assert record["input_size"] == [3, 32, 32]
    assert record["gflops"] == pytest.approx(2 * record["gmacs"])
    # Table 4's convention: the training model, auxiliary heads run (as the release's eval forward ran them).
    with_aux = count_paper_flops(create_model("miniseg"), 32, aux_heads=True).gflops
    assert record["gflops_paper"] == with_aux > count_paper_flops(create_model("miniseg"), 32).gflops
    assert "params_backbone" not in record
    assert record["environment"]["torch_threads"] == torch.get_num_threads()
    assert {"cpu_model", "torch", "device_name"} <= set(record["environment"])
    assert [(t["mode"], t["status"]) for t in record["timings"]] == [("eager", "ok"), ("cudagraph", "skipped")]
    assert all(TIMING_KEYS <= set(t) for t in record["timings"])
    assert record["latency_ms_bs1"] == record["timings"][0]["latency_ms_median"]
    assert not any("cudagraph" in key for key in record)
    assert {k: v for k, v in printed[0].items() if k != "record_path"} == record


@pytest.mark.parametrize(
    "option, value, message",
    [("--modes", "eager,turbo", "turbo"), ("--batch-sizes", "1,0", "batch sizes"),
     ("--method", "stopwatch", "stopwatch"), ("--models", "no-such-model*", "no registered model")],
)
def test_profile_command_rejects_bad_options(tmp_path, capsys, option, value, message):
    argv = ["profile", "--device", "cpu", "--no-timing", "--results", str(tmp_path), "--models", "miniseg",
            option, value]
    assert main(argv) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "profile").exists()


def test_profile_command_threads_option_sets_and_records_the_thread_count(tmp_path, capsys):
    before = torch.get_num_threads()
    try:
        argv = ["profile", "--models", "miniseg", "--device", "cpu", "--threads", "1", "--size", "32",
                "--no-timing", "--results", str(tmp_path), "--json"]
        assert main(argv) == 0
        record = json.loads(capsys.readouterr().out)[0]
        assert record["environment"]["torch_threads"] == 1
        assert record["timings"] == [] and "latency_ms_bs1" not in record
        assert record["record_path"].endswith("-1t/miniseg.json")
    finally:
        torch.set_num_threads(before)


def test_profile_no_timing_json_prints_the_papers_gflops_at_512(tmp_path, capsys):
    argv = ["profile", "--models", "miniseg", "--device", "cpu", "--no-timing", "--results", str(tmp_path), "--json"]
    assert main(argv) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert f"{record['gflops_paper']:.4f}" == "0.5017"  # the authors' counter on their build; Table 4: 0.50
    assert record["gflops_paper"] < record["gmacs"]  # PReLU and upsampling are outside the release's count


class WithBackbone(nn.Module):
    """A network whose `backbone` is the part a backbone-only row of Table 4 counted."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.ReLU())
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def test_backbone_only_rows_record_the_backbones_counts():
    net = WithBackbone()
    fields = _paper_flop_fields(net, 8, "ShuffleNet")
    assert fields["paper_counted"] == "backbone"
    assert fields["params_backbone"] == 4 * 27
    assert fields["gflops_paper_backbone"] * 1e9 == pytest.approx(4 * 27 * 64 + 4 * 64)
    assert fields["gflops_paper"] * 1e9 == pytest.approx(4 * 27 * 64 + 4 * 64 + 2 * 5 * 64)
    assert "params_backbone" not in _paper_flop_fields(net, 8, "U-Net")
    missing = _paper_flop_fields(tiny_model(), 8, "MobileNet")
    assert (missing["paper_counted"], missing["params_backbone"]) == (NO_BACKBONE, None)


# --- fvcore's rules on meta tensors against fvcore itself ---------------------------------------------

class DeadBranch(nn.Module):
    """An auxiliary conv computed in eval mode and thrown away (fvcore's trace drops it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.aux = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        self.aux(y)
        return y


class Mixed(nn.Module):
    """One of each op fvcore counts, plus a write into a slice of a preallocated tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, groups=1)
        self.bn = nn.BatchNorm2d(8)
        self.gn = nn.GroupNorm(2, 8)
        self.ln = nn.LayerNorm(8)
        self.inorm = nn.InstanceNorm2d(8, affine=True)
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
        self.fc = nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.inorm(self.gn(self.bn(self.conv(x))))
        tokens = self.ln(y.flatten(2).transpose(1, 2))  # (1, HW, 8)
        attn = torch.einsum("abc,abd->acd", tokens, tokens) @ tokens.transpose(1, 2)  # (1, 8, HW)
        y = y + attn.reshape(y.shape) + torch.bmm(tokens.transpose(1, 2), tokens).sum()
        pooled = nn.functional.adaptive_avg_pool2d(y, 1) + nn.functional.adaptive_avg_pool2d(y, 3).mean()
        z = self.fc(tokens).sum() + self.fc(pooled.flatten(1)).sum()
        out = torch.zeros(1, 12, x.shape[2], x.shape[3], device=x.device)
        out[:, :4] = self.up(y)
        out[:, 4:] = nn.functional.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)
        return out + nn.functional.interpolate(y[:, :1], scale_factor=2) + z


@pytest.mark.parametrize("make", [DeadBranch, Mixed, tiny_model], ids=["dead-branch", "mixed", "tiny"])
def test_fvcore_rules_on_meta_equal_fvcore(make):
    model = make()
    traced, _ = fvcore_macs(model, torch.randn(1, 3, 16, 16))
    assert fvcore_macs_meta(model, (1, 3, 16, 16)) == traced > 0
    assert all(p.device.type == "cpu" for p in model.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["miniseg", "annnet-resnet50", "dfn-resnet101", "enet", "gff-resnet101"])
def test_fvcore_rules_on_meta_equal_fvcore_on_paper_models(name):
    """A few Table 4 models at 64x64: an aux head off the eval path, a shared backbone, unpooling, gating."""
    model = create_model(name)
    traced, _ = fvcore_macs(model, torch.randn(1, 3, 64, 64))
    assert fvcore_macs_meta(model, (1, 3, 64, 64)) == traced
