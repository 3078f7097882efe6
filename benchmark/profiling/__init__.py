"""Profiler: parameter counts, MACs, latency and throughput of registered models on any device.

Two operation counts: fvcore's MACs (`count_macs`, or its rules on meta tensors, `fvcore_macs_meta`)
and the paper's Table 4 "GFLOPs" (`count_paper_flops`: the MiniSeg release's own counter).
"""
from .macs import MacCount, count_macs, fvcore_macs_meta, training_graph
from .meta import meta_copy
from .modes import MODE_PARTS, Mode, parse_mode, parse_modes
from .paper_flops import PaperFlops, count_paper_flops, paper_flops_of, paper_gflops
from .paper_rows import backbone_only_rows, paper_counts
from .params import active_params, count_params, inference_params
from .record import fit_size, flat_timing_keys, profile_model, profile_path
from .timing import METHODS, summarise, time_mode, with_oom_fallback

__all__ = [
    "METHODS", "MODE_PARTS", "MacCount", "Mode", "PaperFlops", "active_params",
    "backbone_only_rows", "count_macs", "count_paper_flops", "count_params", "fit_size", "flat_timing_keys",
    "fvcore_macs_meta", "inference_params", "meta_copy", "paper_counts", "paper_flops_of", "paper_gflops",
    "parse_mode", "parse_modes", "profile_model", "profile_path", "summarise", "time_mode", "training_graph",
    "with_oom_fallback",
]
