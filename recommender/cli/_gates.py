"""Fail closed on flow input that holds nothing usable.

A gate that passes on no data is worse than no gate: ``shadow --fail-on-deny``
on an empty or foreign file must not say "nothing would be denied". Every
command that reads flows calls :func:`require_connections` once the ingest
statistics are known, and :func:`warn_if_mostly_rejected` otherwise.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping, Sequence

from recommender.errors import InputError
from recommender.flows.sniff import sniff_file
from recommender.model import Inventory
from recommender.observe.engines.base import IngestStats

#: Warn when more than this share of the lines read was rejected.
MOSTLY_REJECTED = 0.5


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k}: {counts[k]:,}" for k in sorted(counts))


def describe_input(stats: IngestStats) -> str:
    """What was read, in one clause: lines, rejects by reason, non-flow lines, replies.

    >>> describe_input(IngestStats(lines=7, rejects={"not valid JSON": 7}))
    '7 lines read, 7 rejected (not valid JSON: 7)'
    """
    parts = [f"{stats.lines:,} lines read"]
    if stats.rejected:
        parts.append(f"{stats.rejected:,} rejected ({_counts(stats.rejects)})")
    if stats.non_flow:
        parts.append(f"{sum(stats.non_flow.values()):,} non-flow ({_counts(stats.non_flow)})")
    if stats.flow_records and not stats.connections:
        parts.append(
            f"{stats.flow_records:,} flow records, none a connection request "
            f"({stats.replies:,} replies)"
        )
    return ", ".join(parts)


def recognised_format(paths: Sequence[str]) -> str | None:
    """``looks like ...`` for the first flow file whose format is recognised, or None."""
    for path in paths:
        name = sniff_file(path)
        if name is not None:
            from recommender.flows.formats import names

            return (
                f"{path} looks like {name}; netpol reads {', '.join(names())} "
                "(detected, or --format NAME) and FlowRecord or converted Parquet"
            )
    return None


def require_connections(stats: IngestStats, paths: Sequence[str] | None, what: str) -> None:
    """Refuse (exit 2) when the input holds no connection request at all.

    Parameters
    ----------
    stats
        Ingest statistics of the run.
    paths
        The flow inputs (for the message and the format sniffing), None for a store.
    what
        What the command would have done, e.g. ``"nothing to learn from"``.

    Raises
    ------
    InputError
        No usable record: one line with the counts by reason.
    """
    if stats.connections > 0:
        return
    where = ", ".join(paths) if paths else None
    hint = recognised_format(paths or ())
    reason = "no usable flow records"
    if stats.lines == 0:
        reason += " (the input is empty)"
    else:
        reason += f" ({describe_input(stats)})"
    raise InputError(where, f"{reason}: {what}", hint=hint)


def warn_if_mostly_rejected(stats: IngestStats, paths: Sequence[str] | None) -> None:
    """One warning on stderr when most lines were rejected, naming the format seen."""
    if not stats.lines or stats.rejected <= MOSTLY_REJECTED * stats.lines:
        return
    seen = recognised_format(paths or ())
    share = f"{stats.rejected:,} of {stats.lines:,} input lines were rejected"
    print(f"warning: {share}" + (f"; {seen}" if seen else ""), file=sys.stderr)


def require_pods(inventory: Inventory, paths: Sequence[str] | None) -> None:
    """Refuse an inventory without pods: every selector would select nothing, every flow
    would be unresolvable, and a gate would pass on no evidence."""
    if not inventory.pods:
        where = ", ".join(paths) if paths else None
        raise InputError(
            where,
            "the inventory holds no pods",
            hint="dump it with kubectl get namespaces,pods,services,"
            "endpointslices -A -o json, or pass --manifests",
        )


def namespace_hint(
    namespaces: Iterable[str], inventory: Inventory, default_namespace: str | None
) -> str | None:
    """A hint when no policy's namespace is in the inventory (often: the manifests name no
    namespace and were read as ``default``); None when at least one matches.

    >>> from recommender.model import Namespace
    >>> namespace_hint(["default"], Inventory(namespaces=(Namespace("shop"),)), None)[:40]
    'no policy is in a namespace of the inven'
    """
    wanted = sorted(set(namespaces))
    known = {n.name for n in inventory.namespaces} | {p.namespace for p in inventory.pods}
    if not wanted or set(wanted) & known:
        return None
    fix = (
        "check --default-namespace"
        if default_namespace
        else "policies that name no namespace were read as `default`: pass --default-namespace NS"
    )
    return (
        f"no policy is in a namespace of the inventory (policies: {', '.join(wanted)}; "
        f"inventory: {', '.join(sorted(known)) or 'none'}); {fix}"
    )


def print_namespace_hint(
    namespaces: Iterable[str], inventory: Inventory, default_namespace: str | None
) -> None:
    """:func:`namespace_hint` as a ``hint:`` line on stderr."""
    hint = namespace_hint(namespaces, inventory, default_namespace)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
