"""Reading a live flow stream in chunks for ``netpol shadow --follow``.

Lines come from stdin (``hubble observe --follow -o jsonpb | netpol shadow
--flows - --follow``), read as they arrive with the :class:`LineReader` that
``netpol observe`` uses, or from a file that is tailed like ``tail -F`` (a
truncated file is read again from its start, a replaced one is reopened).
Every ``interval`` seconds or ``max_lines`` lines the pending lines are spooled
to a temp file and read by the engine's ``read_flows`` exactly as a file would
be; :class:`~recommender.shadow.follow.FollowedShadow` then judges the records
so that the counts equal one batch run over the same lines.
"""

from __future__ import annotations

import os
import select
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace

import pandas as pd

from recommender.errors import InputError
from recommender.flows import formats, sniff
from recommender.model import Inventory
from recommender.observe.engines.base import MAX_REJECT_SAMPLES, AggregationEngine, IngestStats
from recommender.observe.store.stream import LineReader
from recommender.shadow.follow import FollowedShadow, Tally, rebase_ref

STDIN_NAME = "-"
_READ_SIZE = 1 << 20
_POLL_S = 0.25

#: Called with the verdict rows of each judged batch, in input order.
OnVerdicts = Callable[[pd.DataFrame], None]
#: Called once per chunk, after all its batches: the chunk's tally and ingest statistics.
OnChunk = Callable[[Tally, IngestStats], None]


@dataclass(frozen=True)
class FollowOptions:
    """When to judge what was read: every ``interval_s`` seconds or ``max_lines`` lines."""

    interval_s: float = 2.0
    max_lines: int = 50_000
    strict: bool = False


class ChunkJudge:
    """Spool lines; at each :meth:`flush` read them with the engine and judge them.

    Parameters
    ----------
    engine
        Reads each chunk (``read_flows``), as it reads a file.
    inventory
        Resolves the flows' ends.
    followed
        Judges the records (see :class:`~recommender.shadow.follow.FollowedShadow`).
    options
        Flush interval, lines and ``--strict``.
    on_verdicts
        Called with each judged batch's verdict rows.
    on_chunk
        Called after each chunk with its tally and statistics (all at once, so
        a scrape never sees half a chunk).
    """

    def __init__(
        self,
        engine: AggregationEngine,
        inventory: Inventory,
        followed: FollowedShadow,
        options: FollowOptions,
        on_verdicts: OnVerdicts,
        on_chunk: OnChunk,
    ) -> None:
        self.engine = engine
        self.inventory = inventory
        self.followed = followed
        self.options = options
        self.on_verdicts = on_verdicts
        self.on_chunk = on_chunk
        self.lines = 0  # lines read so far
        self.stats = IngestStats()
        self.chunks = 0
        self._pending: list[bytes] = []
        self._dir = tempfile.mkdtemp(prefix="netpol-follow-")

    def add_lines(self, lines: Iterable[bytes]) -> None:
        """Queue complete lines (each ending with ``\\n``); flush when enough are queued."""
        self._pending.extend(lines)
        if len(self._pending) >= self.options.max_lines:
            self.flush()

    def flush(self) -> None:
        """Judge every queued line now."""
        if not self._pending:
            return
        spool = os.path.join(self._dir, f"chunk-{self.chunks}.jsonl")
        with open(spool, "wb") as fh:
            fh.write(b"".join(self._pending))
        offset, n = self.lines, len(self._pending)
        self._pending = []
        self._choose_format(spool)
        try:
            self._judge(spool, offset)
        finally:
            os.unlink(spool)
        self.lines += n
        self.chunks += 1

    def _judge(self, spool: str, offset: int) -> None:
        chunk = Tally()
        try:
            table = self.engine.read_flows([spool], self.inventory, strict=self.options.strict)
            for batch in table:
                verdicts, tally = self.followed.judge(batch, spool, offset)
                chunk.merge(tally)
                self.on_verdicts(verdicts)
            stats = table.stats
        except InputError as exc:
            if exc.path == spool and exc.line is not None:
                name = self.followed.name
                raise InputError(name, exc.reason, line=exc.line + offset, hint=exc.hint) from None
            raise
        # The engine counted the chunk's connections alone; these are across chunks.
        connections = sum(chunk.verdicts.values())
        stats = replace(_rebased(stats, spool, self.followed.name, offset), connections=connections)
        self.stats = add_stats(self.stats, stats)
        self.on_chunk(chunk, stats)

    def _choose_format(self, spool: str) -> None:
        """One format for the whole stream, chosen as a batch run would: stdin is Hubble
        (unless ``--format``), a file is sniffed from its own head."""
        if self.engine.flow_format is not None:
            return
        name = self.followed.name
        head = sniff.read_head(name) if name != STDIN_NAME else None
        self.engine.flow_format = formats.detect(head).name

    def close(self) -> None:
        """Remove the spool directory."""
        shutil.rmtree(self._dir, ignore_errors=True)


def follow_fd(
    fd: int, judge: ChunkJudge, stop: Callable[[], bool], on_read: Callable[[int], None]
) -> str:
    """Read ``fd`` until its end or ``stop()``, flushing on time; return ``"eof"`` or
    ``"stopped"``. The partial last line is kept and a final flush judges all."""
    reader = LineReader()
    deadline = time.monotonic() + judge.options.interval_s
    ended = "stopped"
    while not stop():
        ready, _, _ = select.select(
            [fd], [], [], max(0.0, min(_POLL_S, deadline - time.monotonic()))
        )
        if ready:
            data = os.read(fd, _READ_SIZE)
            if not data:
                ended = "eof"
                break
            lines = reader.feed(data)
            judge.add_lines(lines)
            on_read(len(lines))
        if time.monotonic() >= deadline:
            judge.flush()
            deadline = time.monotonic() + judge.options.interval_s
    judge.add_lines(reader.finish())
    judge.flush()
    return ended


def follow_file(
    path: str, judge: ChunkJudge, stop: Callable[[], bool], on_read: Callable[[int], None]
) -> str:
    """Tail ``path`` from its start until ``stop()`` (a file has no end of stream)."""
    tail = _Tail(path)
    reader = LineReader()
    deadline = time.monotonic() + judge.options.interval_s
    try:
        while not stop():
            data = tail.read()
            if data:
                lines = reader.feed(data)
                judge.add_lines(lines)
                on_read(len(lines))
            else:
                time.sleep(_POLL_S)
            if time.monotonic() >= deadline:
                judge.flush()
                deadline = time.monotonic() + judge.options.interval_s
    finally:
        tail.close()
    judge.add_lines(reader.finish())
    judge.flush()
    return "stopped"


class _Tail:
    """A file read as it grows; reopened when replaced (rotation) or truncated."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.fh = open(path, "rb")  # noqa: SIM115 -- kept open across reads
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror or exc}") from None

    def read(self) -> bytes:
        data = self.fh.read(_READ_SIZE)
        if data:
            return data
        try:
            now = os.stat(self.path)
        except OSError:
            return b""  # rotated away, the new file not there yet
        mine = os.fstat(self.fh.fileno())
        if now.st_ino != mine.st_ino or now.st_size < self.fh.tell():
            self.fh.close()
            self.fh = open(self.path, "rb")  # noqa: SIM115
        return b""

    def close(self) -> None:
        self.fh.close()


def add_stats(a: IngestStats, b: IngestStats) -> IngestStats:
    """Field-wise sum of two chunks' statistics (the first reject samples kept)."""
    out = {}
    for f in fields(IngestStats):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "reject_samples":
            out[f.name] = (x + y)[:MAX_REJECT_SAMPLES]
        elif f.name == "observers":
            out[f.name] = _merge(x or {}, y or {}) if x is not None or y is not None else None
        elif isinstance(x, int):
            out[f.name] = x + y
        else:
            out[f.name] = _merge(x, y)
    return IngestStats(**out)


def _merge(left: Mapping[str, int], right: Mapping[str, int]) -> dict[str, int]:
    return {k: left.get(k, 0) + right.get(k, 0) for k in sorted(set(left) | set(right))}


def _rebased(stats: IngestStats, spool: str, name: str, offset: int) -> IngestStats:
    samples = []
    for s in stats.reject_samples:
        ref, sep, reason = s.partition(": ")
        samples.append(f"{rebase_ref(ref, spool, name, offset)}{sep}{reason}")
    return replace(stats, reject_samples=tuple(samples))
