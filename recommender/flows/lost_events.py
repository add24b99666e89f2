"""When Hubble lost events: the time, node and count of every ``lost_events`` record.

The readers count lost events in total (``IngestStats.lost_events``); evidence
sufficiency also needs *when* (``recommender.recommend.periodicity.LostGap``).
Hubble writes them as their own lines (``hubble observe -o jsonpb`` and the
exporter)::

    {"lost_events":{"source":"PERF_EVENT_RING_BUFFER","num_events_lost":"125","cpu":2},
     "node_name":"kind-worker","time":"2026-11-02T00:03:27.934617650Z"}

This scan reads only the lines that mention ``lost_events`` (a byte search first,
so flow lines are not parsed) of files, plain or gzip; stdin cannot be read twice
and gives None (unknown). A ``lost_events`` line the reader rejects (a count out
of range, no time) is not used here either: the rejects are counted by the reader.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
import pandas as pd

from recommender.flows.hubble_checks import MAX_LOST_EVENTS
from recommender.flows.sources import STDIN, expand_paths, open_binary

_NEEDLE = b"lost_events"


@dataclass(frozen=True)
class LostEvent:
    """One Hubble ``lost_events`` record: ``count`` events lost at ``time`` on ``node``."""

    time: pd.Timestamp  # naive UTC
    count: int
    node: str | None = None
    ref: str | None = None  # file:line


def read_lost_events(paths: Sequence[str]) -> list[LostEvent] | None:
    """Every ``lost_events`` record of the flow files, in input order.

    Returns None when an input is stdin (it cannot be read again) or Parquet
    (``netpol convert`` keeps the lost-event counts, not their times).

    Raises
    ------
    InputError
        A missing or unreadable file (as the readers raise it).
    """
    sources = expand_paths(paths)
    if any(s.path == STDIN or _is_parquet(s.path) for s in sources):
        return None
    out: list[LostEvent] = []
    for source in sources:
        with open_binary(source) as fh:
            for no, line in enumerate(fh, start=1):
                if _NEEDLE in line:
                    event = parse_lost_line(line, f"{source.path}:{no}")
                    if event is not None:
                        out.append(event)
    return out


def _is_parquet(path: str) -> bool:
    if os.path.isdir(path) or path.lower().endswith(".parquet"):
        return True
    with open(path, "rb") as fh:
        return fh.read(4) == b"PAR1"


def parse_lost_line(line: bytes, ref: str | None = None) -> LostEvent | None:
    """A :class:`LostEvent` from one line, or None when it is not a usable one.

    >>> parse_lost_line(b'{"lost_events":{"num_events_lost":"3"},"time":"2026-11-02T00:03:27Z"}')
    LostEvent(time=Timestamp('2026-11-02 00:03:27'), count=3, node=None, ref=None)
    """
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if isinstance(doc, dict) and isinstance(doc.get("log"), str):  # {"log": "..."} envelope
        return parse_lost_line(doc["log"].encode(), ref)
    if not isinstance(doc, dict) or not isinstance(doc.get("lost_events"), dict):
        return None
    count = _count(doc["lost_events"].get("num_events_lost"))
    time = _time(doc.get("time"))
    if count is None or time is None:
        return None
    node = doc.get("node_name")
    return LostEvent(time, count, node if isinstance(node, str) and node else None, ref)


def _count(value: object) -> int | None:
    try:
        n = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None
    return n if 0 <= n <= MAX_LOST_EVENTS else None


def _time(value: object) -> pd.Timestamp | None:
    if not isinstance(value, str):
        return None
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError):
        return None
    if ts is pd.NaT:
        return None
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts
