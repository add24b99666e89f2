"""The evidence-sufficiency section of SUMMARY.md and its ``--json`` form."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from recommender.recommend.stability import (
    MIN_WINDOW_HOURS,
    QUIET_WINDOWS,
    STABLE_WINDOW_HOURS,
    WINDOW_HOURS,
    GroupEvidence,
    RuleEvidence,
    Stability,
)
from recommender.recommend.steps import Edge

RULES_TEXT = (
    f"states: `learning` (window < {MIN_WINDOW_HOURS} h, no learned rule, or a rule first "
    f"seen in the last {WINDOW_HOURS} h), `stable` (window >= {STABLE_WINDOW_HOURS} h, no new "
    f"rule in the last {QUIET_WINDOWS} x {WINDOW_HOURS} h, every rule seen in two occurrences "
    "or more, no lost events), `stabilizing` otherwise (docs/evidence.md)"
)


def current_stability(rec: Any) -> Stability | None:
    """``rec.stability`` restricted to the groups still in ``rec.groups`` (the coverage
    check may withhold groups without traffic after the states were assessed)."""
    st: Stability | None = getattr(rec, "stability", None)
    if st is None:
        return None
    keep = {(g.namespace, g.name) for g in rec.groups}
    return replace(st, groups=tuple(g for g in st.groups if (g.namespace, g.name) in keep))


def stability_markdown(st: Stability, edge_text: Callable[[Edge], str]) -> list[str]:
    """``## Evidence sufficiency``: the window, lost-event gaps, one row per group and rule.

    ``edge_text`` renders a rule (SUMMARY.md passes its own, with readable peers).
    """
    counts = st.counts()
    lines = [
        "## Evidence sufficiency",
        "",
        f"- window: {st.window[0] or '?'} to {st.window[1] or '?'} ({st.window_hours:.1f} h); "
        f"timelines from {_history(st)}",
        f"- lost-event gaps: {_gaps(st)}",
        *[f"  - {g.text()}" for g in st.gaps],
        "- groups: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
        f"- {RULES_TEXT}",
        "",
        "| " + " | ".join(STATE_COLUMNS) + " |",
        "|" + "---|" * len(STATE_COLUMNS),
    ]
    lines += [_group_row(g) for g in st.groups]
    lines += ["", "| group | rule | connections | first seen | last seen | days | pattern |"]
    lines.append("|---|---|---|---|---|---|---|")
    for g in st.groups:
        lines += [_rule_row(g, r, edge_text(r.edge)) for r in g.rules]
    return [*lines, ""]


def _history(st: Stability) -> str:
    if st.history == "hourly":
        return "hourly buckets"
    return "first and last seen only (no hourly history, as for flows read from stdin)"


def _gaps(st: Stability) -> str:
    if not st.lost_known:
        return "unknown (the input does not say when events were lost)"
    return f"{len(st.gaps)}" if st.gaps else "none"


#: Columns of the group table (SUMMARY.md and ``netpol report``).
STATE_COLUMNS: tuple[str, ...] = (
    "group",
    "state",
    "connections",
    "first seen",
    "last seen",
    "days",
    "why not stable",
)


def read_state_table(summary: str) -> list[tuple[str, ...]]:
    r"""The group rows of the ``## Evidence sufficiency`` section of a SUMMARY.md.

    >>> text = "## Evidence sufficiency\n\n| group | state | x |\n|---|\n| a/b | stable | 1 |\n"
    >>> read_state_table(text)
    [('a/b', 'stable', '1')]
    """
    lines = summary.split("## Evidence sufficiency", 1)[-1].splitlines()
    head = next((i for i, t in enumerate(lines) if t.startswith("| group | state |")), None)
    if "## Evidence sufficiency" not in summary or head is None:
        return []
    rows = []
    for text in lines[head + 2 :]:
        if not text.startswith("| "):
            break
        rows.append(tuple(c.strip() for c in text.strip().strip("|").split(" | ")))
    return rows


def _group_row(g: GroupEvidence) -> str:
    why = "; ".join(g.reasons) or "-"
    return (
        f"| {g.namespace}/{g.name} | {g.state} | {g.connections} | {g.first_seen or '-'} | "
        f"{g.last_seen or '-'} | {g.days} | {why} |"
    )


def _rule_row(g: GroupEvidence, r: RuleEvidence, text: str) -> str:
    return (
        f"| {g.namespace}/{g.name} | {text} | {r.connections} | {r.first_seen or '-'} | "
        f"{r.last_seen or '-'} | {r.days} | {r.pattern.text()} |"
    )


def stability_json(st: Stability) -> dict[str, Any]:
    """The ``evidence`` object of ``recommend --json``."""
    return {
        "window": {"first": st.window[0], "last": st.window[1], "hours": round(st.window_hours, 3)},
        "history": st.history,
        "lost_event_gaps": None
        if not st.lost_known
        else [
            {
                "start": g.start.isoformat() + "Z",
                "end": g.end.isoformat() + "Z",
                "events": g.events,
                "records": g.records,
                "nodes": list(g.nodes),
            }
            for g in st.gaps
        ],
        "states": st.counts(),
        "groups": [_group_json(g) for g in st.groups],
    }


def _group_json(g: GroupEvidence) -> dict[str, Any]:
    return {
        "namespace": g.namespace,
        "name": g.name,
        "state": g.state,
        "reasons": list(g.reasons),
        "connections": g.connections,
        "first_seen": g.first_seen,
        "last_seen": g.last_seen,
        "days_seen": g.days,
        "rules": [
            {
                "direction": r.edge[0],
                "peer": r.edge[1],
                "protocol": r.edge[2],
                "port": r.edge[3],
                "connections": r.connections,
                "first_seen": r.first_seen,
                "last_seen": r.last_seen,
                "days_seen": r.days,
                "hours_seen": r.hours,
                "pattern": r.pattern.kind,
                "occurrences": r.pattern.occurrences,
                "period_hours": r.pattern.period_hours,
            }
            for r in g.rules
        ],
    }
