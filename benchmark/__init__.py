"""MiniSeg-Bench: datasets, training runner, evaluation, profiler and reports."""
__version__ = "0.1.0"
