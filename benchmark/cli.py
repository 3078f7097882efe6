"""Command-line interface: argument parsing only; each command lives in benchmark/commands/."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

COMMANDS = ("list", "download", "prepare", "train", "weights", "evaluate", "compare", "folds", "profile", "export",
            "report", "predict", "demo")

EXIT_CODES = """exit codes:
  0    done
  1    a user error: a missing or damaged input, a bad value, a broken plugin, weights or logits
       holding NaN/Inf, a disk that takes no more writes (full, read-only), or a problem the pre-run
       checks found (train, evaluate, demo check everything before the first job, each model's output
       contract included); one line `error: ...` on stderr names the file, model or folder (--debug
       shows the traceback instead)
  2    a malformed command line (unknown option, missing argument)
  130  interrupted (Ctrl-C); finished work is kept
A damaged or foreign file inside a results folder is named on stderr as a warning and left out
(its job counts as not done); it never stops report, train, compare or --dry-run."""


def default_data_root() -> Path:
    """`$MINISEG_DATA`, else ./datasets."""
    return Path(os.environ.get("MINISEG_DATA") or "datasets")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
        help="import a file (path/to/models.py) or module whose @register_model builders add models; repeatable",
    )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, show the Python traceback instead of the one-line message")


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root", type=Path, default=None,
        help="folder holding COVID-19-<NAME>/ datasets (default: $MINISEG_DATA, else ./datasets)",
    )


def add_results(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results/)")


def add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_benchmark.py",
        description="MiniSeg-Bench: COVID-19 CT infection segmentation benchmark "
        "(the MiniSeg paper's models, folds, recipe, metrics and tables).",
        epilog=EXIT_CODES, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the Python traceback instead of the one-line message")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"benchmark.commands.{name}")
        doc = (module.__doc__ or "").strip()
        cmd = sub.add_parser(
            name, help=doc.splitlines()[0] if doc else name, description=doc,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        add_common_arguments(cmd)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _load_plugins(specs: Sequence[str]) -> None:
    """Import each --plugin; whatever fails inside a user's plugin is reported as that plugin's error."""
    from models import load_plugin

    from .errors import PluginError

    for spec in specs:
        try:
            load_plugin(spec)
        except FileNotFoundError as err:
            raise PluginError(f"--plugin {spec}: {err}") from err
        except Exception as err:  # noqa: BLE001 - the plugin's own code failed: the user's file, not a bug here
            where = f" (line {err.lineno})" if isinstance(err, SyntaxError) and err.lineno else ""
            raise PluginError(f"--plugin {spec}: cannot import it{where}: {type(err).__name__}: {err}") from err


#: What main reports as a user error: our own type, the errors of files the user named (OSError),
#: the ValueError/KeyError the option and data checks raise, and a missing optional package (ImportError).
#: Anything else (TypeError, RuntimeError, AttributeError, ...) is a bug and keeps its traceback.
def _user_errors() -> tuple[type[BaseException], ...]:
    from .errors import UserError

    return (UserError, OSError, ValueError, KeyError, ImportError)


def _message(err: BaseException) -> str:
    """One line for a user error (a KeyError's own text without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; a user error prints `error: ...` and exits 1 (`--debug`: the traceback instead)."""
    from .errors import EXIT_INTERRUPTED, EXIT_USER_ERROR

    args = build_parser().parse_args(argv)
    if getattr(args, "data_root", "absent") is None:
        args.data_root = default_data_root()
    try:
        _load_plugins(args.plugin)
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and an interrupted job resumes on the next run", file=sys.stderr)
        return EXIT_INTERRUPTED
    except _user_errors() as err:
        if args.debug:
            raise
        print(f"error: {_message(err)}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
