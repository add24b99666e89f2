"""``netpol convert --to parquet``: parse Hubble JSON once, aggregate it many times.

The Parquet keeps every line as the aggregation reads it (see
:mod:`recommender.flows.parquet`), so ``observations``, ``recommend``,
``shadow``, ``observe`` and ``tighten`` give the same results from it as from
the JSON, references and statistics included, without parsing JSON again.

The embedded engine writes one file (``OUT``, conventionally ``*.parquet``); the
Spark engine writes a directory of part files, on any Hadoop path. Both engines
read both.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_force_argument,
    engine_from_args,
)
from recommender.cli._gates import require_connections
from recommender.errors import InputError
from recommender.flows.parquet import is_parquet_input
from recommender.observe.engines.base import IngestStats
from recommender.policy_io.atomic import atomic_directory, check_writable
from recommender.progress import Progress

NAME = "convert"
HELP = "convert Hubble flow logs to Parquet (parse once, aggregate many times)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol convert``."""
    add_flows_argument(
        parser,
        nargs="+",
        required=True,
        metavar="FILE",
        help="Hubble flow files or globs (plain or .gz; - for stdin with the embedded engine)",
    )
    parser.add_argument("--to", required=True, choices=("parquet",), help="output format")
    parser.add_argument(
        "--out",
        required=True,
        metavar="OUT",
        help="output: a .parquet file (embedded) or directory (spark, any Hadoop path)",
    )
    add_force_argument(parser, "replace an existing output")
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Convert, then print how many lines of each kind were written."""
    if not is_parquet_input(args.out):
        raise InputError(
            args.out,
            "the output name must end in .parquet",
            hint="Parquet inputs are recognised by that suffix",
        )
    engine = engine_from_args(args)
    progress = Progress("convert", total=1)
    progress.step(f"writing {args.out}")
    local = "://" not in args.out
    if args.engine == "spark":
        if local:
            with atomic_directory(args.out, args.force) as tmp:  # refuses an existing OUT
                stats = engine.convert(args.flows, os.path.abspath(tmp), force=True)
                _require_requests(stats, args.flows, f"{tmp}/**/*.parquet")
        else:
            stats = engine.convert(args.flows, args.out, force=args.force)
            _require_requests(stats, args.flows, None)
    else:
        target = check_writable(args.out, args.force)
        tmp = target.with_name(f".{target.name}.convert")
        try:
            stats = engine.convert(args.flows, str(tmp), force=True)
            _require_requests(stats, args.flows, str(tmp))
            os.replace(tmp, target)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    progress.done()
    kinds = ", ".join(f"{k}: {stats[k]:,}" for k in sorted(stats))
    print(f"wrote {args.out}: {sum(stats.values()):,} lines ({kinds})", file=sys.stderr)
    return 0


def _require_requests(kinds: dict[str, int], flows: list[str], local: str | None) -> None:
    """Refuse to write a Parquet that holds no connection request (nothing any command
    could learn from or judge); ``local`` is the written file or glob, when readable here."""
    requests, rejects = kinds.get("flow", 0), {"reasons not read back": kinds.get("reject", 0)}
    if local is not None:
        requests, rejects = _read_back(local)
    if requests:
        return
    flows_seen = kinds.get("flow", 0)  # here each one is a reply (no request was found)
    stats = IngestStats(
        lines=sum(kinds.values()),
        flow_records=flows_seen,
        replies=flows_seen,
        rejects={k: n for k, n in rejects.items() if n},
        non_flow={k: n for k, n in kinds.items() if k not in ("flow", "reject")},
    )
    note = "nothing was written" if local is not None else "the output was written anyway"
    require_connections(stats, flows, note)


def _read_back(local: str) -> tuple[int, dict[str, int]]:
    """Connection requests and rejects by reason in a written Parquet."""
    import duckdb

    from recommender.flows.hubble_sql import lit, reject_class_sql

    con = duckdb.connect()
    try:
        rel = f"read_parquet({lit(local)})"
        row = con.execute(
            f"SELECT count(*) FROM {rel} WHERE line_kind = 'flow' AND NOT coalesce(is_reply, false)"
        ).fetchall()[0]
        rejects = con.execute(
            f"SELECT {reject_class_sql('reject_detail')}, count(*) FROM {rel} "
            "WHERE line_kind = 'reject' GROUP BY 1"
        ).fetchall()
    finally:
        con.close()
    return int(row[0]), {str(k): int(n) for k, n in rejects}
