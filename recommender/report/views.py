"""Small tables for people (notebook, reports): groups and would-be-denied edges."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pandas as pd

from recommender.policy_io.policy_yaml import selector_to_dict

if TYPE_CHECKING:
    from recommender.recommend.pipeline import Recommendation


def groups_frame(rec: Recommendation) -> pd.DataFrame:
    """One row per communication group: members, selector, evidence."""
    rows = [
        {
            "namespace": g.namespace,
            "group": g.name,
            "members": ", ".join(m.name for m in g.members),
            "selector": selector_to_dict(g.selector),
            "edges": len(g.edges),
            "connections": g.connections,
            "first_seen": g.first_seen,
            "last_seen": g.last_seen,
        }
        for g in rec.groups
    ]
    return pd.DataFrame(rows)


def denied_frame(report: Mapping[str, Any]) -> pd.DataFrame:
    """The shadow report's would-be-denied edges as a table, busiest first."""
    frame = pd.DataFrame(report["would_be_denied"])
    if frame.empty:
        return frame
    cols = [
        "src_workload",
        "dst_workload",
        "port",
        "protocol",
        "connections",
        "denied_by",
        "policies",
        "first_seen",
        "last_seen",
    ]
    return (
        frame[cols]
        .sort_values(["connections", "src_workload"], ascending=[False, True], kind="stable")
        .reset_index(drop=True)
    )
