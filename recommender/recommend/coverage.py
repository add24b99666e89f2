"""Evidence coverage: what the flows could see, and what a recommendation must not guess.

A capture from one node, a short window or the wrong inventory leaves workloads
without any observed traffic. A default-deny written for them takes them down
when enforced. :func:`assess_coverage` says which nodes the flows came from
(against the inventory's nodes), the window, and which workloads and namespaces
have pods but no observed traffic at all; :func:`withhold_unobserved` then keeps
the recommendation from writing policies for them (unless the user asks with
``--deny-unobserved``).

Pure: plain data in, plain data out; the command prints and writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from recommender.inventory.workloads import Workload, WorkloadIndex
from recommender.labels import matches_selector
from recommender.model import Inventory, LabelRequirement, LabelSelector, NetworkPolicy

#: Label keys tried first to leave unobserved workloads out of a namespace-wide policy
#: (they name the application, so the exclusion reads well and stays meaningful).
PREFERRED_KEYS: tuple[str, ...] = ("app.kubernetes.io/name", "app", "k8s-app", "name")
#: Names of the namespace-wide policies that select every pod (``podSelector: {}``).
NAMESPACE_WIDE: tuple[str, ...] = ("default-deny", "allow-dns")


@dataclass(frozen=True)
class QuietWorkload:
    """A workload with pods but no observed traffic at all."""

    namespace: str
    name: str
    key: str
    pods: int
    nodes: tuple[str, ...]

    def describe(self, capture_nodes: Sequence[str] | None) -> str:
        where = ", ".join(self.nodes) or "no node"
        unseen = (
            capture_nodes is not None
            and bool(self.nodes)
            and not set(self.nodes) & set(capture_nodes)
        )
        why = " (its nodes were not captured)" if unseen else ""
        return f"{self.namespace}/{self.name}: {self.pods} pod(s) on {where}, no traffic{why}"


@dataclass(frozen=True)
class Coverage:
    """What the evidence covers. ``capture_nodes`` None: the input does not say."""

    capture_nodes: tuple[str, ...] | None
    inventory_nodes: tuple[str, ...]
    window: tuple[str | None, str | None]
    quiet: tuple[QuietWorkload, ...]
    quiet_namespaces: tuple[str, ...]
    #: ``{what: why}`` for each policy withheld or narrowed (see withhold_unobserved).
    withheld: Mapping[str, str] = field(default_factory=dict)

    @property
    def missing_nodes(self) -> tuple[str, ...]:
        """Inventory nodes no flow came from (empty when the capture nodes are unknown)."""
        if self.capture_nodes is None:
            return ()
        return tuple(n for n in self.inventory_nodes if n not in set(self.capture_nodes))

    @property
    def partial(self) -> bool:
        """Flows came from fewer nodes than the inventory has."""
        return bool(self.missing_nodes)

    @property
    def has_gaps(self) -> bool:
        """Anything ``--fail-on-gap`` fails on: partial nodes or quiet workloads."""
        return self.partial or bool(self.quiet)

    def warnings(self) -> list[str]:
        """The loud lines, partial node coverage first."""
        out = []
        if self.partial:
            seen = [n for n in self.inventory_nodes if n in set(self.capture_nodes or ())]
            out.append(
                f"PARTIAL COVERAGE: the flows come from {len(seen)} of "
                f"{len(self.inventory_nodes)} nodes ({', '.join(seen) or 'none'}); "
                "traffic local to "
                f"{', '.join(self.missing_nodes)} is invisible, so policies learned "
                "from it can deny legitimate traffic there"
            )
        if self.quiet:
            ns = len(self.quiet_namespaces)
            out.append(
                f"{len(self.quiet)} workload(s) have pods but no observed traffic"
                + (f", {ns} namespace(s) none at all" if ns else "")
                + "; see Evidence coverage in SUMMARY.md"
            )
        return out

    def markdown(self) -> list[str]:
        """The ``## Evidence coverage`` section (for the top of SUMMARY.md)."""
        first, last = self.window
        nodes = (
            "unknown (the input does not name its observer nodes)"
            if self.capture_nodes is None
            else ", ".join(self.capture_nodes) or "none"
        )
        lines = ["## Evidence coverage", ""]
        if self.partial:
            lines += [f"**{self.warnings()[0]}**", ""]
        lines += [
            f"- window: {first or '?'} to {last or '?'}",
            f"- flows observed on nodes: {nodes}",
            f"- inventory nodes: {', '.join(self.inventory_nodes) or 'none listed'}",
            f"- workloads with pods but no observed traffic: {len(self.quiet)}",
        ]
        lines += [f"  - {q.describe(self.capture_nodes)}" for q in self.quiet]
        if self.withheld:
            lines.append("- policies withheld or narrowed for lack of evidence:")
        lines += [f"  - {what}: {why}" for what, why in sorted(self.withheld.items())]
        return [*lines, ""]


def inventory_nodes(inventory: Inventory) -> tuple[str, ...]:
    """Node names from Node objects and from pods' ``spec.nodeName``, sorted."""
    names = {n.name for n in inventory.nodes} | {p.node for p in inventory.pods if p.node}
    return tuple(sorted(names))


def observed_keys(table: Any) -> frozenset[str]:
    """Workload keys that are an end of any resolved observation (learned or not)."""
    keys: set[str] = set()
    for side in ("src", "dst"):
        rows = table[table[f"{side}_role"] == "workload"]
        keys.update(str(k) for k in rows[f"{side}_key"])
    return frozenset(keys)


def assess_coverage(
    index: WorkloadIndex,
    table: Any,
    scope: Sequence[str],
    window: tuple[str | None, str | None],
    observers: Mapping[str, int] | None,
) -> Coverage:
    """Coverage of the namespaces in ``scope`` by the resolved observation ``table``.

    Parameters
    ----------
    index
        Workloads of the inventory.
    table
        ``Recommendation.table``: one row per resolved observation.
    scope
        Namespaces the recommendation writes policies for.
    window
        First and last seen (text).
    observers
        Flow records per observer node, or None when the input does not say.
    """
    seen = observed_keys(table)
    pod_nodes = {p.key: p.node for p in index.inventory.pods}
    quiet: list[QuietWorkload] = []
    quiet_ns: list[str] = []
    for ns in scope:
        members = [w for w in index.in_namespace(ns) if not w.host_network]
        silent = [w for w in members if w.key not in seen]
        quiet.extend(_quiet(w, pod_nodes) for w in silent)
        if members and len(silent) == len(members):
            quiet_ns.append(ns)
    # Hubble Relay names a node ``cluster/node``; the inventory knows ``node``.
    capture = (
        None if observers is None else tuple(sorted({n.rsplit("/", 1)[-1] for n in observers if n}))
    )
    return Coverage(
        capture, inventory_nodes(index.inventory), window, tuple(quiet), tuple(quiet_ns)
    )


def _quiet(w: Workload, pod_nodes: Mapping[str, str | None]) -> QuietWorkload:
    nodes = sorted({n for p in w.pods if (n := pod_nodes.get(p))})
    return QuietWorkload(w.namespace, w.name, w.key, len(w.pods), tuple(nodes))


def exclusion_selector(
    members: Iterable[Workload], quiet: Sequence[Workload]
) -> LabelSelector | None:
    """A selector for every workload of ``members`` except ``quiet``: ``key NotIn [...]``
    on one label key, or None when no single key tells them apart exactly.

    Kubernetes: "NotIn ... the values array must be non-empty"; a pod without the key
    matches NotIn, so the observed workloads without the key stay selected.

    >>> from recommender.inventory.workloads import Workload
    >>> web = Workload("shop", (("app", "web"),), "web")
    >>> job = Workload("shop", (("app", "report"),), "report")
    >>> exclusion_selector([web, job], [job]).match_expressions[0].values
    ('report',)
    """
    members = list(members)
    keep = [w for w in members if w not in quiet]
    common = set.intersection(*(set(w.label_map) for w in quiet)) if quiet else set()
    for key in [k for k in PREFERRED_KEYS if k in common] + sorted(common - set(PREFERRED_KEYS)):
        values = tuple(sorted({w.label_map[key] for w in quiet}))
        selector = LabelSelector(match_expressions=(LabelRequirement(key, "NotIn", values),))
        if all(matches_selector(selector, w.label_map) for w in keep) and not any(
            matches_selector(selector, w.label_map) for w in quiet
        ):
            return selector
    return None


def withhold_unobserved(rec: Any, coverage: Coverage) -> dict[str, str]:
    """Write no policy for what has no evidence; returns ``{what: why}`` for SUMMARY.md.

    A namespace without any observed traffic loses all its policies (it leaves
    ``rec.namespaces`` for ``rec.skipped_namespaces``). In a namespace with evidence,
    the namespace-wide policies leave the quiet workloads out with a ``NotIn``
    selector when one label key allows it; otherwise they stay, and say so. Groups
    made only of quiet workloads get no policy.
    """
    withheld: dict[str, str] = {}
    for ns in coverage.quiet_namespaces:
        why = "no policy written: no observed traffic (--deny-unobserved denies it anyway)"
        rec.skipped_namespaces[ns] = why
        withheld[f"namespace {ns}"] = why
    gone = set(coverage.quiet_namespaces)
    rec.namespaces[:] = [ns for ns in rec.namespaces if ns not in gone]
    quiet_keys = {q.key for q in coverage.quiet}
    rec.groups[:] = [g for g in rec.groups if g.namespace not in gone]
    silent = {
        (g.namespace, g.name) for g in rec.groups if all(m.key in quiet_keys for m in g.members)
    }
    rec.groups[:] = [g for g in rec.groups if (g.namespace, g.name) not in silent]
    for ns, name in sorted(silent):
        withheld[f"{ns}/{name}"] = "not written (no observed traffic)"
    policies = [
        p for p in rec.policies if p.namespace not in gone and (p.namespace, p.name) not in silent
    ]
    rec.policies[:] = [_scoped(p, rec.index, quiet_keys, withheld) for p in policies]
    return withheld


def _scoped(
    policy: NetworkPolicy, index: WorkloadIndex, quiet_keys: set[str], withheld: dict[str, str]
) -> NetworkPolicy:
    """A namespace-wide policy without the quiet workloads of its namespace."""
    if policy.name not in NAMESPACE_WIDE or not policy.pod_selector.is_empty:
        return policy
    members = index.in_namespace(policy.namespace)
    quiet = [w for w in members if w.key in quiet_keys]
    if not quiet:
        return policy
    selector = exclusion_selector(members, quiet)
    names = ", ".join(w.name for w in quiet)
    if selector is None:
        withheld[policy.key] = (
            f"still selects {names} (no observed traffic): no single label "
            "tells them apart; enforcing it isolates them"
        )
        return policy
    req = (selector.match_expressions or ())[0]
    withheld[policy.key] = (
        f"leaves out {names} (no observed traffic) with {req.key} NotIn [{', '.join(req.values)}]"
    )
    return replace(policy, pod_selector=selector)
