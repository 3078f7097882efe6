"""Command-line interface: argument parsing only; each command lives in benchmark/commands/."""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from typing import Sequence

COMMANDS = ("list", "download", "prepare", "train", "weights", "evaluate", "compare", "folds", "profile", "report",
            "demo")


def default_data_root() -> Path:
    """`$MINISEG_DATA`, else ./datasets."""
    return Path(os.environ.get("MINISEG_DATA") or "datasets")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """Options every command takes."""
    parser.add_argument(
        "--plugin", action="append", default=[], metavar="FILE_OR_MODULE",
        help="import a file (path/to/models.py) or module whose @register_model builders add models; repeatable",
    )


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
    )
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "data_root", "absent") is None:
        args.data_root = default_data_root()
    from models import load_plugin

    try:
        for spec in args.plugin:
            load_plugin(spec)
        return int(args._run(args) or 0)
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and an interrupted job resumes on the next run", file=sys.stderr)
        return 130
    except (KeyError, FileNotFoundError, ValueError, TypeError, RuntimeError, ImportError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
