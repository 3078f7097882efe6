"""User errors: a mistake in what the user gave (a file, a value, a plugin), reported in one line, never a traceback.

`benchmark.cli.main` prints any of them as `error: <message>` on stderr and exits with `EXIT_USER_ERROR`
(`--debug` re-raises for the traceback). Subclasses also derive from the built-in exception that callers
and tests already expect (ValueError, RuntimeError), so raising them changes nothing but the CLI's report.
A damaged file inside a results folder is not an error: readers call `warn_damaged` and go on without it.
"""
from __future__ import annotations

import sys
from pathlib import Path

#: Exit codes of the CLI: 0 done, 1 a user error (this module; also a pre-run check that failed),
#: 2 a malformed command line (argparse), 130 interrupted.
EXIT_USER_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """Something the user supplied is wrong; the message names it and says how to fix it."""


class BadValue(UserError, ValueError):
    """An option's value, a file's content or a dataset's layout that cannot be used."""


class InputMismatch(BadValue):
    """Two inputs that must agree do not (image vs mask, map vs ground truth, weights vs model)."""


class PluginError(UserError, ImportError):
    """A --plugin file or module that cannot be imported (missing, syntax error, failing at import)."""


class Unavailable(UserError, RuntimeError):
    """Something the command needs is not reachable here (a device, the network, an optional package)."""


class StepFailed(UserError, RuntimeError):
    """A step of a composite command (demo) failed; the step printed its own error above."""


class NonFinite(BadValue):
    """Weights or outputs holding NaN or Inf: never scored (a model predicting nothing would score instead)."""


class ContractViolation(UserError, ValueError):
    """A model whose outputs break the output contract (shape, classes, train-mode outputs vs aux_weights)."""


class StorageFailure(UserError, OSError):
    """The disk under a results folder took no more: full, over quota, read-only, or write permission lost.

    It stops the whole run (every later job would fail the same way); what was written before stays.
    """


#: Damaged files already named in this process: several readers may meet the same file (report reads
#: records for its tables and again for its statistics); the user is told once.
_WARNED: set[str] = set()


def warn_damaged(path: str | Path, problem: str, consequence: str) -> None:
    """Name a damaged or foreign results file on stderr, and what is done without it (the command goes on).

    `problem` may already start with a path (the text of an error that names its file); it is not repeated.
    """
    path = str(path)
    if path in _WARNED:
        return
    _WARNED.add(path)
    names_a_file = path in problem or problem.startswith(str(Path(path).parent))
    print(f"warning: {problem if names_a_file else f'{path}: {problem}'}; {consequence}", file=sys.stderr)
