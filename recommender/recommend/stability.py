"""Evidence sufficiency: is the learning window long enough to trust a group's policy?

Per group and per rule: the observation window (first and last seen), the
connection count, the distinct days seen and the usage pattern
(:mod:`recommender.recommend.periodicity`), plus the lost-event gaps of the input.
Each group gets a state, by these rules (docs/evidence.md), checked in order:

``learning``
    the evidence window is shorter than :data:`MIN_WINDOW_HOURS` (a daily job
    may not have run yet), or the group has no learned rule, or one of its rules
    was first seen in the last :data:`WINDOW_HOURS` (its rule set still changes).
``stable``
    the evidence window is at least :data:`STABLE_WINDOW_HOURS` (a weekly job had
    the time to run), no rule of the group was first seen in the last
    :data:`QUIET_WINDOWS` windows of :data:`WINDOW_HOURS`, every rule was seen in
    at least two occurrences (a periodic job seen once is not trusted), and no
    lost-event gap falls in the group's window.
``stabilizing``
    anything else; the reasons say what is missing.

The evidence window ends at the last record's time, or at ``now`` when given:
never the wall clock, so the same input gives the same states.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recommender.flows.lost_events import LostEvent
from recommender.recommend.periodicity import (
    HOUR,
    LostGap,
    Periodicity,
    days_seen,
    detect_period,
    floor_hour,
    lost_gaps,
)
from recommender.recommend.steps import Edge, edges_of, timestamp_text

#: Shorter evidence than this: every group is ``learning``.
MIN_WINDOW_HOURS = 24
#: One "window" of the rule-change test.
WINDOW_HOURS = 24
#: Windows without a new rule before a group can be ``stable``.
QUIET_WINDOWS = 3
#: Evidence this long is needed for ``stable`` (a weekly job can have run).
STABLE_WINDOW_HOURS = 7 * 24
STATES: tuple[str, ...] = ("learning", "stabilizing", "stable")

#: The pattern of a rule seen at two separate times without hourly history in between.
UNKNOWN = Periodicity("unknown", 2)
#: Identity columns that tie a store bucket row to its observation (as the store merges).
_SIDE_KEYS = ("kind", "cluster", "namespace", "labels", "ip")


@dataclass(frozen=True)
class EvidenceInput:
    """What the command knows beyond the merged observations.

    ``buckets``: hourly rows (``bucket`` + observation columns, from the store or
    ``aggregate(bucket="1h")``), None when there is no hourly history (then the
    timelines hold only the first and last seen hours). ``lost``: the input's
    ``lost_events`` records, None when not known (a store, stdin). ``now``: the
    end of the window (default: the last record's time).
    """

    buckets: pd.DataFrame | None = None
    lost: Sequence[LostEvent] | None = None
    now: str | None = None


@dataclass(frozen=True)
class RuleEvidence:
    """Evidence of one rule of a group (an edge: direction, peer, protocol, port)."""

    edge: Edge
    connections: int
    first_seen: str | None
    last_seen: str | None
    days: int
    hours: int
    pattern: Periodicity


@dataclass(frozen=True)
class GroupEvidence:
    """A group's evidence and state (one of :data:`STATES`) with the reasons."""

    namespace: str
    name: str
    state: str
    reasons: tuple[str, ...]
    connections: int
    first_seen: str | None
    last_seen: str | None
    days: int
    rules: tuple[RuleEvidence, ...]


@dataclass(frozen=True)
class Stability:
    """Evidence sufficiency of a recommendation (rendered by ``stability_render``)."""

    window: tuple[str | None, str | None]
    window_hours: float
    history: str  # "hourly" or "first/last seen"
    gaps: tuple[LostGap, ...]
    lost_known: bool
    groups: tuple[GroupEvidence, ...] = field(default=())

    def state_of(self, namespace: str, name: str) -> str | None:
        """The state of a group, None when unknown."""
        for g in self.groups:
            if (g.namespace, g.name) == (namespace, name):
                return g.state
        return None

    def counts(self) -> dict[str, int]:
        """Groups per state."""
        return {s: sum(1 for g in self.groups if g.state == s) for s in STATES}


def observation_hours(
    observations: pd.DataFrame, buckets: pd.DataFrame | None
) -> list[frozenset[pd.Timestamp]]:
    """Per observation row: the hourly buckets it was seen in.

    Without ``buckets``, the hours of its first and last seen only.
    """
    if buckets is None:
        return [
            frozenset(floor_hour(t) for t in (f, last) if t is not None and not pd.isna(t))
            for f, last in zip(observations["first_seen"], observations["last_seen"], strict=True)
        ]
    hours: dict[tuple[Any, ...], set[pd.Timestamp]] = {}
    for row, bucket in zip(buckets.to_dict("records"), buckets["bucket"], strict=True):
        hours.setdefault(_identity(row), set()).add(floor_hour(bucket))
    return [frozenset(hours.get(_identity(r), ())) for r in observations.to_dict("records")]


def _identity(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """The store's merge key (``observe.store.db.key_sql``): the workload name counts
    only for an unlabelled pod or a named non-pod end."""
    out: list[Any] = []
    for s in ("src", "dst"):
        out += [_plain(row[f"{s}_{k}"]) for k in _SIDE_KEYS]
        named = (row[f"{s}_kind"] == "pod" and (row[f"{s}_labels"] or "{}") == "{}") or row[
            f"{s}_kind"
        ] in ("unknown", "cluster_infra", "service")
        out.append(row[f"{s}_workload"] if named else None)
    return (*out, _plain(row["port"]), row["protocol"])


def _plain(value: Any) -> Any:
    return None if value is None or (not isinstance(value, str) and pd.isna(value)) else value


def edge_hours(
    table: pd.DataFrame, hours: Sequence[frozenset[pd.Timestamp]]
) -> dict[str, dict[Edge, set[pd.Timestamp]]]:
    """Per workload key and edge: the hours seen, built like ``steps.edges_of``."""
    out: dict[str, dict[Edge, set[pd.Timestamp]]] = {}
    learned = table[table["reason"].isna()]
    for r in learned.to_dict("records"):
        seen = hours[int(r["obs"])]
        port, proto = int(r["port"]), str(r["protocol"])
        if r["src_in"] and not r["dns"]:
            out.setdefault(r["src_key"], {}).setdefault(
                ("egress", r["dst_key"], proto, port), set()
            ).update(seen)
        if r["dst_in"]:
            out.setdefault(r["dst_key"], {}).setdefault(
                ("ingress", r["src_key"], proto, port), set()
            ).update(seen)
    return out


def assess_stability(
    rec: Any, observations: pd.DataFrame, evidence: EvidenceInput | None = None
) -> Stability:
    """The evidence of every group of ``rec`` and its state.

    Parameters
    ----------
    rec
        A :class:`~recommender.recommend.pipeline.Recommendation` (its ``table``,
        ``groups``, ``window``).
    observations
        The observation rows given to ``recommend`` (``table.obs`` indexes them).
    evidence
        Hourly buckets, lost events and the window end; see :class:`EvidenceInput`.
    """
    ev = evidence or EvidenceInput()
    hours = observation_hours(observations, ev.buckets)
    per_edge = edge_hours(rec.table, hours)
    from_edges = edges_of(rec.table, rec.namespaces)
    start, end = _window(rec.window, ev.now)
    span = (end - start) / HOUR if start is not None and end is not None else 0.0
    gaps = lost_gaps(ev.lost or ())
    ctx = _Context(start, end, span, gaps, ev.buckets is not None)
    groups = tuple(_group(g, per_edge, from_edges, ctx) for g in rec.groups)
    history = "hourly" if ev.buckets is not None else "first/last seen"
    window = (timestamp_text(start), timestamp_text(end))
    return Stability(window, span, history, gaps, ev.lost is not None, groups)


@dataclass(frozen=True)
class _Context:
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    span_hours: float
    gaps: tuple[LostGap, ...]
    hourly: bool


def _window(
    window: tuple[str | None, str | None], now: str | None
) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    first, last = window
    lo = _naive(first) if first else None
    hi = _naive(now) if now else (_naive(last) if last else None)
    return lo, hi


def _naive(text: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _group(
    g: Any,
    per_edge: Mapping[str, Mapping[Edge, set[pd.Timestamp]]],
    from_edges: Mapping[str, Mapping[Edge, Mapping[str, Any]]],
    ctx: _Context,
) -> GroupEvidence:
    rules = tuple(_rule(e, g.members, per_edge, from_edges, ctx.hourly) for e in sorted(g.edges))
    all_hours = {h for m in g.members for hs in per_edge.get(m.key, {}).values() for h in hs}
    state, reasons = decide_state(rules, ctx.start, ctx.end, ctx.gaps)
    return GroupEvidence(
        g.namespace,
        g.name,
        state,
        reasons,
        g.connections,
        g.first_seen,
        g.last_seen,
        days_seen(all_hours),
        rules,
    )


def _rule(
    edge: Edge,
    members: Iterable[Any],
    per_edge: Mapping[str, Mapping[Edge, set[pd.Timestamp]]],
    from_edges: Mapping[str, Mapping[Edge, Mapping[str, Any]]],
    hourly: bool,
) -> RuleEvidence:
    hours: set[pd.Timestamp] = set()
    conns, firsts, lasts = 0, [], []
    for m in members:
        hours |= per_edge.get(m.key, {}).get(edge, set())
        ev = from_edges.get(m.key, {}).get(edge)
        if ev is not None:
            conns += int(ev["connections"])
            firsts += [ev["first_seen"]] if ev["first_seen"] else []
            lasts += [ev["last_seen"]] if ev["last_seen"] else []
    return RuleEvidence(
        edge,
        conns,
        min(firsts, default=None),
        max(lasts, default=None),
        days_seen(hours),
        len(hours),
        detect_period(hours) if hourly else first_last_pattern(hours),
    )


def first_last_pattern(hours: set[pd.Timestamp]) -> Periodicity:
    """Without hourly history only the first and last seen hours are known: one run
    is ``once``; two apart say nothing about the hours between (``unknown``)."""
    pattern = detect_period(hours)
    return pattern if pattern.occurrences <= 1 and pattern.kind != "hourly" else UNKNOWN


def decide_state(
    rules: Sequence[RuleEvidence],
    start: pd.Timestamp | None,
    end: pd.Timestamp | None,
    gaps: Sequence[LostGap],
) -> tuple[str, tuple[str, ...]]:
    """The state of a group from its rules' evidence (the rules of the module docstring).

    Returns the state and the reasons it is not more settled (empty for ``stable``).
    """
    span = (end - start) / HOUR if start is not None and end is not None else 0.0
    if span < MIN_WINDOW_HOURS:
        return "learning", (f"window {span:.1f} h < {MIN_WINDOW_HOURS} h",)
    if not rules:
        return "learning", ("no learned rule",)
    assert end is not None
    recent = [r for r in rules if r.first_seen and _naive(r.first_seen) > end - WINDOW_HOURS * HOUR]
    if recent:
        return "learning", (f"{len(recent)} rule(s) first seen in the last {WINDOW_HOURS} h",)
    reasons = _unsettled(rules, span, end, gaps)
    return ("stabilizing", reasons) if reasons else ("stable", ())


def _unsettled(
    rules: Sequence[RuleEvidence], span: float, end: pd.Timestamp, gaps: Sequence[LostGap]
) -> tuple[str, ...]:
    out: list[str] = []
    if span < STABLE_WINDOW_HOURS:
        out.append(f"window {span:.1f} h < {STABLE_WINDOW_HOURS} h")
    quiet = QUIET_WINDOWS * WINDOW_HOURS * HOUR
    changed = [r for r in rules if r.first_seen and _naive(r.first_seen) > end - quiet]
    if changed:
        out.append(f"{len(changed)} rule(s) first seen in the last {QUIET_WINDOWS} windows")
    once = [r for r in rules if not r.pattern.seen_twice]
    if once:
        out.append(f"{len(once)} rule(s) seen in only one occurrence")
    firsts = [_naive(r.first_seen) for r in rules if r.first_seen]
    lo = min(firsts, default=end)
    lost = [g for g in gaps if g.overlap(lo, end + HOUR) > pd.Timedelta(0)]
    if lost:
        out.append(f"lost events in the window ({sum(g.events for g in lost):,})")
    return tuple(out)
