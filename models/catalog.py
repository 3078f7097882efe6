"""Imports every built-in model module so that their `@register_model` decorators run."""
from . import miniseg  # noqa: F401
from . import zoo  # noqa: F401
