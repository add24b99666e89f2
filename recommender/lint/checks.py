"""Per-policy lint checks: broad rules, selectors against the inventory, label hygiene.

Pure: policies and an inventory in, findings out. Each check yields
``(rule_id, field_path, message)``; :func:`check_policy` adds the location.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from recommender.findings import LintFinding, finding
from recommender.labels import (
    EPHEMERAL_LABEL_KEYS,
    NAMESPACE_NAME_LABEL,
    is_ephemeral_key,
    matches_selector,
    namespace_labels,
)
from recommender.model import Inventory, LabelSelector, NetworkPolicy, Peer, Pod
from recommender.semantics.endpoints import TERMINAL_PHASES

Hit = tuple[str, str, str]  # (rule id, field path, message)
Locator = Callable[[str], int | None]


@dataclass(frozen=True)
class InventoryView:
    """The inventory as selectors see it: namespace label maps and live, selectable pods."""

    namespaces: dict[str, dict[str, str]]
    pods: tuple[Pod, ...]

    @classmethod
    def of(cls, inventory: Inventory) -> InventoryView:
        """Build the view; namespaces of pods are added when the inventory lacks them."""
        ns = {n.name: namespace_labels(n.name, n.labels) for n in inventory.namespaces}
        pods = tuple(
            p for p in inventory.pods if not p.host_network and p.phase not in TERMINAL_PHASES
        )
        for p in pods:
            ns.setdefault(p.namespace, namespace_labels(p.namespace, None))
        return cls(ns, pods)

    def pods_in(self, namespace: str, selector: LabelSelector) -> list[Pod]:
        """Pods of ``namespace`` that ``selector`` matches."""
        return [
            p
            for p in self.pods
            if p.namespace == namespace and matches_selector(selector, p.labels)
        ]


def check_policy(
    policy: NetworkPolicy, view: InventoryView, file: str | None, locate: Locator
) -> list[LintFinding]:
    """Every static finding of one valid policy."""
    hits = [*_broad_rules(policy), *_selectors(policy, view), *_labels(policy)]
    return [
        finding(rid, msg, file=file, line=locate(path), policy=policy.key, path=path)
        for rid, path, msg in hits
    ]


def _rules(policy: NetworkPolicy) -> Iterator[tuple[str, int, str, tuple[Peer, ...] | None, bool]]:
    """(direction, index, path, peers, has ports) of every rule under a listed policy type."""
    for direction, rules in (("ingress", policy.ingress), ("egress", policy.egress)):
        if direction.capitalize() not in policy.policy_types:
            continue
        for i, rule in enumerate(rules or ()):
            yield direction, i, f"spec.{direction}[{i}]", rule.peers, bool(rule.ports)


def _peers(policy: NetworkPolicy) -> Iterator[tuple[str, str, Peer]]:
    """(direction, field path, peer) of every peer under a listed policy type."""
    for direction, _i, path, peers, _ports in _rules(policy):
        key = "from" if direction == "ingress" else "to"
        for j, peer in enumerate(peers or ()):
            yield direction, f"{path}.{key}[{j}]", peer


def _broad_rules(policy: NetworkPolicy) -> Iterator[Hit]:
    for direction, _i, path, peers, has_ports in _rules(policy):
        side = "source" if direction == "ingress" else "destination"
        if not peers and not has_ports:
            yield "NPL001", path, f"{direction} rule admits every {side} on every port"
        elif not peers:
            yield (
                "NPL002",
                path,
                f"{direction} rule admits every {side} (pods and external addresses) on its ports",
            )
    for _direction, path, peer in _peers(policy):
        block = peer.ip_block
        if block is not None:
            try:
                net = ipaddress.ip_network(block.cidr, strict=False)
            except ValueError:
                continue  # reported by validation
            if net.prefixlen == 0:
                family = f"IPv{net.version}"
                holes = f" except {', '.join(block.except_)}" if block.except_ else ""
                yield (
                    "NPL003",
                    f"{path}.ipBlock",
                    f"ipBlock {block.cidr} admits all of {family}{holes}: the whole internet",
                )
        elif (
            peer.namespace_selector is not None
            and peer.namespace_selector.is_empty
            and (peer.pod_selector is None or peer.pod_selector.is_empty)
        ):
            yield "NPL004", path, "empty namespaceSelector admits every pod of every namespace"


def _selectors(policy: NetworkPolicy, view: InventoryView) -> Iterator[Hit]:
    if policy.namespace not in view.namespaces:
        yield (
            "NPL024",
            "metadata.namespace",
            f"namespace {policy.namespace!r} is not in the inventory; selector checks are skipped",
        )
        return
    if not view.pods_in(policy.namespace, policy.pod_selector):
        yield (
            "NPL020",
            "spec.podSelector",
            f"podSelector {_fmt(policy.pod_selector)} matches "
            f"no pod in namespace {policy.namespace}: the policy has no effect",
        )
    for _direction, path, peer in _peers(policy):
        if peer.ip_block is None:
            yield from _peer_selects(policy.namespace, path, peer, view)


def _peer_selects(own_ns: str, path: str, peer: Peer, view: InventoryView) -> Iterator[Hit]:
    namespaces = [own_ns]
    if peer.namespace_selector is not None:
        sel = peer.namespace_selector
        namespaces = sorted(
            n for n, labels in view.namespaces.items() if matches_selector(sel, labels)
        )
        if not namespaces:
            hint = _name_label_hint(sel, view.namespaces)
            if hint:
                yield "NPL023", f"{path}.namespaceSelector", hint
            else:
                yield (
                    "NPL022",
                    f"{path}.namespaceSelector",
                    f"namespaceSelector {_fmt(sel)} matches no namespace in the inventory",
                )
            return
    pod_sel = peer.pod_selector or LabelSelector()
    if not any(view.pods_in(ns, pod_sel) for ns in namespaces):
        where = (
            f"namespace {own_ns}"
            if peer.namespace_selector is None
            else f"namespaces {', '.join(namespaces)}"
        )
        yield "NPL021", path, f"peer {_fmt(peer.pod_selector)} matches no pod in {where}"


def _name_label_hint(sel: LabelSelector, namespaces: Mapping[str, Mapping[str, str]]) -> str:
    """The classic mistake: ``{name: shop}`` where only kubernetes.io/metadata.name exists."""
    for key, value in sel.match_labels or ():
        carried = any(key in labels for labels in namespaces.values())
        if not carried and value in namespaces and key != NAMESPACE_NAME_LABEL:
            return (
                f"namespaceSelector {{{key}: {value}}} matches no namespace: namespace "
                f"{value!r} exists but no namespace carries label {key!r}; select it with "
                f"{{{NAMESPACE_NAME_LABEL}: {value}}}"
            )
    return ""


def _labels(policy: NetworkPolicy) -> Iterator[Hit]:
    selectors = [("spec.podSelector", policy.pod_selector)]
    selectors += [
        (f"{path}.podSelector", p.pod_selector)
        for _d, path, p in _peers(policy)
        if p.pod_selector is not None
    ]
    for path, sel in selectors:
        keys = sorted(
            {k for k, _ in sel.match_labels or ()} | {r.key for r in sel.match_expressions or ()}
        )
        for key in keys:
            if key in EPHEMERAL_LABEL_KEYS:
                yield (
                    "NPL030",
                    path,
                    f"label {key!r} changes per rollout, pod or job run; the "
                    "selector breaks on the next rollout",
                )
            elif is_ephemeral_key(key):
                yield (
                    "NPL031",
                    path,
                    f"label {key!r} is left out of Cilium security "
                    "identities; under Cilium this selector does not match as written",
                )


def _fmt(sel: LabelSelector | None) -> str:
    if sel is None:
        return "{}"
    parts = [f"{k}={v}" for k, v in sel.match_labels or ()]
    parts += [
        f"{r.key} {r.operator} ({','.join(r.values)})".replace(" ()", "")
        for r in sel.match_expressions or ()
    ]
    return "{" + ", ".join(parts) + "}"
