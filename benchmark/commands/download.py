"""download (not available yet: issue 3)."""
from ._pending import not_available


def add_arguments(parser) -> None:
    pass


def run(args) -> int:
    return not_available("download", 3)
