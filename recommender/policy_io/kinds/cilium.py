"""NetworkPolicy model -> CiliumNetworkPolicy (``cilium.io/v2``) dicts.

The same rules, in the shape Cilium matches best:

* selector peers become ``fromEndpoints``/``toEndpoints`` that always name the
  namespace (``k8s:io.kubernetes.pod.namespace``), so no implicit scoping applies;
* an ipBlock of the API server becomes the ``kube-apiserver`` entity and one of a
  node address ``remote-node`` (ingress; the local host is always allowed in) or
  ``host`` + ``remote-node`` (learned egress to a node): "CIDR-based selectors do
  not match in-cluster entities (pods or nodes)", so a CIDR would deny them;
* the public-ingress block (``0.0.0.0/0`` minus pod networks, written only when
  many external sources were seen) becomes the ``world`` entity;
* an external ipBlock with the DNS names Hubble recorded for it
  (the ``evidence.../fqdns`` annotation) becomes ``toFQDNs`` ``matchName``, and the
  namespace's kube-dns egress gets the DNS-proxy rule toFQDNs needs;
* other ipBlocks become ``toCIDRSet``/``fromCIDRSet`` with ``except``; ports become
  ``toPorts`` (string port numbers, ``endPort`` kept).

A pod's egress to its own node gets no rule, so Cilium denies it (the kubelet probe
on 10250); NetworkPolicy v1 always allows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import Inventory, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.semantics import endpoint_for_ip
from recommender.semantics.validate import parse_cidr

API_VERSION = "cilium.io/v2"
KIND = "CiliumNetworkPolicy"
NS_KEY = "k8s:io.kubernetes.pod.namespace"
NS_LABELS = "k8s:io.cilium.k8s.namespace.labels."
FQDN_ANNOTATION = "evidence.netpol-recommender.io/fqdns"
DNS_PROXY_RULE: dict[str, Any] = {"dns": [{"matchPattern": "*"}]}
PUBLIC_CIDRS: frozenset[str] = frozenset({"0.0.0.0/0", "::/0"})


def fqdn_map(policy: NetworkPolicy) -> dict[str, list[str]]:
    """CIDR -> names from the policy's evidence annotation ({} when none)."""
    text = dict(policy.annotations).get(FQDN_ANNOTATION)
    return {str(k): list(v) for k, v in json.loads(text).items()} if text else {}


def needs_dns_proxy(policies: Sequence[NetworkPolicy], inventory: Inventory) -> set[str]:
    """Namespaces whose output has a toFQDNs rule."""
    return {p.namespace for p in policies if _world_fqdns(p, inventory)}


def _world_fqdns(policy: NetworkPolicy, inventory: Inventory) -> dict[str, list[str]]:
    return {c: n for c, n in fqdn_map(policy).items() if _address_kind(c, inventory) == "world"}


def cilium_policy_dict(
    policy: NetworkPolicy, inventory: Inventory, dns_proxy: bool = False
) -> dict[str, Any]:
    """One CiliumNetworkPolicy dict; ``dns_proxy`` adds ``rules.dns`` to its egress ports."""
    meta: dict[str, Any] = {"name": policy.name, "namespace": policy.namespace}
    if policy.labels:
        meta["labels"] = dict(policy.labels)
    if policy.annotations:
        meta["annotations"] = dict(policy.annotations)
    conv = _Converter(policy, inventory, dns_proxy)
    spec: dict[str, Any] = {"endpointSelector": _pod_selector(policy.pod_selector, None)}
    for ptype, direction in (("Ingress", "ingress"), ("Egress", "egress")):
        if ptype in policy.policy_types:
            rules = policy.ingress if direction == "ingress" else policy.egress
            # "{}" alone: default deny in that direction without allowing any peer.
            spec[direction] = [r for rule in rules or () for r in conv.rule(rule, direction)] or [
                {}
            ]
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta, "spec": spec}


class _Converter:
    def __init__(self, policy: NetworkPolicy, inventory: Inventory, dns_proxy: bool) -> None:
        self.policy, self.inventory, self.dns_proxy = policy, inventory, dns_proxy
        self.fqdns = _world_fqdns(policy, inventory)

    def rule(self, rule: Rule, direction: str) -> list[dict[str, Any]]:
        """One v1 rule as Cilium rules: one per L3 kind (toFQDNs stands alone)."""
        pre = "from" if direction == "ingress" else "to"
        l3: dict[str, Any] = {}
        if not rule.peers:
            l3[f"{pre}Entities"] = ["all"]
        for peer in rule.peers or ():
            self._peer(peer, direction, pre, l3)
        dns = self.dns_proxy and direction == "egress"
        out = []
        for key in _L3_ORDER:
            if key in l3:
                value = sorted(set(l3[key])) if key.endswith("Entities") else l3[key]
                ports = _to_ports(rule.ports, dns)  # a fresh list: no YAML anchors
                out.append({key: value, **({"toPorts": ports} if ports else {})})
        return out

    def _peer(self, peer: Peer, direction: str, pre: str, l3: dict[str, Any]) -> None:
        if peer.ip_block is None:
            sel = _peer_selector(peer, self.policy.namespace)
            l3.setdefault(f"{pre}Endpoints", []).append(sel)
            return
        cidr, kind = peer.ip_block.cidr, _address_kind(peer.ip_block.cidr, self.inventory)
        if kind == "cluster_infra":
            l3.setdefault(f"{pre}Entities", []).append("kube-apiserver")
        elif kind == "host":
            extra = ["host"] if direction == "egress" else []
            l3.setdefault(f"{pre}Entities", []).extend(["remote-node", *extra])
        elif cidr in PUBLIC_CIDRS and direction == "ingress":
            l3.setdefault("fromEntities", []).append("world")
        elif cidr in self.fqdns and direction == "egress":
            names = l3.setdefault("toFQDNs", [])
            names.extend(
                {"matchName": n} for n in self.fqdns[cidr] if {"matchName": n} not in names
            )
        else:
            item: dict[str, Any] = {"cidr": cidr}
            if peer.ip_block.except_:
                item["except"] = list(peer.ip_block.except_)
            l3.setdefault(f"{pre}CIDRSet", []).append(item)


_L3_ORDER = (
    "fromEndpoints",
    "toEndpoints",
    "fromEntities",
    "toEntities",
    "fromCIDRSet",
    "toCIDRSet",
    "toFQDNs",
)


def _address_kind(cidr: str, inventory: Inventory) -> str:
    """``host``, ``cluster_infra`` or ``world`` for a single-address block, else world."""
    net = parse_cidr(cidr)
    if net.num_addresses != 1:
        return "world"
    ip = str(net.network_address)
    # The API server often runs on a node: its endpoint address is a node address
    # too, and the kube-apiserver entity is the narrower, exact match for it.
    if ip in _apiserver_ips(inventory):
        return "cluster_infra"
    kind = endpoint_for_ip(ip, inventory).kind
    return kind if kind in ("host", "cluster_infra") else "world"


def _apiserver_ips(inventory: Inventory) -> set[str]:
    return {
        a
        for s in inventory.endpoint_slices
        if s.namespace == "default" and s.service == "kubernetes"
        for e in s.endpoints
        for a in e.addresses
    }


def _to_ports(ports: tuple[PolicyPort, ...] | None, dns: bool) -> list[dict[str, Any]]:
    if not ports:
        return []
    out: list[dict[str, Any]] = []
    for p in ports:
        item: dict[str, Any] = {
            "port": "0" if p.port is None else str(p.port),
            "protocol": p.protocol,
        }
        if p.end_port is not None:
            item["endPort"] = p.end_port
        out.append(item)
    entry: dict[str, Any] = {"ports": out}
    if dns and any(p.port == 53 for p in ports):
        entry["rules"] = DNS_PROXY_RULE
    return [entry]


def _pod_selector(sel: LabelSelector, namespace: str | None) -> dict[str, Any]:
    labels = dict(sel.match_labels or ())
    if namespace is not None:
        labels[NS_KEY] = namespace
    out: dict[str, Any] = {}
    if labels:
        out["matchLabels"] = dict(sorted(labels.items()))
    if sel.match_expressions:
        out["matchExpressions"] = [
            _expr(r.key, r.operator, r.values) for r in sel.match_expressions
        ]
    return out


def _expr(key: str, op: str, values: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "operator": op}
    if values:
        out["values"] = list(values)
    return out


def _peer_selector(peer: Peer, own: str) -> dict[str, Any]:
    """A v1 selector peer as one Cilium EndpointSelector naming its namespace."""
    pods = peer.pod_selector or LabelSelector()
    ns = peer.namespace_selector
    if ns is None:
        return _pod_selector(pods, own)
    ns_labels = dict(ns.match_labels or ())
    if set(ns_labels) == {NAMESPACE_NAME_LABEL} and not ns.match_expressions:
        return _pod_selector(pods, ns_labels[NAMESPACE_NAME_LABEL])
    out = _pod_selector(pods, None)
    labels: Mapping[str, str] = {NS_LABELS + k: v for k, v in ns_labels.items()}
    if labels:
        out["matchLabels"] = dict(sorted({**out.get("matchLabels", {}), **labels}.items()))
    exprs = out.get("matchExpressions", []) + [
        _expr(NS_LABELS + r.key, r.operator, r.values) for r in ns.match_expressions or ()
    ]
    # Naming a namespace key keeps Cilium from scoping the selector to the own namespace.
    out["matchExpressions"] = [*exprs, {"key": NS_KEY, "operator": "Exists"}]
    return out


def cilium_policies(
    policies: Sequence[NetworkPolicy], inventory: Inventory
) -> list[dict[str, Any]]:
    """Every policy as a CNP dict, the DNS-proxy rule where a namespace uses toFQDNs."""
    proxied = needs_dns_proxy(policies, inventory)
    return [
        cilium_policy_dict(p, inventory, dns_proxy=p.name == "allow-dns" and p.namespace in proxied)
        for p in policies
    ]


def prune_cilium_rules(
    obj: dict[str, Any], drop: set[tuple[int, str, int]]
) -> tuple[dict[str, Any], list[tuple[int, str]]]:
    """``obj`` without the allow rules ``(spec index, section, rule index)`` in ``drop``.

    A section left without rules becomes ``[{}]``, the empty rule that keeps the
    endpoints in default deny: an empty list would not ("If omitted or empty, this
    rule does not apply at ingress"). ``obj`` is changed in place and returned with
    the ``(spec index, section)`` pairs that were emptied.
    """
    specs = [obj["spec"]] if obj.get("spec") is not None else list(obj.get("specs") or [])
    emptied: list[tuple[int, str]] = []
    for i, spec in enumerate(specs):
        for section in ("ingress", "egress"):
            rules = spec.get(section)
            if not rules:
                continue
            kept = [r for j, r in enumerate(rules) if (i, section, j) not in drop]
            if len(kept) != len(rules):
                spec[section] = kept or [{}]
                if not kept:
                    emptied.append((i, section))
    return obj, emptied
