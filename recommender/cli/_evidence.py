"""``recommend``'s evidence coverage hook: assess, warn first, withhold, gate.

Kept apart from ``cli/recommend.py`` so the command stays a list of calls.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from recommender.errors import GateFailed
from recommender.observe.engines.base import IngestStats
from recommender.recommend.coverage import Coverage, assess_coverage, withhold_unobserved


def add_coverage_arguments(parser: argparse.ArgumentParser) -> None:
    """``--deny-unobserved`` and ``--fail-on-gap``."""
    parser.add_argument(
        "--deny-unobserved",
        action="store_true",
        help="also write default-deny (and deny-all group policies) for "
        "namespaces and workloads without any observed traffic",
    )
    parser.add_argument(
        "--fail-on-gap",
        action="store_true",
        help="exit 3 (after writing) when the evidence has gaps: flows from "
        "fewer nodes than the inventory has, or workloads without traffic",
    )


def apply_coverage(
    rec: Any, stats: IngestStats, deny_unobserved: bool, synthetic: bool = False
) -> Coverage:
    """Assess coverage, print its warnings (partial coverage first, before any other
    warning), and unless ``deny_unobserved`` write no policy for what has no evidence.

    ``synthetic``: the inventory comes from manifests; its nodes are made up, so the
    capture's nodes are not compared with them."""
    observers = None if synthetic else getattr(stats, "observers", None)
    coverage = assess_coverage(rec.index, rec.table, list(rec.namespaces), rec.window, observers)
    for warning in coverage.warnings():
        print(f"warning: {warning}", file=sys.stderr)
    if not deny_unobserved:
        coverage = replace(coverage, withheld=withhold_unobserved(rec, coverage))
    rec.coverage = coverage
    return coverage


def check_gap(coverage: Coverage, fail_on_gap: bool) -> None:
    """``--fail-on-gap``: exit 3 when the evidence has gaps (the tree is written)."""
    if fail_on_gap and coverage.has_gaps:
        parts = []
        if coverage.partial:
            seen = set(coverage.inventory_nodes) - set(coverage.missing_nodes)
            parts.append(f"flows from {len(seen)} of {len(coverage.inventory_nodes)} nodes")
        if coverage.quiet:
            parts.append(f"{len(coverage.quiet)} workload(s) without observed traffic")
        raise GateFailed(
            "recommend: evidence gaps ("
            + "; ".join(parts)
            + "); see Evidence coverage in SUMMARY.md"
        )


def add_window_end_argument(parser: argparse.ArgumentParser) -> None:
    """``--now``: the end of the evidence window (never the wall clock)."""
    parser.add_argument(
        "--now",
        metavar="TIME",
        type=_utc_time,
        help="end of the evidence window for the stability states and tighten's "
        "absences (default: the last record's time); e.g. 2026-11-09T00:00:00Z",
    )


def _utc_time(text: str) -> str:
    import pandas as pd

    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from None
    if ts is pd.NaT:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}")
    ts = ts.tz_convert("UTC") if ts.tzinfo is not None else ts.tz_localize("UTC")
    return str(ts.strftime("%Y-%m-%dT%H:%M:%SZ"))


def evidence_input(args: argparse.Namespace, inventory: Any, engine: Any) -> Any:
    """The hourly history, lost events and ``--now`` for ``recommend.stability``."""
    from recommender.observe.history import history_from_args
    from recommender.recommend.stability import EvidenceInput

    history = history_from_args(args, inventory, engine)
    return EvidenceInput(history.buckets, history.lost, getattr(args, "now", None))


def tighten_history(args: argparse.Namespace, inventory: Any) -> Any:
    """``tighten``'s history: with ``--store`` the whole store (up to ``--until``), so
    an absence inside ``--since`` is weighed against earlier use; with ``--flows``
    the window is all there is, and only the lost events are added."""
    from recommender.flows.lost_events import read_lost_events
    from recommender.observe.store.read import read_store_buckets
    from recommender.tighten import TightenHistory

    now = getattr(args, "now", None)
    if getattr(args, "store", None):
        return TightenHistory(
            read_store_buckets(args.store, None, getattr(args, "until", None)), None, now
        )
    return TightenHistory(None, read_lost_events(args.flows), now)
