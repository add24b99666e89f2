"""The long-window observation store: hourly observations in one DuckDB file.

``netpol observe`` appends to it (files, or an endless stdin stream with
checkpoints); ``recommend``, ``shadow`` and ``tighten`` read it with
``--store PATH [--since 7d]`` in place of ``--flows``.

Public API:

* :func:`read_store_observations` -- OBSERVATION_COLUMNS over a window, buckets merged.
* :func:`read_store_buckets` -- the same per hourly bucket (plus a ``bucket`` column).
* :func:`read_store_stats` -- ingest statistics (lines, rejects, lost events) of a window.
* :func:`store_flow_table` -- synthetic FlowRecord batches for shadow mode.
* :func:`append_observations`, :func:`prune_store`, :func:`store_info`.
* :class:`StreamAppender` -- checkpointed appends from a file descriptor.
"""

from recommender.observe.fingerprint import FileFingerprint, fingerprint_file
from recommender.observe.store.db import BUCKET, DEFAULT_STORE, STORE_COLUMNS
from recommender.observe.store.flows import observation_flow_batches, store_flow_table
from recommender.observe.store.read import (
    StoreInfo,
    parse_duration,
    read_store_buckets,
    read_store_observations,
    read_store_stats,
    store_info,
)
from recommender.observe.store.stream import Checkpoint, LineReader, StreamAppender, StreamOptions
from recommender.observe.store.write import (
    AppendSummary,
    PruneSummary,
    append_observations,
    find_appended,
    prune_store,
)

__all__ = [
    "BUCKET",
    "DEFAULT_STORE",
    "STORE_COLUMNS",
    "AppendSummary",
    "Checkpoint",
    "FileFingerprint",
    "LineReader",
    "PruneSummary",
    "StoreInfo",
    "StreamAppender",
    "StreamOptions",
    "append_observations",
    "find_appended",
    "fingerprint_file",
    "observation_flow_batches",
    "parse_duration",
    "prune_store",
    "read_store_buckets",
    "read_store_observations",
    "read_store_stats",
    "store_flow_table",
    "store_info",
]
