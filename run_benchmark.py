#!/usr/bin/env python3
"""MiniSeg-Bench command line: `python run_benchmark.py --help` (same as `miniseg-bench`)."""
import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
