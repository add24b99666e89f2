"""The store file: opening, locking, schema, and the shared merge SQL.

The store is one DuckDB database file. It holds observations per hourly
bucket (never flows), so weeks of traffic stay in megabytes:

* ``meta(key, value)``: ``format`` = :data:`STORE_FORMAT`, ``version``.
* ``observations``: one row per (bucket, source identity, destination
  identity, port, protocol), with the counts of
  :data:`recommender.model.OBSERVATION_COLUMNS` (the verdict map is split
  into ``v_<verdict>`` columns so buckets merge with ``sum``).
* ``appends``: what each append (one ``observe`` run over files, or one stdin
  session across its checkpoints) read: lines, rejects, lost events.
* ``sources``: fingerprints of appended files, so the same file is not
  counted twice by accident.

A process opens the file only for one transaction and closes it again, so a
long ``observe`` on stdin never locks out ``recommend --store``. DuckDB allows
one writing process at a time; a busy store is retried for a few seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from recommender.errors import InputError
from recommender.model import DEFAULT_STORE as DEFAULT_STORE  # re-exported by observe.store
from recommender.vocabulary import IDENTITY_COLUMNS, POLICY_DENIED, VERDICTS

STORE_FORMAT = "netpol-observation-store"
STORE_VERSION = "1"
#: Width of a bucket. Fixed: appends with other widths could not be merged.
BUCKET = "1h"
#: Sample references kept per row.
MAX_REFS = 3
#: Seconds to wait for another process that holds the store.
LOCK_TIMEOUT_S = 15.0

VERDICT_COLUMNS: tuple[str, ...] = tuple(f"v_{v}" for v in (*VERDICTS, POLICY_DENIED))


#: Columns of the ``observations`` table, in order.
STORE_COLUMNS: tuple[str, ...] = (
    "bucket",
    *IDENTITY_COLUMNS,
    "dst_names",
    "connections",
    "first_seen",
    "last_seen",
    *VERDICT_COLUMNS,
    "refs",
)

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS observations (
    bucket TIMESTAMP NOT NULL,
    {", ".join(f"{c} VARCHAR" for c in IDENTITY_COLUMNS[:12])},
    port INTEGER, protocol VARCHAR, dst_names VARCHAR[], connections BIGINT,
    first_seen TIMESTAMP, last_seen TIMESTAMP,
    {", ".join(f"{c} BIGINT" for c in VERDICT_COLUMNS)},
    refs VARCHAR[]);
CREATE TABLE IF NOT EXISTS appends (
    id INTEGER PRIMARY KEY, kind VARCHAR, sources VARCHAR, started TIMESTAMP,
    committed TIMESTAMP, checkpoints INTEGER, lines BIGINT, flow_records BIGINT,
    connections BIGINT, replies BIGINT, lost_events BIGINT, rejected BIGINT, rejects VARCHAR,
    non_flow VARCHAR, policy_drops BIGINT, unknown_peers BIGINT, reject_samples VARCHAR,
    first_bucket TIMESTAMP, last_bucket TIMESTAMP);
CREATE TABLE IF NOT EXISTS sources (
    append_id INTEGER, path VARCHAR, size BIGINT, digest VARCHAR);
"""


# ---------------------------------------------------------------------------
# Opening
# ---------------------------------------------------------------------------


@contextmanager
def connect(
    path: str, *, create: bool = False, timeout: float = LOCK_TIMEOUT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store for one unit of work, then close it.

    Parameters
    ----------
    path
        The store file.
    create
        Create the file (and the schema) when it does not exist; otherwise a
        missing store is an error.
    timeout
        Seconds to retry while another process holds the file.

    Raises
    ------
    InputError
        Missing store, a file that is not a netpol store (or is damaged), a
        store of another format version, or a store busy for too long.
    """
    exists = os.path.exists(path)
    if not exists and not create:
        raise InputError(
            path, "no such store", hint="create it with netpol observe --flows FILE --store PATH"
        )
    if exists and os.path.isdir(path):
        raise InputError(path, "is a directory, not a store file")
    if exists and create and os.path.getsize(path) == 0:
        # A first append killed before DuckDB wrote the file header; nothing to lose.
        os.unlink(path)
        exists = False
    con = _open(path, timeout)
    try:
        _check_or_init(con, path, fresh=not exists, create=create)
        yield con
    except duckdb.Error as exc:
        # Damage found past the headers (a checksum, a short read) surfaces in a query.
        raise InputError(path, f"damaged store: {_first_line(exc)}") from None
    finally:
        con.close()


def _open(path: str, timeout: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return duckdb.connect(path, config={"threads": 2})
        except duckdb.Error as exc:
            message = _first_line(exc)
            busy = _is_lock_conflict(message)
            if busy and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if busy:
                raise InputError(
                    path, "the store is busy: another process holds it", hint=message
                ) from None
            raise InputError(
                path, f"not a readable netpol store (damaged, or not a DuckDB file): {message}"
            ) from None


def _check_or_init(
    con: duckdb.DuckDBPyConnection, path: str, fresh: bool, create: bool = False
) -> None:
    try:
        tables = {
            r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        }
        if not tables and not fresh and not create:
            raise InputError(
                path,
                "an empty store: no append was ever committed to it",
                hint="append flows with netpol observe --flows FILE --store PATH",
            )
        # An existing file without tables is a first append killed before the schema
        # committed (DuckDB creates the file on connect): create the schema now.
        if fresh or not tables:
            con.execute("BEGIN")
            con.execute(_SCHEMA)
            con.execute(
                "INSERT INTO meta VALUES ('format', ?), ('version', ?)",
                [STORE_FORMAT, STORE_VERSION],
            )
            con.execute("COMMIT")
            return
        if "meta" not in tables:
            raise InputError(path, "a DuckDB file, but not a netpol store (no meta table)")
        meta = dict(con.execute("SELECT key, value FROM meta").fetchall())
    except duckdb.Error as exc:
        raise InputError(path, f"damaged store: {_first_line(exc)}") from None
    if meta.get("format") != STORE_FORMAT:
        raise InputError(path, "a DuckDB file, but not a netpol store")
    if meta.get("version") != STORE_VERSION:
        raise InputError(
            path,
            f"store format version {meta.get('version')} is not supported "
            f"(this netpol reads version {STORE_VERSION})",
        )


def _is_lock_conflict(message: str) -> bool:
    """DuckDB's "Could not set lock on file": another process holds the store.

    Not any message with "lock" in it: "checksum ... in block at location" is damage,
    and retrying it would stall every read of a damaged store for the whole timeout.
    """
    return "could not set lock" in message.lower() or "conflicting lock" in message.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ---------------------------------------------------------------------------
# Merge SQL shared by writing (old rows + a delta) and reading (across buckets)
# ---------------------------------------------------------------------------


def _extra_sql(s: str) -> str:
    """The workload is part of the identity only where the aggregation keys on it.

    Mirrors :func:`recommender.observe.engines.aggregate.identity_sql`: a labelled pod is
    identified by its labels (its readable name is the best one seen); an
    unlabelled pod, an ``unknown``, ``cluster_infra`` or ``service`` end by
    its name.
    """
    return (
        f"CASE WHEN ({s}_kind = 'pod' AND coalesce({s}_labels, '{{}}') = '{{}}') "
        f"OR {s}_kind IN ('unknown', 'cluster_infra', 'service') THEN {s}_workload END"
    )


def _workload_rank_sql(s: str) -> str:
    """Prefer owner names (``deployment/x``) over ``pod/<name>`` over ``app/<label>``."""
    w = f"{s}_workload"
    return (
        f"CASE WHEN {w} IS NULL OR {w} = 'pod/?' THEN 0 WHEN starts_with({w}, 'app/') THEN 1 "
        f"WHEN starts_with({w}, 'pod/') THEN 2 ELSE 3 END"
    )


def key_sql(with_bucket: bool) -> list[str]:
    """``GROUP BY`` expressions of one observation row."""
    keys = ["bucket"] if with_bucket else []
    for s in ("src", "dst"):
        keys += [f"{s}_{f}" for f in ("kind", "cluster", "namespace", "labels", "ip")]
        keys.append(_extra_sql(s))
    return [*keys, "port", "protocol"]


def merge_sql(source: str, *, with_bucket: bool, ref_order: str) -> str:
    """Rows of ``source`` merged per identity: counts summed, times min/max, names unioned.

    ``ref_order`` orders the rows whose references are kept (the first
    :data:`MAX_REFS`).
    """
    keys = key_sql(with_bucket)
    names = {k: k for k in keys if " " not in k}
    select = []
    for col in ("bucket", *IDENTITY_COLUMNS) if with_bucket else IDENTITY_COLUMNS:
        if col in names:
            select.append(col)
        else:  # src_workload / dst_workload: best name seen
            side = col[:3]
            select.append(f"max({{'r': {_workload_rank_sql(side)}, 'w': {col}}}).w AS {col}")
    counts = ", ".join(f"sum({c})::BIGINT AS {c}" for c in VERDICT_COLUMNS)
    return f"""
SELECT {", ".join(select)},
       list_sort(list_distinct(flatten(list(coalesce(dst_names, []))))) AS dst_names,
       sum(connections)::BIGINT AS connections, min(first_seen) AS first_seen,
       max(last_seen) AS last_seen, {counts},
       flatten(list(coalesce(refs, []) ORDER BY {ref_order}))[1:{MAX_REFS}] AS refs
FROM {source}
GROUP BY {", ".join(keys)}"""
