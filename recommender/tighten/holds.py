"""Evidence of absence: which unused rules tighten must not prune yet.

A rule with no hit in the window is pruned only when its absence means it is
unused (docs/evidence.md). Tighten keeps it (note ``evidence-hold``, with the
reason) when:

* the history (the store's hourly buckets, beyond ``--since``) shows the rule
  in use, and the time since it was last seen, outside lost-event gaps, is
  shorter than its pattern needs (:meth:`Periodicity.required_absence_hours`):
  a weekly job seen once is not pruned after 3 days of absence, a daily one not
  after 20 hours;
* the rule was never seen, but lost-event gaps cover all of the window but
  less than one hour: the capture cannot tell that it was unused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import pandas as pd

from recommender.flows.lost_events import LostEvent
from recommender.model import Inventory
from recommender.recommend.periodicity import (
    HOUR,
    LostGap,
    detect_period,
    floor_hour,
    lost_gaps,
    uncovered,
)
from recommender.tighten.evidence import Decider, build_evidence, judge
from recommender.tighten.widen import is_candidate


@dataclass(frozen=True)
class TightenHistory:
    """What tighten knows beyond the window.

    ``buckets``: hourly rows (``bucket`` + observation columns) of a longer
    history, None when there is none (flow files: the window is all there is).
    ``lost``: the ``lost_events`` records, None when not known. ``now``: the end
    of the window (default: the last observation's time).
    """

    buckets: pd.DataFrame | None = None
    lost: Sequence[LostEvent] | None = None
    now: str | None = None


def find_holds(
    history: TightenHistory,
    compiled: Decider,
    inventory: Inventory,
    window: tuple[str | None, str | None],
    unused: Iterable[str],
) -> dict[str, str]:
    """``{rule id: why it is kept}`` for the ``unused`` rules whose absence proves nothing."""
    lo, hi = _bounds(window, history.now)
    if hi is None:
        return {}
    gaps = lost_gaps(history.lost or ())
    seen = rule_timelines(history.buckets, compiled, inventory, set(unused))
    out: dict[str, str] = {}
    for rid in sorted(set(unused)):
        why = _hold(seen.get(rid), lo or hi, hi, gaps)
        if why is not None:
            out[rid] = why
    return out


def rule_timelines(
    buckets: pd.DataFrame | None, compiled: Decider, inventory: Inventory, wanted: set[str]
) -> dict[str, tuple[set[pd.Timestamp], pd.Timestamp]]:
    """Per wanted rule id: the hourly buckets in which it was used, and its last use."""
    if buckets is None or buckets.empty or not wanted:
        return {}
    judged = judge(build_evidence(buckets, inventory), compiled)
    out: dict[str, tuple[set[pd.Timestamp], pd.Timestamp]] = {}
    for j in judged:
        if not (j.any_allowed or is_candidate(j)):
            continue  # the same use test as the hit counts (tighten.hits)
        row = buckets.iloc[j.observed.index]
        hour, last = floor_hour(row["bucket"]), pd.Timestamp(row["last_seen"])
        for d in j.decisions:
            for rid in wanted.intersection((*d.egress_rules, *d.ingress_rules)):
                hours, prev = out.get(rid, (set(), last))
                hours.add(hour)
                out[rid] = (hours, max(prev, last))
    return out


def _hold(
    seen: tuple[set[pd.Timestamp], pd.Timestamp] | None,
    lo: pd.Timestamp,
    hi: pd.Timestamp,
    gaps: Sequence[LostGap],
) -> str | None:
    if seen is None:
        inside = [g for g in gaps if g.overlap(lo, hi) > pd.Timedelta(0)]
        if inside and uncovered(lo, hi, gaps) < HOUR:
            return (
                "never seen, but lost-event gaps cover the window but "
                f"{_hours(uncovered(lo, hi, gaps))} h: " + "; ".join(g.text() for g in inside)
            )
        return None
    hours, last = seen
    pattern = detect_period(hours)
    need = pattern.required_absence_hours()
    absent = uncovered(last, hi, gaps)
    if absent >= need * HOUR:
        return None
    lost = hi - last - absent
    in_gaps = f", {_hours(lost)} h of it in lost-event gaps" if lost > pd.Timedelta(0) else ""
    maybe = " (it may be a weekly job)" if pattern.kind == "once" else ""
    return (
        f"last seen {_text(last)}, {pattern.text()}{maybe}: absent {_hours(hi - last)} h"
        f"{in_gaps}; {need} h of observed absence are needed to show it is unused"
    )


def _bounds(
    window: tuple[str | None, str | None], now: str | None
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    first, last = window
    end = now or last
    return (_naive(first) if first else None, _naive(end) if end else None)


def _naive(text: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _hours(delta: pd.Timedelta) -> str:
    return f"{delta / HOUR:.1f}"


def _text(ts: pd.Timestamp) -> str:
    return str(ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
