"""NetworkPolicy model pieces -> ClusterNetworkPolicy (v1alpha2) dicts, within the API's limits.

Limits from ``clusternetworkpolicy_types.go`` (network-policy-api v0.2.0): "A maximum
of 25 rules is allowed in this block" (ingress, egress), ``from``/``to`` and
``protocols`` hold at most 25 items, "Networks can have up to 25 CIDRs specified",
"Priority is a value from 0 to 1000". :func:`fit_limits` splits what is larger.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from recommender.model import LabelSelector, Peer, PolicyPort, Rule

API_VERSION = "policy.networking.k8s.io/v1alpha2"
KIND = "ClusterNetworkPolicy"
LIMIT = 25
ALL_NETWORKS: tuple[str, ...] = ("0.0.0.0/0", "::/0")
NAME_LABEL = "kubernetes.io/metadata.name"


class Unexpressible(ValueError):
    """A v1 rule ClusterNetworkPolicy cannot say exactly (the reason is the message)."""


def selector_dict(sel: LabelSelector | None) -> dict[str, Any]:
    """A LabelSelector as a metav1.LabelSelector dict (``{}`` selects everything)."""
    out: dict[str, Any] = {}
    if sel is None:
        return out
    if sel.match_labels:
        out["matchLabels"] = dict(sorted(sel.match_labels))
    if sel.match_expressions:
        out["matchExpressions"] = [
            {
                "key": r.key,
                "operator": r.operator,
                **({"values": list(r.values)} if r.values else {}),
            }
            for r in sel.match_expressions
        ]
    return out


def namespaces_in(names: Sequence[str]) -> dict[str, Any]:
    """A selector of exactly the namespaces ``names``."""
    values = sorted(set(names))
    return {"matchExpressions": [{"key": NAME_LABEL, "operator": "In", "values": values}]}


def peer_dicts(peers: tuple[Peer, ...] | None, direction: str) -> list[dict[str, Any]]:
    """v1 peers of a namespace-independent rule as CNP peers.

    Raises
    ------
    Unexpressible
        A peer relative to the policy's own namespace, an ipBlock with ``except``
        ("networks" has no except), or any ipBlock / all-peers rule on ingress
        (ingress peers are namespaces or pods only).
    """
    if not peers:
        if direction == "ingress":
            raise Unexpressible("an ingress rule from every source needs a CIDR peer")
        return [{"networks": list(ALL_NETWORKS)}]
    out: list[dict[str, Any]] = []
    cidrs: list[str] = []
    for p in peers:
        if p.ip_block is not None:
            if direction == "ingress":
                raise Unexpressible("ClusterNetworkPolicy has no CIDR (networks) ingress peers")
            if p.ip_block.except_:
                raise Unexpressible(f"networks has no except (ipBlock {p.ip_block.cidr})")
            cidrs.append(p.ip_block.cidr)
        elif p.namespace_selector is None:
            raise Unexpressible("a peer of the policy's own namespace has no cluster-wide form")
        elif p.pod_selector is None:
            out.append({"namespaces": selector_dict(p.namespace_selector)})
        else:
            ns, pods = selector_dict(p.namespace_selector), selector_dict(p.pod_selector)
            out.append({"pods": {"namespaceSelector": ns, "podSelector": pods}})
    if cidrs:
        out.append({"networks": sorted(set(cidrs))})
    return out


def protocol_dicts(ports: tuple[PolicyPort, ...] | None) -> list[dict[str, Any]] | None:
    """v1 ports as ``protocols`` (None: every protocol and port, like v1's missing ports)."""
    if not ports:
        return None
    out: list[dict[str, Any]] = []
    for p in ports:
        if isinstance(p.port, str):
            # "DestinationNamedPort selects a destination port on a pod based on the
            # ContainerPort name" (any transport; v1 also needs the protocol to agree).
            out.append({"destinationNamedPort": p.port})
            continue
        if p.port is None:  # v1: "every port of the protocol"
            dest: dict[str, Any] = {"range": {"start": 1, "end": 65535}}
        elif p.end_port is not None and p.end_port > p.port:
            dest = {"range": {"start": p.port, "end": p.end_port}}
        else:
            dest = {"number": p.port}
        out.append({p.protocol.lower(): {"destinationPort": dest}})
    return out


def rule_dict(rule: Rule, direction: str, action: str, name: str) -> dict[str, Any]:
    """One v1 rule as one CNP rule with ``action``."""
    key = "from" if direction == "ingress" else "to"
    out: dict[str, Any] = {"name": name, "action": action, key: peer_dicts(rule.peers, direction)}
    protocols = protocol_dicts(rule.ports)
    if protocols is not None:
        out["protocols"] = protocols
    return out


def cnp_dict(
    name: str,
    tier: str,
    priority: int,
    subject: dict[str, Any],
    rules: dict[str, list[dict[str, Any]]],
    meta: dict[str, Any],
) -> dict[str, Any]:
    """A ClusterNetworkPolicy object (``rules``: direction -> rule dicts, empty ones left out)."""
    spec: dict[str, Any] = {"tier": tier, "priority": priority, "subject": subject}
    spec.update({d: r for d, r in rules.items() if r})
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name, **meta},
        "spec": spec,
    }


def fit_limits(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """``obj`` split so every list is within the API's limits.

    Networks over 25 become more peers, peers or protocols over 25 more rules (the
    same action, so order among them does not matter), rules over 25 more objects
    (``name``, ``name-2``, ...) at the same priority. Splitting rules across objects
    is exact only when they share one action: ties between same-priority objects are
    ambiguous only when actions differ, so mixed actions raise Unexpressible.
    """
    spec = obj["spec"]
    rules = {d: _split_rules(spec.get(d) or [], d) for d in ("ingress", "egress")}
    actions = {r["action"] for rs in rules.values() for r in rs}
    n = max(1, *(-(-len(rs) // LIMIT) for rs in rules.values()))
    if n > 1 and len(actions) > 1:
        raise Unexpressible(f"{obj['metadata']['name']}: over {LIMIT} rules of mixed actions")
    out = []
    for i in range(n):
        name = obj["metadata"]["name"] + ("" if i == 0 else f"-{i + 1}")
        part = {d: rs[i * LIMIT : (i + 1) * LIMIT] for d, rs in rules.items()}
        meta = {k: v for k, v in obj["metadata"].items() if k != "name"}
        out.append(cnp_dict(name, spec["tier"], spec["priority"], spec["subject"], part, meta))
    return out


def _split_rules(rules: list[dict[str, Any]], direction: str) -> list[dict[str, Any]]:
    key = "from" if direction == "ingress" else "to"
    out = []
    for rule in rules:
        peers = [q for p in rule[key] for q in _split_networks(p)]
        protos = rule.get("protocols")
        proto_chunks = [None] if protos is None else _chunks(protos)
        for j, (pc, chunk) in enumerate((pc, c) for pc in proto_chunks for c in _chunks(peers)):
            item = {**rule, key: chunk}
            if pc is not None:
                item["protocols"] = pc
            if j:
                item["name"] = f"{rule['name']}-{j + 1}"
            out.append(item)
    return out


def _split_networks(peer: dict[str, Any]) -> list[dict[str, Any]]:
    if "networks" not in peer:
        return [peer]
    return [{"networks": c} for c in _chunks(peer["networks"])]


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + LIMIT] for i in range(0, len(items), LIMIT)] or [[]]
