"""Reading the store: observations over a window, ingest statistics, a summary.

Windows. ``since``/``until`` take an absolute time (``2026-11-02T00:00:00Z``,
a ``datetime``) or a duration (``7d``, ``36h``, ``90m``, ``2w``). A duration
counts back from the newest ``last_seen`` in the store, not from the wall
clock, so a run over the same store gives the same result tomorrow (clamped
to one day past the wall clock, so one record with a far-future time cannot
hide everything). A bucket is included when it overlaps ``[since, until)``:
observations are kept per hour, so the window is widened to whole hours.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import duckdb
import orjson
import pandas as pd

from recommender.errors import InputError
from recommender.model import OBSERVATION_COLUMNS
from recommender.observe.engines.aggregate import SORT_COLUMNS
from recommender.observe.engines.base import MAX_REJECT_SAMPLES, IngestStats
from recommender.observe.store.db import STORE_COLUMNS, VERDICT_COLUMNS, connect, merge_sql
from recommender.vocabulary import POLICY_DENIED, VERDICTS

When: TypeAlias = str | datetime | pd.Timestamp | None

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_HOUR = pd.Timedelta(hours=1)


def parse_duration(text: str) -> timedelta:
    """``7d``, ``36h``, ``90m``, ``30s``, ``2w`` -> a positive timedelta.

    >>> parse_duration("7d"), parse_duration("90m")
    (datetime.timedelta(days=7), datetime.timedelta(seconds=5400))

    Raises
    ------
    InputError
        Anything else, or zero.
    """
    match = _DURATION.match(text.strip())
    if not match or float(match.group(1)) <= 0:
        raise InputError(None, f"bad duration {text!r}", hint="use e.g. 30s, 90m, 36h, 7d, 2w")
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


def resolve_time(value: When, anchor: pd.Timestamp | None) -> pd.Timestamp | None:
    """An absolute UTC time (naive) for ``value``; durations count back from ``anchor``."""
    if value is None:
        return None
    if isinstance(value, str) and _DURATION.match(value.strip()):
        return None if anchor is None else anchor - pd.Timedelta(parse_duration(value))
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(
            None,
            f"bad time {value!r}",
            hint="use a duration like 7d or a time like 2026-11-02T00:00:00Z",
        ) from None
    if ts is pd.NaT:
        raise InputError(None, f"bad time {value!r}")
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def newest_time(con: duckdb.DuckDBPyConnection) -> pd.Timestamp | None:
    row = con.execute("SELECT max(last_seen) FROM observations").fetchone()
    if not row or row[0] is None:
        return None
    limit = pd.Timestamp.now(tz="UTC").tz_localize(None) + pd.Timedelta(days=1)
    return min(pd.Timestamp(row[0]), limit)


def _window_sql(con: duckdb.DuckDBPyConnection, since: When, until: When) -> tuple[str, list[Any]]:
    anchor = newest_time(con)
    lo, hi = resolve_time(since, anchor), resolve_time(until, anchor)
    where, params = ["true"], []
    if lo is not None:
        where.append("bucket > ?")  # bucket end (bucket + 1h) after since
        params.append((lo - _HOUR).to_pydatetime())
    if hi is not None:
        where.append("bucket < ?")
        params.append(hi.to_pydatetime())
    return " AND ".join(where), params


def read_store_buckets(path: str, since: When = None, until: When = None) -> pd.DataFrame:
    """Hourly rows: ``bucket`` + OBSERVATION_COLUMNS, as ``aggregate(..., bucket="1h")`` has them.

    Raises
    ------
    InputError
        Missing or damaged store, bad window.
    """
    with connect(path) as con:
        where, params = _window_sql(con, since, until)
        frame = con.execute(f"SELECT * FROM observations WHERE {where}", params).df()
    return to_observations(frame, with_bucket=True)


def read_store_observations(path: str, since: When = None, until: When = None) -> pd.DataFrame:
    """Observations over a window, buckets merged, exactly ``OBSERVATION_COLUMNS``.

    Per identity: connections and verdict counts summed, ``first_seen`` the
    minimum, ``last_seen`` the maximum, ``dst_names`` unioned, the earliest
    few ``refs`` kept. ``recommend`` takes the result unchanged.

    A connection that stays open across an hour boundary counts once per
    bucket it was seen in, as ``aggregate(..., bucket="1h")`` counts it.
    """
    with connect(path) as con:
        where, params = _window_sql(con, since, until)
        source = f"(SELECT *, bucket AS seq FROM observations WHERE {where})"
        frame = con.execute(merge_sql(source, with_bucket=False, ref_order="seq"), params).df()
    return to_observations(frame, with_bucket=False)


def to_observations(frame: pd.DataFrame, with_bucket: bool) -> pd.DataFrame:
    """Store rows -> the observation table layout, sorted like the aggregation's output."""
    keys = (*VERDICTS, POLICY_DENIED)
    out = frame[
        [c for c in STORE_COLUMNS if c not in VERDICT_COLUMNS and (with_bucket or c != "bucket")]
    ].copy()
    out["port"] = out["port"].astype("Int64")
    out["connections"] = out["connections"].astype("int64")
    for col in ("first_seen", "last_seen", "bucket"):
        if col in out:
            out[col] = out[col].astype("datetime64[us]")
    out["dst_names"] = [list(v) if v is not None else [] for v in frame["dst_names"]]
    out["refs"] = [list(v) if v is not None else [] for v in frame["refs"]]
    out["verdicts"] = [
        {k: int(row[c]) for k, c in zip(keys, VERDICT_COLUMNS, strict=True)}
        for row in frame[list(VERDICT_COLUMNS)].to_dict("records")
    ]
    columns = (["bucket"] if with_bucket else []) + list(OBSERVATION_COLUMNS)
    order = (["bucket"] if with_bucket else []) + list(SORT_COLUMNS)
    out = out[columns].sort_values(order, na_position="first", kind="mergesort", ignore_index=True)
    return out


def read_store_stats(path: str, since: When = None, until: When = None) -> IngestStats:
    """Ingest statistics of the appends whose buckets overlap the window.

    Lines, rejects and lost events are counted per append, not per bucket,
    so an append that overlaps the window counts whole.
    """
    with connect(path) as con:
        anchor = newest_time(con)
        lo, hi = resolve_time(since, anchor), resolve_time(until, anchor)
        where, params = ["true"], []
        if lo is not None:
            where.append("(last_bucket IS NULL OR last_bucket > ?)")
            params.append((lo - _HOUR).to_pydatetime())
        if hi is not None:
            where.append("(first_bucket IS NULL OR first_bucket < ?)")
            params.append(hi.to_pydatetime())
        rows = con.execute(
            f"SELECT * FROM appends WHERE {' AND '.join(where)} ORDER BY id", params
        ).df()
    return _sum_stats(rows)


def _sum_stats(rows: pd.DataFrame) -> IngestStats:
    rejects: dict[str, int] = {}
    non_flow: dict[str, int] = {}
    samples: list[str] = []
    for row in rows.to_dict("records"):
        for into, text in ((rejects, row["rejects"]), (non_flow, row["non_flow"])):
            for k, v in orjson.loads(text).items():
                into[k] = into.get(k, 0) + int(v)
        samples += orjson.loads(row["reject_samples"])

    def total(col: str) -> int:
        return int(rows[col].sum()) if len(rows) else 0

    return IngestStats(
        lines=total("lines"),
        flow_records=total("flow_records"),
        connections=total("connections"),
        replies=total("replies"),
        lost_events=total("lost_events"),
        policy_drops=total("policy_drops"),
        unknown_peers=total("unknown_peers"),
        non_flow=non_flow,
        rejects=rejects,
        reject_samples=tuple(samples[:MAX_REJECT_SAMPLES]),
    )


@dataclass(frozen=True)
class StoreInfo:
    """A summary of a store for ``netpol observe --status``."""

    path: str
    size_bytes: int
    rows: int
    buckets: int
    first_bucket: Any
    last_bucket: Any
    connections: int
    appends: int
    last_append: Any
    stats: IngestStats

    def format(self) -> str:
        """Readable lines."""

        def t(v: Any) -> str:
            return "-" if v is None or pd.isna(v) else pd.Timestamp(v).strftime("%Y-%m-%dT%H:%MZ")

        end = (
            None
            if self.last_bucket is None or pd.isna(self.last_bucket)
            else (pd.Timestamp(self.last_bucket) + _HOUR)
        )
        s = self.stats
        return "\n".join(
            [
                f"store: {self.path} ({self.size_bytes / 1e6:,.2f} MB)",
                f"observations: {self.rows:,} rows in {self.buckets:,} hourly buckets, "
                f"{t(self.first_bucket)} to {t(end)}; {self.connections:,} connections",
                f"appends: {self.appends:,} (last committed {t(self.last_append)}): "
                f"{s.lines:,} lines, {s.rejected:,} rejected, {s.lost_events:,} lost events",
            ]
        )


def store_info(path: str) -> StoreInfo:
    """Buckets, time range, rows, size and totals of a store."""
    with connect(path) as con:
        obs = con.execute(
            "SELECT count(*), count(DISTINCT bucket), min(bucket), max(bucket), "
            "coalesce(sum(connections), 0) FROM observations"
        ).fetchone()
        app = con.execute("SELECT count(*), max(committed) FROM appends").fetchone()
        rows = con.execute("SELECT * FROM appends ORDER BY id").df()
    assert obs is not None
    assert app is not None
    return StoreInfo(
        path,
        os.path.getsize(path),
        int(obs[0]),
        int(obs[1]),
        obs[2],
        obs[3],
        int(obs[4]),
        int(app[0]),
        app[1],
        _sum_stats(rows),
    )
