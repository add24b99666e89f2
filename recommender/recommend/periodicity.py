"""When a rule is used: hourly timelines, their periodicity, lost-event gaps.

Everything here works on hourly buckets, the resolution of the observation
store (``recommender.observe.store``: one row per identity and hour). A
*timeline* is the sorted set of bucket starts (naive UTC) in which a rule or a
workload was seen. Consecutive buckets form one *occurrence* (a run), so a job
that runs for 90 minutes is one occurrence, and traffic seen in every hour is
one long occurrence.

:func:`detect_period` names the pattern (docs/evidence.md):

* ``unseen``: no bucket at all;
* ``once``: one occurrence of at most :data:`CONTINUOUS_HOURS` - 1 hours;
* ``hourly``: one occurrence of :data:`CONTINUOUS_HOURS` hours or more (seen in
  every hour: steady traffic, or an hourly job; hourly buckets cannot tell them
  apart, and both have a period of at most one hour);
* ``daily`` / ``weekly``: several occurrences whose starts are all 24 h / 168 h
  apart, within :data:`TOLERANCE_HOURS`;
* ``irregular``: several occurrences with any other spacing;
* ``unknown``: seen at two separate times, without the hourly history between
  them (``recommend --flows`` read from stdin; see ``recommend.stability``).

Pure: plain values in, plain values out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from recommender.flows.lost_events import LostEvent

HOUR = pd.Timedelta(hours=1)
#: A single run this long (in hourly buckets) is steady traffic, not a one-off.
CONTINUOUS_HOURS = 3
#: Named periods, in hours.
PERIODS: dict[str, int] = {"hourly": 1, "daily": 24, "weekly": 168}
#: Slack of a start time, in hours, per period (bucket rounding and scheduler jitter).
TOLERANCE_HOURS: dict[str, int] = {"daily": 1, "weekly": 2}
#: The longest period the detector knows: a rule seen once may be a weekly job.
LONGEST_PERIOD_HOURS = PERIODS["weekly"]


@dataclass(frozen=True)
class Periodicity:
    """The pattern of a timeline.

    ``period_hours`` is the detected period (None for ``unseen``, ``once`` and
    ``irregular``); ``longest_gap_hours`` the longest time between two
    occurrence starts (None with fewer than two occurrences).
    """

    kind: str
    occurrences: int
    period_hours: int | None = None
    longest_gap_hours: int | None = None

    def text(self) -> str:
        """``daily (3 runs)``, ``once``, ``irregular (4 runs, longest gap 30 h)``."""
        if self.kind in ("unseen", "once", "hourly", "unknown"):
            return self.kind
        gap = f", longest gap {self.longest_gap_hours} h" if self.kind == "irregular" else ""
        return f"{self.kind} ({self.occurrences} runs{gap})"

    @property
    def seen_twice(self) -> bool:
        """Seen in at least two occurrences (steady traffic counts as recurring)."""
        return self.kind == "hourly" or self.occurrences >= 2

    def required_absence_hours(self) -> int:
        """How long a rule must be absent before its absence means it is unused.

        One period plus one bucket of slack; a rule seen once may be a weekly
        job (:data:`LONGEST_PERIOD_HOURS`); an irregular one must stay away longer
        than its longest gap.

        >>> Periodicity("once", 1).required_absence_hours()
        169
        >>> Periodicity("daily", 3, 24, 24).required_absence_hours()
        25
        """
        if self.kind == "unseen":
            return 0
        if self.kind in ("once", "unknown"):
            return LONGEST_PERIOD_HOURS + 1
        if self.kind == "irregular":
            return int(self.longest_gap_hours or 0) + 1
        if self.kind == "hourly":
            return 2
        return int(self.period_hours or 0) + 1


def floor_hour(value: object) -> pd.Timestamp:
    """The start (naive UTC) of the hourly bucket holding ``value``.

    >>> floor_hour("2026-11-02T10:59:59Z")
    Timestamp('2026-11-02 10:00:00')
    """
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.floor("h")


def runs(hours: Iterable[pd.Timestamp]) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Occurrences: (first bucket, last bucket) of each run of consecutive buckets."""
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for h in sorted(set(hours)):
        if out and h - out[-1][1] <= HOUR:
            out[-1] = (out[-1][0], h)
        else:
            out.append((h, h))
    return out


def detect_period(hours: Iterable[pd.Timestamp]) -> Periodicity:
    """The pattern of a timeline of hourly bucket starts (see the module docstring).

    >>> t = pd.Timestamp("2026-11-02T03:00")
    >>> detect_period([t, t + pd.Timedelta(days=1), t + pd.Timedelta(days=2)]).kind
    'daily'
    >>> detect_period([t]).kind
    'once'
    """
    occ = runs(hours)
    if not occ:
        return Periodicity("unseen", 0)
    if len(occ) == 1:
        length = int((occ[0][1] - occ[0][0]) / HOUR) + 1
        if length >= CONTINUOUS_HOURS:
            return Periodicity("hourly", 1, PERIODS["hourly"])
        return Periodicity("once", 1)
    gaps = [int((b[0] - a[0]) / HOUR) for a, b in zip(occ, occ[1:], strict=False)]
    for kind in ("daily", "weekly"):
        period, slack = PERIODS[kind], TOLERANCE_HOURS[kind]
        if all(abs(g - period) <= slack for g in gaps):
            return Periodicity(kind, len(occ), period, max(gaps))
    return Periodicity("irregular", len(occ), None, max(gaps))


def days_seen(hours: Iterable[pd.Timestamp]) -> int:
    """Distinct UTC calendar days of a timeline."""
    return len({h.normalize() for h in hours})


# ---------------------------------------------------------------------------
# Lost events (Hubble ``lost_events``): when, how many, where
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LostGap:
    """Consecutive hourly buckets in which the capture reported lost events.

    ``[start, end)``: ``end`` is the end of the last bucket. Hubble reports
    the loss after the fact and does not say which flows were lost, so the
    whole bucket is unreliable.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    events: int
    records: int
    nodes: tuple[str, ...]

    def text(self) -> str:
        nodes = ", ".join(self.nodes) or "unknown node"
        return (
            f"{_hour_text(self.start)} to {_hour_text(self.end)}: {self.events:,} lost "
            f"event(s) in {self.records} record(s) ({nodes})"
        )

    def overlap(self, lo: pd.Timestamp, hi: pd.Timestamp) -> pd.Timedelta:
        """Length of ``[lo, hi)`` inside the gap."""
        return max(min(hi, self.end) - max(lo, self.start), pd.Timedelta(0))


def lost_gaps(events: Sequence[LostEvent]) -> tuple[LostGap, ...]:
    """Lost-event records merged into gaps of consecutive hourly buckets."""
    by_hour: dict[pd.Timestamp, list[LostEvent]] = {}
    for e in events:
        by_hour.setdefault(floor_hour(e.time), []).append(e)
    out: list[LostGap] = []
    for start, end in runs(by_hour):
        inside = [e for h, es in by_hour.items() if start <= h <= end for e in es]
        nodes = tuple(sorted({e.node for e in inside if e.node}))
        out.append(LostGap(start, end + HOUR, sum(e.count for e in inside), len(inside), nodes))
    return tuple(out)


def uncovered(lo: pd.Timestamp, hi: pd.Timestamp, gaps: Sequence[LostGap]) -> pd.Timedelta:
    """Length of ``[lo, hi)`` outside every gap (gaps never overlap each other)."""
    total = max(hi - lo, pd.Timedelta(0))
    return total - sum((g.overlap(lo, hi) for g in gaps), pd.Timedelta(0))


def _hour_text(ts: pd.Timestamp) -> str:
    return str(ts.strftime("%Y-%m-%dT%H:%MZ"))
