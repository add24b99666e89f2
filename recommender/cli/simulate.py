"""``netpol simulate``: write an inventory, Hubble flow logs and their ground truth."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import UTC, datetime

from recommender.cli._args import add_force_argument
from recommender.errors import InputError

NAME = "simulate"
HELP = "simulate a cluster: inventory, Hubble jsonpb flows (train/fresh) and truth.json"

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """``90m``, ``12h``, ``2d`` -> seconds.

    >>> parse_duration("12h"), parse_duration("90m")
    (43200, 5400)
    """
    match = _DURATION.match(text.strip())
    if not match:
        raise InputError(None, f"bad duration {text!r}", hint="use e.g. 30m, 12h, 2d")
    seconds = int(float(match.group(1)) * _UNIT_S[match.group(2)])
    if seconds < 60:
        raise InputError(None, f"duration {text!r} is shorter than a minute")
    return seconds


def parse_start(text: str) -> int:
    """RFC 3339 UTC start time -> unix seconds."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(None, f"bad --start {text!r}", hint="e.g. 2026-11-02T00:00:00Z") from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topology",
        required=True,
        help="bundled name (webshop, saas, large, large:2000) or a YAML file",
    )
    parser.add_argument("--size", type=int, help="size of generated topologies (large)")
    parser.add_argument("--window", default="24h", help="training window (default 24h)")
    parser.add_argument("--fresh-window", help="window after the rollout (default: --window)")
    parser.add_argument("--start", default="2026-11-02T00:00:00Z", help="start of training")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--out", required=True, help="output directory")
    add_force_argument(parser, "replace an existing --out")
    parser.add_argument("--no-replies", action="store_true", help="no reply packets")
    parser.add_argument("--no-damage", action="store_true", help="no damaged lines")
    parser.add_argument(
        "--no-non-flow", action="store_true", help="no lost_events/node_status lines"
    )
    parser.add_argument(
        "--no-illegitimate", action="store_true", help="no scans, lateral movement or exfiltration"
    )
    volume = parser.add_mutually_exclusive_group()
    volume.add_argument(
        "--rate-scale",
        type=float,
        default=1.0,
        help="multiply every edge rate (CronJob runs excepted)",
    )
    volume.add_argument(
        "--flows", type=int, help="aim for about N flow lines in the training window"
    )
    parser.add_argument(
        "--compresslevel",
        type=int,
        default=6,
        choices=range(1, 10),
        metavar="1-9",
        help="gzip level (default 6)",
    )


def run(args: argparse.Namespace) -> int:
    from recommender.simulate import SimOptions, load_topology, run_simulation

    window = parse_duration(args.window)
    options = SimOptions(
        seed=args.seed,
        window_s=window,
        fresh_window_s=parse_duration(args.fresh_window) if args.fresh_window else None,
        start_s=parse_start(args.start),
        replies=not args.no_replies,
        illegitimate=not args.no_illegitimate,
        damage=not args.no_damage,
        non_flow=not args.no_non_flow,
        rate_scale=args.rate_scale,
        flows=args.flows,
        compresslevel=args.compresslevel,
    )
    if options.rate_scale <= 0 or (options.flows is not None and options.flows < 1):
        raise InputError(None, "--rate-scale and --flows must be positive")
    topology = load_topology(args.topology, args.size)
    summary = run_simulation(
        topology, args.out, options, force=args.force, show_progress=sys.stderr.isatty()
    )
    total = sum(summary.lines.values())
    for name, lines in sorted(summary.lines.items()):
        print(f"{summary.out_dir / name}: {lines:,} lines")
    print(
        f"{topology.name}: {len(topology.workloads)} workloads, {len(topology.edges)} edges; "
        f"{total:,} lines in {summary.seconds:.1f} s ({summary.lines_per_second:,.0f} lines/s)"
    )
    return 0
