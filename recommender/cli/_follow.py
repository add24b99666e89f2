"""``netpol shadow --follow``: judge a live stream as it comes, serve metrics.

``--flows -`` reads stdin until its end; ``--flows FILE`` tails the file until
SIGINT/SIGTERM. Either way the lines are judged in chunks (every
``--follow-interval`` seconds) by the batch core, so the report written at
the end, and the metrics at ``--metrics-addr``, count exactly what ``netpol
shadow`` of the same lines reports. SIGINT/SIGTERM judge what was read, write
the outputs and exit as at the end of input; a second signal interrupts.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from recommender.errors import InputError
from recommender.observe.engines.base import IngestStats
from recommender.policy_io.atomic import check_writable
from recommender.progress import Progress

if TYPE_CHECKING:  # pandas behind these: imported when a run starts, not at start-up
    from recommender.model import Inventory
    from recommender.shadow.core import ShadowRun


def add_follow_arguments(parser: argparse.ArgumentParser) -> None:
    """``--follow``, ``--follow-interval`` and ``--metrics-addr``."""
    parser.add_argument(
        "--follow",
        action="store_true",
        help="judge a live stream as it arrives: --flows - until the end of stdin, or "
        "--flows FILE tailed until SIGINT/SIGTERM; the outputs are written at the end",
    )
    parser.add_argument(
        "--follow-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --follow: judge what was read at least this often (default 5; each "
        "judging has a fixed cost of about a second of CPU)",
    )
    parser.add_argument(
        "--metrics-addr",
        metavar="HOST:PORT",
        help="with --follow: serve OpenMetrics at http://HOST:PORT/metrics "
        "(port 0 picks a free one; see docs/metrics.md)",
    )


def check_follow_arguments(args: argparse.Namespace) -> None:
    """Refuse combinations that cannot work, before anything is read."""
    if args.metrics_addr and not args.follow:
        raise InputError(
            None,
            "--metrics-addr needs --follow (a batch run is over before anything could scrape it)",
            hint="add --follow, or read the counts from --json",
        )
    if not args.follow:
        return
    if args.store or not args.flows or len(args.flows) != 1:
        raise InputError(None, "--follow reads one stream: pass --flows - or --flows FILE")
    if args.follow_interval <= 0:
        raise InputError(None, "--follow-interval must be positive")
    if args.metrics_addr:
        from recommender.report.metrics import parse_addr

        parse_addr(args.metrics_addr)


def judge_followed(
    args: argparse.Namespace,
    shadow: ShadowRun,
    inventory: Inventory,
    engine: Any,
    check: Callable[[IngestStats], None],
) -> IngestStats:
    """Follow ``--flows``, judging into ``shadow``; return the ingest statistics.

    ``check`` accepts the input (or raises) before ``--verdicts`` is put in place.
    """
    from recommender.observe.follow import ChunkJudge, FollowOptions
    from recommender.report.metrics import ShadowMetrics
    from recommender.shadow.core import uncovered
    from recommender.shadow.follow import FollowedShadow, rule_ids

    name = args.flows[0]
    metrics = ShadowMetrics(rule_ids(shadow.candidate), uncovered(shadow.candidate))
    sink = _VerdictSink(args.verdicts, args.force)
    options = FollowOptions(interval_s=args.follow_interval, strict=args.strict)

    def on_chunk(tally: Any, stats: IngestStats) -> None:
        metrics.add(tally, stats.lost_events, stats.rejects)

    followed = FollowedShadow(shadow, name)
    judge = ChunkJudge(engine, inventory, followed, options, sink.write, on_chunk)
    server = None
    try:
        try:
            server = _serve(metrics, args.metrics_addr)  # a port in use: exit 2, nothing left
            ended = _read(name, judge)
        finally:
            if server is not None:
                server.close()
            judge.close()
        how = "end of input" if ended == "eof" else "stopped by a signal"
        print(
            f"follow: {judge.lines:,} lines in {judge.chunks:,} chunk(s) ({how})", file=sys.stderr
        )
        check(judge.stats)
        sink.keep()
    finally:
        sink.discard()
    return judge.stats


def _serve(metrics: Any, addr: str | None) -> Any:
    if not addr:
        return None
    from recommender.report.metrics import MetricsServer, parse_addr

    server = MetricsServer(metrics.registry, *parse_addr(addr))
    host, port = server.address
    shown = f"[{host}]" if ":" in host else host
    print(f"serving metrics on http://{shown}:{port}/metrics", file=sys.stderr, flush=True)
    return server


def _read(name: str, judge: Any) -> str:
    from recommender.cli.observe import _stop_on_signals
    from recommender.observe.follow import follow_fd, follow_file

    progress = Progress(f"shadow --follow {name}: lines")
    try:
        with _stop_on_signals() as stop:
            if name == "-":
                return follow_fd(sys.stdin.fileno(), judge, stop, progress.update)
            return follow_file(name, judge, stop, progress.update)
    finally:
        progress.done()


class _VerdictSink:
    """``--verdicts``: lines streamed to a temp file, renamed at the end (never half)."""

    def __init__(self, target: str | None, force: bool) -> None:
        self.target = Path(target) if target else None
        self.force = force
        self.tmp: str | None = None
        self.out: IO[bytes] | None = None
        if self.target is not None:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.target.name}.", dir=self.target.parent)
            self.out = os.fdopen(fd, "wb")

    def write(self, verdicts: Any) -> None:
        if self.out is not None and len(verdicts):
            rows = verdicts.to_dict(orient="records")
            self.out.write(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    def keep(self) -> None:
        """Put the file in place."""
        if self.out is None or self.tmp is None or self.target is None:
            return
        self.out.close()
        check_writable(self.target, self.force)
        os.replace(self.tmp, self.target)
        self.tmp = None

    def discard(self) -> None:
        """Remove the temp file unless :meth:`keep` renamed it."""
        if self.out is not None:
            self.out.close()
        if self.tmp is not None and os.path.exists(self.tmp):
            os.unlink(self.tmp)
