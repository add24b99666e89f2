"""Appending an endless stream (``hubble observe --follow | netpol observe --flows -``).

Lines are read from a file descriptor as they come and spooled to a temp
file. Every ``interval`` seconds or ``max_lines`` lines (a *checkpoint*) the
spool is aggregated into hourly observations and merged into the store in one
transaction. A crash therefore loses at most the lines since the last
checkpoint; the store itself stays consistent (DuckDB's write-ahead log:
with DuckDB 2.0 a ``COMMIT`` returns after the WAL is ``fdatasync``-ed, and
closing the connection checkpoints it into the file and removes it; a process
killed in between leaves the WAL, which the next open replays). A killed
process's spool directory is removed by the next ``StreamAppender``.

Straddling connections. The records of one connection (egress and ingress
observation points, the policy-verdict event, replies) may fall on both sides
of a checkpoint. Counting each chunk alone would count such a connection
twice. So each chunk is aggregated with the last ``overlap`` lines of the
previous chunks in front, and the aggregate of that overlap alone is
subtracted: connections that started in the overlap are not counted again, a
connection first seen by reply in the overlap and by request now is counted
once, and one whose identity improves moves to the better row. The stored
totals equal one aggregation of the whole stream whenever the records of a
connection lie within ``overlap`` lines of each other; beyond that (for
example a long-lived connection whose FIN comes hours later) a connection may
be counted once more, as hourly buckets also count it once per bucket.

References. Lines are numbered over the whole stream, 1-based, and referenced
as ``-:<line>``, like a file named ``-``.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import BinaryIO

import pandas as pd

from recommender.errors import InputError
from recommender.model import Inventory
from recommender.observe.engines.base import AggregationEngine, IngestResult, IngestStats
from recommender.observe.store.db import BUCKET
from recommender.observe.store.write import AppendSummary, append_observations
from recommender.policy_io.atomic import lock_directory, remove_stale_dirs

STDIN_NAME = "-"
#: Spool directories live in the system temp dir under this prefix.
SPOOL_PREFIX = "netpol-observe-"
_READ_SIZE = 1 << 20
_POLL_S = 0.25
_DRAIN_READS = 64


@dataclass(frozen=True)
class StreamOptions:
    """When to checkpoint, and how many lines of overlap to re-read."""

    interval_s: float = 60.0
    max_lines: int = 50_000
    overlap_lines: int = 5_000
    strict: bool = False


@dataclass(frozen=True)
class Checkpoint:
    """One committed checkpoint."""

    number: int
    lines: int  # new lines in this checkpoint
    total_lines: int  # lines read so far
    summary: AppendSummary
    stats: IngestStats


class LineReader:
    """Complete lines from bytes fed in pieces; gunzips a stream that starts gzipped.

    >>> r = LineReader()
    >>> r.feed(b'{"a":1}\\n{"b"'), r.feed(b':2}\\n'), r.finish()
    ([b'{"a":1}\\n'], [b'{"b":2}\\n'], [])
    """

    def __init__(self) -> None:
        self._rest = b""
        self._gzip: zlib._Decompress | None = None
        self._started = False

    def feed(self, data: bytes) -> list[bytes]:
        """Lines completed by ``data``, each ending with ``\\n``."""
        if not self._started:
            if len(self._rest) + len(data) < 2:
                self._rest += data
                return []
            data, self._rest, self._started = self._rest + data, b"", True
            if data[:2] == b"\x1f\x8b":
                self._gzip = zlib.decompressobj(wbits=47)
        if self._gzip is not None:
            data = self._inflate(data)
        buf = self._rest + data
        cut = buf.rfind(b"\n") + 1
        self._rest = buf[cut:]
        # Only \n ends a line (bytes.splitlines would also split at a lone \r).
        return [ln + b"\n" for ln in buf[: cut - 1].split(b"\n")] if cut else []

    def _inflate(self, data: bytes) -> bytes:
        assert self._gzip is not None
        out = [self._gzip.decompress(data)]
        while self._gzip.eof and self._gzip.unused_data:  # concatenated gzip members
            rest = self._gzip.unused_data
            self._gzip = zlib.decompressobj(wbits=47)
            out.append(self._gzip.decompress(rest))
        return b"".join(out)

    def finish(self) -> list[bytes]:
        """The partial last line, if any (a line need not end with a newline)."""
        tail, self._rest = self._rest, b""
        return [tail + b"\n"] if tail else []


class StreamAppender:
    """Spool lines, checkpoint them into the store with overlap correction.

    Parameters
    ----------
    store
        The store file.
    engine
        The aggregation engine.
    inventory
        Resolves IPs at ingest time (read once, at start).
    options
        Checkpoint interval, lines and overlap.
    on_checkpoint
        Called after each committed checkpoint.
    """

    def __init__(
        self,
        store: str,
        engine: AggregationEngine,
        inventory: Inventory | None,
        options: StreamOptions,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.inventory = inventory
        self.options = options
        self.on_checkpoint = on_checkpoint
        self.append_id: int | None = None
        self.checkpoints = 0
        self.lines = 0  # lines read so far; the next line is number lines + 1
        # A killed observe cannot remove its spool; the next one does (its lock is free).
        remove_stale_dirs(tempfile.gettempdir(), SPOOL_PREFIX)
        self._dir = tempfile.mkdtemp(prefix=SPOOL_PREFIX)
        self._lock = lock_directory(self._dir)
        self._recent: deque[bytes] = deque(maxlen=max(options.overlap_lines, 0))
        self._overlap: list[bytes] = []
        self._pending = 0
        self._spool = self._start_spool()

    # -- input ----------------------------------------------------------------

    def add_lines(self, lines: Iterable[bytes]) -> None:
        """Spool complete lines (each ending with ``\\n``)."""
        batch = list(lines)
        if not batch:
            return
        self._spool.write(b"".join(batch))
        self._recent.extend(batch)
        self._pending += len(batch)
        self.lines += len(batch)

    @property
    def pending(self) -> int:
        """Lines read since the last checkpoint."""
        return self._pending

    def run(
        self, fd: int, stop: Callable[[], bool], on_read: Callable[[int], None] | None = None
    ) -> str:
        """Read ``fd`` to its end (or until ``stop()``), checkpointing; return why it ended.

        Returns ``"eof"`` or ``"stopped"``. The partial last line is kept, and
        a final checkpoint commits everything read.
        """
        reader = LineReader()
        deadline = time.monotonic() + self.options.interval_s
        ended = "stopped"
        while not stop():
            wait = max(0.0, min(_POLL_S, deadline - time.monotonic()))
            ready, _, _ = select.select([fd], [], [], wait)
            if ready:
                data = os.read(fd, _READ_SIZE)
                if not data:
                    ended = "eof"
                    break
                before = self.lines
                self.add_lines(reader.feed(data))
                if on_read is not None:
                    on_read(self.lines - before)
            if self._pending >= self.options.max_lines or time.monotonic() >= deadline:
                self.checkpoint()
                deadline = time.monotonic() + self.options.interval_s
        if stop():  # a signal that came while reading wins over a simultaneous EOF
            ended = "stopped"
            self._drain(fd, reader)
        self.add_lines(reader.finish())
        self.checkpoint()
        return ended

    def _drain(self, fd: int, reader: LineReader) -> None:
        """After a stop, keep what is already waiting in the pipe (bounded: a live
        stream never runs dry)."""
        for _ in range(_DRAIN_READS):
            ready, _, _ = select.select([fd], [], [], 0)
            data = os.read(fd, _READ_SIZE) if ready else b""
            if not data:
                return
            self.add_lines(reader.feed(data))

    # -- checkpoints ----------------------------------------------------------

    def checkpoint(self) -> Checkpoint | None:
        """Aggregate the spooled lines and merge them into the store (one transaction)."""
        if not self._pending:
            return None
        self._spool.close()
        first_new = self.lines - self._pending + 1
        offset = first_new - 1 - len(self._overlap)  # spool line n = stream line offset + n
        chunk = os.path.join(self._dir, "chunk.jsonl")
        plus = self._aggregate(chunk, offset, self.options.strict)
        minus = (
            self._aggregate(os.path.join(self._dir, "overlap.jsonl"), offset, False)
            if self._overlap
            else None
        )
        observations = _keep_new_refs(plus.observations, first_new)
        stats = _subtract(
            _stats_new_samples(plus.stats, first_new), minus.stats if minus is not None else None
        )
        summary = append_observations(
            self.store,
            observations,
            stats,
            minus=minus.observations if minus is not None else None,
            append_id=self.append_id,
            kind="stdin",
            sources=[STDIN_NAME],
        )
        self.append_id = summary.append_id
        self.checkpoints += 1
        done = Checkpoint(self.checkpoints, self._pending, self.lines, summary, stats)
        self._pending = 0
        self._spool = self._start_spool()
        if self.on_checkpoint is not None:
            self.on_checkpoint(done)
        return done

    def _aggregate(self, path: str, offset: int, strict: bool) -> IngestResult:
        try:
            result = self.engine.aggregate([path], self.inventory, strict=strict, bucket=BUCKET)
        except InputError as exc:
            if exc.path == path and exc.line is not None:
                raise InputError(
                    STDIN_NAME, exc.reason, line=exc.line + offset, hint=exc.hint
                ) from None
            raise
        obs = result.observations.copy()
        obs["refs"] = [[_rebase(r, path, offset) for r in refs] for refs in obs["refs"]]
        samples = tuple(_rebase(s, path, offset) for s in result.stats.reject_samples)
        return IngestResult(obs, replace(result.stats, reject_samples=samples))

    def _start_spool(self) -> BinaryIO:
        """A new spool file that starts with the overlap (the most recent lines)."""
        self._overlap = list(self._recent)
        with open(os.path.join(self._dir, "overlap.jsonl"), "wb") as fh:
            fh.write(b"".join(self._overlap))
        spool = open(os.path.join(self._dir, "chunk.jsonl"), "wb")  # noqa: SIM115
        spool.write(b"".join(self._overlap))
        return spool

    def close(self) -> None:
        """Remove the spool files (after the final checkpoint)."""
        self._spool.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        if self._lock >= 0:
            os.close(self._lock)
            self._lock = -1


def _rebase(ref: str, path: str, offset: int) -> str:
    """``<spool>:12`` -> ``-:<12 + offset>`` (``<spool>:12: reason`` too)."""
    if not ref.startswith(path + ":"):
        return ref
    line, sep, rest = ref[len(path) + 1 :].partition(":")
    if not line.isdigit():
        return ref
    return f"{STDIN_NAME}:{int(line) + offset}{sep}{rest}"


_REF_LINE = re.compile(r"^-:(\d+)")


def _line_of(ref: str) -> int:
    match = _REF_LINE.match(ref)
    return int(match.group(1)) if match else 0


def _keep_new_refs(obs: pd.DataFrame, first_new: int) -> pd.DataFrame:
    """Drop references into the overlap: the store holds those already."""
    out = obs.copy()
    out["refs"] = [[r for r in refs if _line_of(r) >= first_new] for refs in obs["refs"]]
    return out


def _stats_new_samples(stats: IngestStats, first_new: int) -> IngestStats:
    samples = tuple(s for s in stats.reject_samples if _line_of(s) >= first_new)
    return replace(stats, reject_samples=samples)


def _minus(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    keys = sorted(set(a) | set(b))
    out = {k: int(a.get(k, 0)) - int(b.get(k, 0)) for k in keys}
    return {k: v for k, v in out.items() if v}


def _subtract(plus: IngestStats, minus: IngestStats | None) -> IngestStats:
    """Statistics of the new lines: ``plus`` (overlap + new) minus the overlap's own."""
    if minus is None:
        return plus
    numeric = (
        "lines",
        "flow_records",
        "connections",
        "replies",
        "reply_only",
        "lost_events",
        "unknown_peers",
        "policy_drops",
        "inferred_orientation",
        "unknown_orientation",
    )
    return replace(
        plus,
        **{f: getattr(plus, f) - getattr(minus, f) for f in numeric},
        non_flow=_minus(plus.non_flow, minus.non_flow),
        rejects=_minus(plus.rejects, minus.rejects),
        unknown_reasons=_minus(plus.unknown_reasons, minus.unknown_reasons),
    )
