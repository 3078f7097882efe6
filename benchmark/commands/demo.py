"""demo (not available yet: issue 8)."""
from ._pending import not_available


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return not_available("demo", 8)
