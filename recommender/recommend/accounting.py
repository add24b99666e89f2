"""Complete accounting: every observation ends learned, excluded or unknown.

An observation can resolve to several rows of the recommendation table (a
Service with several backends, the API server VIP with several endpoints). It
is **learned** when every one of its rows is learned; otherwise it takes the
reason of its first row that is not learned, and that reason says whether it is
**unknown** (a peer could not be attributed) or **excluded** (a named reason).
Each observation is counted once under one namespace (its in-scope source,
else its in-scope destination, else outside the scope) and one group (the group
of that workload), so every breakdown adds up to the total.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: Reasons that mean "we could not tell who the peer is": the outcome ``unknown``.
UNKNOWN_REASONS: frozenset[str] = frozenset({"unknown-peer", "apiserver-endpoints-unknown"})
OUTCOMES: tuple[str, ...] = ("learned", "excluded", "unknown")
#: Namespace and group labels of observations that touch no workload in scope.
OUTSIDE = "(outside the namespaces in scope)"
NO_GROUP = "(no group)"


def outcome_of(reason: Any) -> str:
    """``learned``, ``unknown`` or ``excluded`` for a reason code (None = learned).

    >>> outcome_of(None), outcome_of("unknown-peer"), outcome_of("denied")
    ('learned', 'unknown', 'excluded')
    """
    if reason is None or (isinstance(reason, float) and pd.isna(reason)):
        return "learned"
    return "unknown" if reason in UNKNOWN_REASONS else "excluded"


@dataclass
class Accounting:
    """Counts of observations per outcome, reason, namespace and group."""

    total: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    by_namespace: dict[str, Counter[str]] = field(default_factory=dict)
    by_group: dict[str, Counter[str]] = field(default_factory=dict)  # "ns/group"

    def add(self, outcome: str, reason: str | None, namespace: str, group: str) -> None:
        self.total += 1
        self.outcomes[outcome] += 1
        if reason is not None:
            self.reasons[reason] += 1
        self.by_namespace.setdefault(namespace, Counter())[outcome] += 1
        self.by_group.setdefault(group, Counter())[outcome] += 1

    def problems(self) -> list[str]:
        """Breaches of the invariant (empty when every breakdown adds up to the total)."""
        out = []
        for name, parts in (
            ("outcomes", [self.outcomes]),
            ("namespaces", list(self.by_namespace.values())),
            ("groups", list(self.by_group.values())),
        ):
            summed = sum(sum(c.values()) for c in parts)
            if summed != self.total:
                out.append(f"{name} add up to {summed}, not {self.total}")
        if sum(self.reasons.values()) != self.total - self.outcomes["learned"]:
            out.append("reasons do not add up to the observations not learned")
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain, sorted data for ``recommend --json``."""

        def counts(c: Mapping[str, int]) -> dict[str, int]:
            return {k: int(c.get(k, 0)) for k in OUTCOMES}

        return {
            "total": self.total,
            **counts(self.outcomes),
            "reasons": dict(sorted(self.reasons.items())),
            "namespaces": {k: counts(v) for k, v in sorted(self.by_namespace.items())},
            "groups": {k: counts(v) for k, v in sorted(self.by_group.items())},
        }


def observation_outcomes(table: pd.DataFrame) -> pd.DataFrame:
    """One row per observation: ``obs``, ``outcome``, ``reason`` and the row it is filed by."""
    first_open = table.assign(_open=table["reason"].notna()).sort_values(
        ["obs", "_open"], ascending=[True, False], kind="stable"
    )
    rows = first_open.groupby("obs", sort=True).head(1)
    return rows.assign(outcome=[outcome_of(r) for r in rows["reason"]])


def account(table: pd.DataFrame, groups: Iterable[Any], total: int | None = None) -> Accounting:
    """The accounting of a recommendation table (``reason``, ``src_in``, ``dst_in`` filled).

    ``total`` is the number of observations given to ``recommend``: an observation
    with no row in the table would be a dropped one, and shows up in
    :meth:`Accounting.problems`.
    """
    group_of = {m.key: f"{g.namespace}/{g.name}" for g in groups for m in g.members}
    acc = Accounting()
    for r in observation_outcomes(table).to_dict("records"):
        key = _filed_key(r)
        ns = key.split("/", 1)[0] if key else OUTSIDE
        group = group_of.get(key, f"{ns}/{NO_GROUP}") if key else OUTSIDE
        reason = None if r["outcome"] == "learned" else str(r["reason"])
        acc.add(r["outcome"], reason, ns, group)
    if total is not None and total != acc.total:
        acc.total = total  # problems() then reports the observations without a row
    return acc


def _filed_key(r: Mapping[str, Any]) -> str | None:
    """The in-scope workload an observation is filed under: source first."""
    if r["src_in"]:
        return str(r["src_key"])
    if r["dst_in"]:
        return str(r["dst_key"])
    return None
