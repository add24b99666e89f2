"""``netpol convert --to parquet``: parse Hubble JSON once, aggregate it many times.

The Parquet keeps every line as the aggregation reads it (see
:mod:`recommender.ingest.parquet`), so ``observations``, ``recommend``,
``shadow``, ``observe`` and ``tighten`` give the same results from it as from
the JSON, references and statistics included, without parsing JSON again.

The embedded engine writes one file (``OUT``, conventionally ``*.parquet``); the
Spark engine writes a directory of part files, on any Hadoop path. Both engines
read both.
"""

from __future__ import annotations

import argparse
import os
import sys

from recommender.commands._args import add_engine_arguments, engine_from_args
from recommender.errors import InputError
from recommender.ingest.parquet import is_parquet_input
from recommender.io.atomic import atomic_directory, check_writable

NAME = "convert"
HELP = "convert Hubble flow logs to Parquet (parse once, aggregate many times)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol convert``."""
    parser.add_argument("--flows", nargs="+", required=True, metavar="FILE",
                        help="Hubble flow files or globs (plain or .gz; - for stdin with the "
                        "embedded engine)")
    parser.add_argument("--to", required=True, choices=("parquet",), help="output format")
    parser.add_argument("--out", required=True, metavar="OUT",
                        help="output: a .parquet file (embedded) or directory (spark, any "
                        "Hadoop path)")
    parser.add_argument("--force", action="store_true", help="replace an existing output")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Convert, then print how many lines of each kind were written."""
    if not is_parquet_input(args.out):
        raise InputError(args.out, "the output name must end in .parquet",
                         hint="Parquet inputs are recognised by that suffix")
    engine = engine_from_args(args)
    local = "://" not in args.out
    if args.engine == "spark":
        if local:
            with atomic_directory(args.out, args.force) as tmp:  # refuses an existing OUT
                stats = engine.convert(args.flows, os.path.abspath(tmp), force=True)
        else:
            stats = engine.convert(args.flows, args.out, force=args.force)
    else:
        check_writable(args.out, args.force)
        stats = engine.convert(args.flows, args.out, force=args.force)
    kinds = ", ".join(f"{k}: {stats[k]:,}" for k in sorted(stats))
    print(f"wrote {args.out}: {sum(stats.values()):,} lines ({kinds})", file=sys.stderr)
    return 0
