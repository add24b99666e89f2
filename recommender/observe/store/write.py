"""Appending to the store: merge a (signed) delta of bucketed observations, record stats.

An append is one transaction: either every row and its statistics land, or
nothing does, so a crash never leaves a half-counted append behind.

The delta is ``plus - minus``: ``plus`` is the aggregate of the new lines
(with the overlap of the previous chunk in front, for a stream), ``minus``
the aggregate of that overlap alone. Subtracting it counts a connection whose
records straddle a checkpoint once, exactly as one aggregation over the whole
stream would (see :mod:`recommender.observe.store.stream`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb
import orjson
import pandas as pd

from recommender.observe.engines.base import MAX_REJECT_SAMPLES, IngestStats
from recommender.observe.fingerprint import FileFingerprint
from recommender.observe.store.db import (
    STORE_COLUMNS,
    VERDICT_COLUMNS,
    connect,
    merge_sql,
)
from recommender.vocabulary import IDENTITY_COLUMNS, POLICY_DENIED, VERDICTS


@dataclass(frozen=True)
class AppendSummary:
    """What one append (or checkpoint) changed."""

    append_id: int
    delta_rows: int
    buckets: int
    store_rows: int


def find_appended(path: str, files: Sequence[FileFingerprint]) -> list[tuple[str, int]]:
    """Files already appended to the store: ``(path given now, earlier append id)``."""
    if not files or not os.path.exists(path):
        return []
    with connect(path, create=True) as con:  # an empty file (a killed first append) too
        known = dict(
            con.execute("SELECT digest, min(append_id) FROM sources GROUP BY digest").fetchall()
        )
    return [(f.path, int(known[f.digest])) for f in files if f.digest in known]


def to_store_frame(observations: pd.DataFrame) -> pd.DataFrame:
    """Bucketed observations (``bucket`` + OBSERVATION_COLUMNS) in the store's row layout."""
    frame = observations[
        ["bucket", *IDENTITY_COLUMNS, "dst_names", "connections", "first_seen", "last_seen"]
    ].copy()
    keys = (*VERDICTS, POLICY_DENIED)
    for key, col in zip(keys, VERDICT_COLUMNS, strict=True):
        frame[col] = [int(d.get(key, 0)) for d in observations["verdicts"]]
    frame["refs"] = [list(r) for r in observations["refs"]]
    frame["dst_names"] = [list(n) for n in observations["dst_names"]]
    return frame[list(STORE_COLUMNS)].reset_index(drop=True)


def append_observations(
    path: str,
    plus: pd.DataFrame,
    stats: IngestStats,
    *,
    minus: pd.DataFrame | None = None,
    append_id: int | None = None,
    kind: str = "files",
    sources: Sequence[str] = (),
    files: Sequence[FileFingerprint] = (),
) -> AppendSummary:
    """Add ``plus - minus`` to the store and record ``stats``, in one transaction.

    Parameters
    ----------
    path
        The store file (created when missing).
    plus, minus
        Observations with a ``bucket`` column (``aggregate(..., bucket="1h")``).
    stats
        Statistics of the lines this append adds.
    append_id
        Continue the ``appends`` row of a stdin session (None: a new row).
    kind, sources, files
        Recorded with a new ``appends`` row.
    """
    with connect(path, create=True) as con:
        con.execute("BEGIN")
        try:
            if append_id is None:
                append_id = _new_append(con, kind, sources, files)
            delta_rows, buckets = _merge(con, plus, minus)
            _record_stats(con, append_id, stats)
            if not plus.empty:
                _record_buckets(con, append_id, plus["bucket"].min(), plus["bucket"].max())
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        rows = con.execute("SELECT count(*) FROM observations").fetchone()
    return AppendSummary(append_id, delta_rows, buckets, int(rows[0]) if rows else 0)


def _new_append(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    sources: Sequence[str],
    files: Sequence[FileFingerprint],
) -> int:
    row = con.execute("SELECT coalesce(max(id), 0) + 1 FROM appends").fetchone()
    append_id = int(row[0]) if row else 1
    now = _now()
    con.execute(
        "INSERT INTO appends VALUES (?, ?, ?, ?, ?, 0, 0, 0, 0, 0, 0, 0, '{}', '{}', 0, 0, '[]', "
        "NULL, NULL)",
        [append_id, kind, orjson.dumps(list(sources)).decode(), now, now],
    )
    for f in files:
        con.execute(
            "INSERT INTO sources VALUES (?, ?, ?, ?)", [append_id, f.path, f.size, f.digest]
        )
    return append_id


def _typed(name: str) -> str:
    """A registered frame cast to the store's column types."""
    cols = []
    for col in STORE_COLUMNS:
        if col in ("bucket", "first_seen", "last_seen"):
            cols.append(f"CAST({col} AS TIMESTAMP) AS {col}")
        elif col in ("dst_names", "refs"):
            cols.append(f"CAST({col} AS VARCHAR[]) AS {col}")
        elif col == "port":
            cols.append("CAST(port AS INTEGER) AS port")
        elif col == "connections" or col in VERDICT_COLUMNS:
            cols.append(f"CAST({col} AS BIGINT) AS {col}")
        else:
            cols.append(f"CAST({col} AS VARCHAR) AS {col}")
    return f"SELECT {', '.join(cols)} FROM {name}"


def _register(con: duckdb.DuckDBPyConnection, name: str, frame: pd.DataFrame | None) -> str:
    if frame is None or frame.empty:
        return "SELECT * FROM observations WHERE false"
    con.register(name, to_store_frame(frame))
    return _typed(name)


def _merge(
    con: duckdb.DuckDBPyConnection, plus: pd.DataFrame, minus: pd.DataFrame | None
) -> tuple[int, int]:
    plus_sql = _register(con, "netpol_plus", plus)
    minus_sql = _register(con, "netpol_minus", minus)
    negate = ", ".join(f"-{c} AS {c}" for c in ("connections", *VERDICT_COLUMNS))
    union = (
        f"(SELECT *, 1 AS seq FROM ({plus_sql}) UNION ALL "
        f"SELECT * REPLACE ({negate}, NULL::TIMESTAMP AS first_seen, "
        f"NULL::TIMESTAMP AS last_seen, []::VARCHAR[] AS dst_names, "
        f"[]::VARCHAR[] AS refs), 2 AS seq FROM ({minus_sql}))"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE netpol_delta AS "
        + merge_sql(union, with_bucket=True, ref_order="seq")
    )
    touched = "(SELECT DISTINCT bucket FROM netpol_delta)"
    old_and_new = (
        f"(SELECT *, 0 AS seq FROM observations WHERE bucket IN {touched} "
        "UNION ALL SELECT *, 1 AS seq FROM netpol_delta)"
    )
    con.execute(
        "CREATE OR REPLACE TEMP TABLE netpol_merged AS "
        + merge_sql(old_and_new, with_bucket=True, ref_order="seq")
    )
    con.execute(f"DELETE FROM observations WHERE bucket IN {touched}")
    # A row can reach 0 when a straddling connection moved to a better identity.
    con.execute(
        "INSERT INTO observations SELECT * FROM netpol_merged WHERE connections > 0 ORDER BY ALL"
    )
    counts = con.execute("SELECT count(*), count(DISTINCT bucket) FROM netpol_delta").fetchone()
    con.execute("DROP TABLE netpol_delta")
    con.execute("DROP TABLE netpol_merged")
    for name in ("netpol_plus", "netpol_minus"):
        con.execute(f"DROP VIEW IF EXISTS {name}")
    return (int(counts[0]), int(counts[1])) if counts else (0, 0)


def _record_stats(con: duckdb.DuckDBPyConnection, append_id: int, stats: IngestStats) -> None:
    row = con.execute(
        "SELECT rejects, non_flow, reject_samples FROM appends WHERE id = ?", [append_id]
    ).fetchone()
    assert row is not None, "append row vanished inside the transaction"
    rejects = _add(orjson.loads(row[0]), stats.rejects)
    non_flow = _add(orjson.loads(row[1]), stats.non_flow)
    samples = (list(orjson.loads(row[2])) + list(stats.reject_samples))[:MAX_REJECT_SAMPLES]
    con.execute(
        """UPDATE appends SET committed = ?, checkpoints = checkpoints + 1,
           lines = lines + ?, flow_records = flow_records + ?, connections = connections + ?,
           replies = replies + ?, lost_events = lost_events + ?, rejected = rejected + ?,
           rejects = ?, non_flow = ?, policy_drops = policy_drops + ?,
           unknown_peers = unknown_peers + ?, reject_samples = ? WHERE id = ?""",
        [
            _now(),
            stats.lines,
            stats.flow_records,
            stats.connections,
            stats.replies,
            stats.lost_events,
            stats.rejected,
            _json(rejects),
            _json(non_flow),
            stats.policy_drops,
            stats.unknown_peers,
            orjson.dumps(samples).decode(),
            append_id,
        ],
    )


def _record_buckets(con: duckdb.DuckDBPyConnection, append_id: int, first: Any, last: Any) -> None:
    """Widen the bucket span an append covers."""
    con.execute(
        "UPDATE appends SET first_bucket = least(coalesce(first_bucket, ?), ?), "
        "last_bucket = greatest(coalesce(last_bucket, ?), ?) WHERE id = ?",
        [first, first, last, last, append_id],
    )


def _add(base: Mapping[str, Any], more: Mapping[str, int]) -> dict[str, int]:
    out = {str(k): int(v) for k, v in base.items()}
    for k, v in more.items():
        out[str(k)] = out.get(str(k), 0) + int(v)
    return out


def _json(d: Mapping[str, int]) -> str:
    return orjson.dumps(dict(sorted(d.items()))).decode()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True)
class PruneSummary:
    """What ``--retain`` removed: rows and buckets that ended at or before ``cutoff``."""

    rows: int
    buckets: int
    cutoff: Any


def prune_store(path: str, retain: str) -> PruneSummary:
    """Delete buckets that ended more than ``retain`` (``30d``) before the newest data.

    Like the read windows, the age counts back from the newest ``last_seen`` in
    the store (see :mod:`recommender.observe.store.read`), so a collector that was down
    for a while does not lose its history before new data arrives.
    """
    from recommender.observe.store.read import newest_time, parse_duration, resolve_time

    parse_duration(retain)  # a bad value fails before the store is touched
    with connect(path) as con:
        cutoff = resolve_time(retain, newest_time(con))
        if cutoff is None:
            return PruneSummary(0, 0, None)
        limit = (cutoff - pd.Timedelta(hours=1)).to_pydatetime()  # bucket end <= cutoff
        con.execute("BEGIN")
        row = con.execute(
            "SELECT count(*), count(DISTINCT bucket) FROM observations WHERE bucket <= ?", [limit]
        ).fetchone()
        con.execute("DELETE FROM observations WHERE bucket <= ?", [limit])
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
    assert row is not None
    return PruneSummary(int(row[0]), int(row[1]), cutoff)
