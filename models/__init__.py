"""The model registry of MiniSeg-Bench (see DESIGN.md for the public API)."""
from .registry import ModelInfo, create_model, get_model_info, list_models, load_plugin, register_model

__all__ = ["ModelInfo", "create_model", "get_model_info", "list_models", "load_plugin", "register_model"]
