"""``netpol observe``: append flows to the long-window observation store.

``--flows FILE...`` aggregates the files into hourly observations and merges
them into the store (``netpol.duckdb`` by default) in one transaction.
``--flows -`` reads an endless stream (``hubble observe --follow -o jsonpb |
netpol observe --flows -``) and checkpoints every ``--checkpoint-interval`` or
``--checkpoint-lines``, so a crash loses at most one interval. SIGINT and
SIGTERM commit what was read and exit 0. ``--retain 30d`` prunes old buckets;
``--status`` summarises the store. See :mod:`recommender.observe.store`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from recommender.cli._args import (
    add_engine_arguments,
    add_flows_argument,
    add_inventory_argument,
    add_strict_argument,
    engine_from_args,
    positive_int,
)
from recommender.cli._gates import require_connections, warn_if_mostly_rejected
from recommender.errors import InputError

NAME = "observe"
HELP = "append flows (files, or a live stream on stdin) to the long-window observation store"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``netpol observe``."""
    from recommender.model import DEFAULT_STORE  # not observe.store: that imports duckdb

    add_flows_argument(
        parser,
        nargs="+",
        metavar="FILE",
        help="flow files, globs, or - for a stream on stdin (plain or .gz)",
    )
    parser.add_argument(
        "--store",
        default=DEFAULT_STORE,
        metavar="PATH",
        help=f"the store file (default {DEFAULT_STORE}; created when missing)",
    )
    add_inventory_argument(
        parser,
        nargs="+",
        metavar="FILE",
        help="kubectl get ... -o json List file(s) to resolve IPs at ingest",
    )
    parser.add_argument(
        "--checkpoint-interval",
        default="60s",
        metavar="DURATION",
        help="stdin: commit at least this often (default 60s)",
    )
    parser.add_argument(
        "--checkpoint-lines",
        type=positive_int,
        default=50_000,
        metavar="N",
        help="stdin: commit after N lines at the latest (default 50000)",
    )
    parser.add_argument(
        "--overlap-lines",
        type=int,
        default=5_000,
        metavar="N",
        help="stdin: lines re-read across a checkpoint so a connection that "
        "straddles it counts once (default 5000)",
    )
    parser.add_argument(
        "--retain",
        metavar="DURATION",
        help="then delete buckets older than this (e.g. 30d) before the newest",
    )
    parser.add_argument(
        "--status",
        action="store_true",
        help="print buckets, time range, rows and size of the store",
    )
    parser.add_argument(
        "--again", action="store_true", help="append files even if the store already holds them"
    )
    add_strict_argument(
        parser,
        action="store_true",
        help="stop with exit code 2 at the first rejected input line",
    )
    add_engine_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Append files, then a stdin stream, then prune, then report."""
    from recommender.observe.store import parse_duration, prune_store, store_info

    if not (args.flows or args.retain or args.status):
        raise InputError(None, "nothing to do", hint="pass --flows FILE..., --retain or --status")
    interval = parse_duration(args.checkpoint_interval).total_seconds()
    if args.retain:
        parse_duration(args.retain)
    if args.flows:
        _append(args, interval)
    if args.retain:
        pruned = prune_store(args.store, args.retain)
        print(
            f"pruned {pruned.rows:,} rows in {pruned.buckets:,} buckets that ended before "
            f"{_time(pruned.cutoff)}"
        )
    if args.status:
        print(store_info(args.store).format())
    return 0


def _append(args: argparse.Namespace, interval: float) -> None:

    files = [p for p in args.flows if p != "-"]
    engine = engine_from_args(args)
    inventory = None
    if args.inventory:
        from recommender.inventory.files import read_inventory

        inventory = read_inventory(args.inventory)
    if files:
        _append_files(args, engine, inventory, files)
    if "-" in args.flows:
        _append_stream(args, engine, inventory, interval)


def _append_files(args: argparse.Namespace, engine: Any, inventory: Any, files: list[str]) -> None:
    from recommender.flows.sources import expand_paths
    from recommender.observe.store import append_observations, find_appended, fingerprint_file

    if hasattr(engine, "fingerprints"):  # spark: any Hadoop path
        paths, prints = engine.fingerprints(files)
    else:
        paths = [s.path for s in expand_paths(files)]
        prints = [fingerprint_file(p) for p in paths]
    seen = find_appended(args.store, prints)
    if seen and not args.again:
        path, append_id = seen[0]
        raise InputError(
            path,
            f"already in the store (append {append_id}); appending it "
            "again would count its connections twice",
            hint="pass --again to append it anyway",
        )
    result = engine.aggregate(paths, inventory, strict=args.strict, bucket="1h")
    require_connections(result.stats, paths, "nothing was appended to the store")
    warn_if_mostly_rejected(result.stats, paths)
    summary = append_observations(
        args.store, result.observations, result.stats, sources=paths, files=prints
    )
    print(
        f"appended {len(paths)} file(s) to {args.store} (append {summary.append_id}): "
        f"{len(result.observations):,} observation rows in {summary.buckets:,} buckets; "
        f"the store holds {summary.store_rows:,} rows"
    )
    print(result.stats.format())


def _append_stream(args: argparse.Namespace, engine: Any, inventory: Any, interval: float) -> None:
    from recommender.observe.store import Checkpoint, StreamAppender, StreamOptions
    from recommender.progress import Progress

    options = StreamOptions(
        interval_s=interval,
        max_lines=args.checkpoint_lines,
        overlap_lines=max(args.overlap_lines, 0),
        strict=args.strict,
    )
    progress = Progress(f"observe {args.store}: lines")
    note = [""]  # the last checkpoint, shown beside the count on a terminal

    def on_checkpoint(cp: Checkpoint) -> None:
        text = (
            f"checkpoint {cp.number}: +{cp.lines:,} lines ({cp.total_lines:,} in all), "
            f"{cp.summary.delta_rows:,} rows merged, the store holds "
            f"{cp.summary.store_rows:,}"
        )
        if progress.stream is None:  # a log, not a terminal: one line per checkpoint
            print(f"observe: {text}", file=sys.stderr, flush=True)
        note[0] = f"[checkpoint {cp.number}, store {cp.summary.store_rows:,} rows]"

    def on_read(n: int) -> None:
        progress.update(n, note[0])

    appender = StreamAppender(args.store, engine, inventory, options, on_checkpoint)
    try:
        with _stop_on_signals() as stop:
            print(
                f"observe: reading stdin into {args.store}; checkpoint every "
                f"{args.checkpoint_interval} or {options.max_lines:,} lines",
                file=sys.stderr,
                flush=True,
            )
            ended = appender.run(sys.stdin.fileno(), stop, on_read)
    finally:
        progress.done()
        appender.close()
    how = "end of input" if ended == "eof" else "stopped by a signal"
    print(
        f"stdin: {appender.lines:,} lines in {appender.checkpoints:,} checkpoint(s) "
        f"appended to {args.store} ({how})"
    )


@contextmanager
def _stop_on_signals() -> Iterator[Callable[[], bool]]:
    """SIGINT/SIGTERM ask the loop to commit and stop; a second one interrupts at once."""
    hits: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        hits.append(signum)
        if len(hits) > 1:
            raise KeyboardInterrupt

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: bool(hits)
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _time(value: Any) -> str:
    if value is None:
        return "- (the store is empty)"
    import pandas as pd

    return str(pd.Timestamp(value).strftime("%Y-%m-%dT%H:%M:%SZ"))
