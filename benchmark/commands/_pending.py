"""Shared by commands whose issue has not landed yet: a clear message and exit code 2."""
import sys


def not_available(command: str, issue: int) -> int:
    print(f"`{command}` is not available yet (tracked in issue {issue}).", file=sys.stderr)
    return 2
