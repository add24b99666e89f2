"""``netpol score``: judge a policy set against simulator ground truth."""

from __future__ import annotations

import argparse

from recommender.cli._args import add_flows_argument, add_force_argument, add_inventory_argument
from recommender.policy_io.atomic import check_writable, write_json_atomic

NAME = "score"
HELP = "measure false-deny, block rate, over-permissiveness and compactness against truth.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol score``."""
    parser.add_argument("--policies", nargs="+", required=True, metavar="PATH")
    parser.add_argument("--truth", required=True, metavar="truth.json")
    add_flows_argument(
        parser,
        nargs=None,  # one file: the simulator's
        required=True,
        metavar="FILE",
        help="the simulator's flow file to replay (usually flows-fresh.jsonl.gz)",
    )
    add_inventory_argument(parser, nargs="+", required=True, metavar="FILE")
    parser.add_argument("--json", metavar="OUT", help="write the measures as JSON")
    add_force_argument(parser, "replace an existing output")


def run(args: argparse.Namespace) -> int:
    """Score, print the table, write JSON."""
    from recommender.evaluate.measure import format_table, score

    if args.json:
        check_writable(args.json, args.force)
    result = score(args.policies, args.truth, args.flows, args.inventory)
    print(format_table(result))
    if args.json:
        write_json_atomic(args.json, result, args.force)
    return 0
