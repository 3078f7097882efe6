"""Profiler: parameter counts, MACs, latency and throughput of registered models on any device."""
from .macs import MacCount, count_macs
from .modes import MODE_PARTS, Mode, parse_mode, parse_modes
from .params import active_params, count_params, inference_params
from .record import PROFILE_SCHEMA, fit_size, flat_timing_keys, profile_model, profile_path
from .timing import METHODS, summarise, time_mode, with_oom_fallback

__all__ = [
    "METHODS", "MODE_PARTS", "PROFILE_SCHEMA", "MacCount", "Mode", "active_params", "count_macs", "count_params",
    "fit_size", "flat_timing_keys", "inference_params", "parse_mode", "parse_modes", "profile_model",
    "profile_path", "summarise", "time_mode", "with_oom_fallback",
]
