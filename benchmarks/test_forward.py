"""Forward-pass benchmarks: eval mode, no_grad, cudnn.benchmark on, synchronised on CUDA."""
from __future__ import annotations

import torch

from benchmark.env import device_name
from benchmark.profiling import fit_size
from benchmark.profiling.modes import cudnn_benchmark
from benchmark.profiling.timing import synchronize
from models import create_model, get_model_info


def test_forward(benchmark, model_name: str, bench_device: torch.device, bench_size: int, bench_batch: int) -> None:
    info = get_model_info(model_name)
    side = fit_size(bench_size, info.min_input_size, info.input_multiple)
    model = create_model(model_name).to(bench_device).eval()
    inputs = torch.randn(bench_batch, 3, side, side, device=bench_device)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            output = model(inputs)
        synchronize(bench_device)
        return output

    benchmark.group = f"forward {side}px batch {bench_batch}"  # same group on every machine: compare across them
    benchmark.extra_info.update(
        model=model_name, input_size=[3, side, side], batch_size=bench_batch, device=device_name(bench_device)
    )
    with cudnn_benchmark(True):
        forward()  # warm-up: lazy initialisation and cuDNN's algorithm search stay out of the timings
        output = benchmark(forward)
    assert output.shape == (bench_batch, 2, side, side)
