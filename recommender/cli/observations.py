"""``netpol observations``: aggregate flow logs into observations and print them.

A readable table goes to stdout; ``--json OUT``/``--csv OUT`` write every row
(``-`` = stdout). A summary of what was read, skipped and rejected follows the
rows (on stderr when the rows go to stdout as JSON/CSV).
"""

from __future__ import annotations

import argparse
import sys

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_force_argument,
    add_inventory_argument,
    add_strict_argument,
    engine_from_args,
)
from recommender.cli._gates import require_connections, warn_if_mostly_rejected
from recommender.policy_io.atomic import check_writable, write_text_atomic
from recommender.progress import Progress

NAME = "observations"
HELP = "aggregate flow logs (Hubble JSON, .gz, globs, - for stdin) into observed connections"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol observations``."""
    add_flows_argument(
        parser,
        nargs="+",
        required=True,
        metavar="FILE",
        help="flow files, globs or - for stdin (plain or .gz)",
    )
    add_inventory_argument(
        parser,
        nargs="+",
        metavar="FILE",
        help="kubectl get ... -o json List file(s) to resolve IPs",
    )
    out = parser.add_mutually_exclusive_group()
    out.add_argument("--json", metavar="OUT", help="write every row as JSON (- = stdout)")
    out.add_argument("--csv", metavar="OUT", help="write every row as CSV (- = stdout)")
    add_strict_argument(
        parser,
        action="store_true",
        help="stop with exit code 2 at the first rejected input line",
    )
    add_engine_arguments(parser)
    parser.add_argument(
        "--bucket", metavar="WIDTH", help="count per time bucket, e.g. 1h (adds a bucket column)"
    )
    add_force_argument(parser, "replace an existing output file")


def run(args: argparse.Namespace) -> int:
    """Aggregate, then print the table or write JSON/CSV, then the summary."""
    from recommender.report.observations import (
        observation_records,
        render_csv,
        render_json,
        render_table,
    )

    target = args.json or args.csv
    if target and target != "-":
        check_writable(target, args.force)  # fail before a long run
    progress = Progress("observations", total=2)
    progress.step("reading the inventory")
    inventory = None
    if args.inventory:
        from recommender.inventory.files import read_inventory

        inventory = read_inventory(args.inventory)
    progress.step("reading and aggregating the flows")
    result = engine_from_args(args).aggregate(
        args.flows, inventory, strict=args.strict, bucket=_bucket(args.bucket)
    )
    progress.done()
    require_connections(result.stats, args.flows, "no observation to show")
    warn_if_mostly_rejected(result.stats, args.flows)
    rows = observation_records(result.observations)
    if target:
        text = render_json(rows, result.stats) if args.json else render_csv(rows)
        if target == "-":
            sys.stdout.write(text)
            print(result.stats.format(), file=sys.stderr)
            return 0
        write_text_atomic(target, text, force=args.force)
        print(f"wrote {len(rows)} observations to {target}")
    else:
        sys.stdout.write(render_table(rows))
    print(result.stats.format())
    return 0


def _bucket(value: str | None) -> str | None:
    if value is None:
        return None
    from recommender.errors import InputError
    from recommender.observe.engines.aggregate import bucket_interval

    try:
        bucket_interval(value)
    except ValueError as exc:
        raise InputError(None, str(exc)) from None
    return value
