"""Coverage lint: namespaces without default-deny, open workloads, egress without DNS.

Decided with the semantics engine over the inventory: "isolated" is exactly
:meth:`PolicySet.selecting`, and the DNS check asks :meth:`PolicySet.decide`.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Sequence
from typing import Any

from recommender.findings import LintFinding, finding
from recommender.labels import matches_selector
from recommender.lint.checks import InventoryView
from recommender.lint.kinds import ParsedKinds
from recommender.model import Inventory, NetworkPolicy
from recommender.semantics import Endpoint, PolicySet, endpoint_for_pod, pod_endpoint
from recommender.semantics.cilium import CiliumPolicySet
from recommender.semantics.cnp import ClusterPolicySet
from recommender.semantics.reachability import WorkloadRep
from recommender.vocabulary import DIRECTIONS

#: Labels of the cluster DNS pods (CoreDNS keeps kube-dns's label).
DNS_LABELS: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"), ("k8s-app", "coredns"))
DNS_PORT = (53, "UDP")
#: Any compiled set: NetworkPolicy alone, with Cilium, or under ClusterNetworkPolicy tiers.
Engine = PolicySet | CiliumPolicySet | ClusterPolicySet


def default_deny_gaps(
    policies: Sequence[NetworkPolicy],
    namespaces: Sequence[str],
    other_kinds: Collection[tuple[str, str]] = (),
) -> Iterator[LintFinding]:
    """NPL010: namespaces where no policy selects every pod for a direction.

    "Every pod" means an empty podSelector: the only selector that also covers
    pods created later, whatever their labels. ``other_kinds`` are the
    (namespace, direction) pairs another kind covers (:func:`kind_default_denies`).
    """
    for ns in namespaces:
        for direction in DIRECTIONS:
            if (ns, direction) in other_kinds:
                continue
            if not any(
                p.namespace == ns
                and p.pod_selector.is_empty
                and direction.capitalize() in p.policy_types
                for p in policies
            ):
                kind = direction.capitalize()
                yield finding(
                    "NPL010",
                    f"namespace {ns} has no default-deny {direction} policy "
                    f"(no policy with an empty podSelector lists {kind})",
                    policy=f"{ns}/*",
                )


def kind_default_denies(parsed: ParsedKinds, view: InventoryView) -> set[tuple[str, str]]:
    """(namespace, direction) pairs a Cilium or ClusterNetworkPolicy default-denies.

    A CiliumNetworkPolicy with an empty ``endpointSelector`` that puts its endpoints
    into default deny for the direction; a ClusterNetworkPolicy whose subject is
    every pod of the namespace (``namespaces`` subject, or an empty pod selector)
    with a Deny rule for the direction (the Baseline-tier default-deny replaces the
    per-namespace objects).
    """
    out: set[tuple[str, str]] = set()
    for _, p in parsed.cilium:
        if p.endpoint_selector.is_empty:
            out.update((p.namespace, d) for d in DIRECTIONS if p.isolates(d))
    for _, c in parsed.cluster:
        if c.subject_pods is not None and not c.subject_pods.is_empty:
            continue
        spaces = [
            n
            for n, labels in view.namespaces.items()
            if matches_selector(c.subject_namespaces, labels)
        ]
        for d in DIRECTIONS:
            if any(r.action == "Deny" for r in c.rules(d)):
                out.update((n, d) for n in spaces)
    return out


def uncovered_workloads(ps: Engine, workloads: Sequence[WorkloadRep]) -> Iterator[LintFinding]:
    """NPL011: workloads that no policy isolates, per direction."""
    for w in workloads:
        for direction in DIRECTIONS:
            if not ps.selecting(w.endpoint, direction):
                yield finding(
                    "NPL011",
                    f"workload {w.key} is not isolated for {direction}: no "
                    f"policy selects it with {direction.capitalize()}, all "
                    f"{direction} traffic passes",
                    policy=f"{w.namespace}/*",
                )


def dns_targets(inventory: Inventory) -> list[Endpoint]:
    """The cluster DNS pods of the inventory, or the conventional kube-dns identity."""
    out = [
        endpoint_for_pod(p, inventory)
        for p in sorted(inventory.pods, key=lambda p: p.key)
        if not p.host_network and any(p.labels.get(k) == v for k, v in DNS_LABELS)
    ]
    if out:
        return out
    # No DNS pod in the inventory (manifests of one app): judge against the labels
    # kube-dns/CoreDNS pods carry in kube-system on every mainstream distribution.
    return [
        pod_endpoint(
            "kube-system", dict(DNS_LABELS[:1]), ip="10.96.0.10", name="kube-system/kube-dns"
        )
    ]


def dns_gaps(
    ps: Engine,
    workloads: Sequence[WorkloadRep],
    inventory: Inventory,
    locate: dict[str, tuple[str | None, int | None]],
) -> Iterator[LintFinding]:
    """NPL012: workloads isolated for egress that no DNS target admits on 53/UDP.

    ``locate`` maps policy keys to (file, line) so the finding points at the
    first policy that isolates the workload for egress.
    """
    targets = dns_targets(inventory)
    port, proto = DNS_PORT
    for w in workloads:
        isolating = ps.selecting(w.endpoint, "egress")
        if not isolating or any(_is_dns(w, t) for t in targets):
            continue
        if any(ps.decide(w.endpoint, t, port, proto).is_allowed for t in targets):
            continue
        first = _key(isolating[0])
        file, line = locate.get(first, (None, None))
        names = ", ".join(_key(cp) for cp in isolating)
        yield finding(
            "NPL012",
            f"workload {w.key} is isolated for egress ({names}) but no rule "
            f"admits DNS ({port}/{proto}) to {_names(targets)}",
            file=file,
            line=line,
            policy=first,
        )


def _key(policy: Any) -> str:
    """The key of a compiled NetworkPolicy or of a Cilium/ClusterNetworkPolicy."""
    return str(getattr(policy, "policy", policy).key)


def _is_dns(w: WorkloadRep, target: Endpoint) -> bool:
    """The DNS pods themselves need no DNS allowance."""
    return w.endpoint.namespace == target.namespace and any(
        w.endpoint.label_map.get(k) == v for k, v in DNS_LABELS
    )


def _names(targets: Sequence[Endpoint]) -> str:
    names = sorted({t.name or str(t.ip) for t in targets})
    return ", ".join(names[:3]) + (f" (+{len(names) - 3})" if len(names) > 3 else "")
