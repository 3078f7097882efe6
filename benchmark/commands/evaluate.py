"""evaluate (not available yet: issue 4)."""
from ._pending import not_available


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return not_available("evaluate", 4)
