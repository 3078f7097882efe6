"""The model registry of MiniSeg-Bench (see DESIGN.md for the public API).

Infrastructure files carry a leading underscore, as in timm: `_registry.py` (the registry and plugins),
`_catalog.py` (imports every built-in model file), `_pretrained.py` (ImageNet weights, offline-safe) and
`_weights.py` (strict state-dict loading). Every other file holds architectures: one per family of the paper's
baselines, MiniSeg and its ablations, shared blocks (`layers.py`, `backbones.py`) and library models (`zoo.py`).
"""
from ._registry import ModelInfo, create_model, get_model_info, list_models, load_plugin, register_model

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "load_plugin", "register_model"]
