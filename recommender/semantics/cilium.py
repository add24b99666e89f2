"""CiliumNetworkPolicy evaluation, alone or mixed with NetworkPolicy, with explanations.

What Cilium enforces, quoted from its policy language page where it is subtle:

* Default deny: "An endpoint can be put into the default deny mode at ingress or
  egress if a rule selects the endpoint and contains the respective rule section
  ingress or egress." ``enableDefaultDeny: {ingress: false}`` keeps a policy from
  doing so (its rules then only add allows and denies). Deny sections enable
  default deny the same way.
* Allows are additive across every policy kind; a matching deny rule wins: Cilium's
  deny-policy section, "Deny policies take precedence over allow policies,
  regardless of whether they are a Cilium Network Policy, a Clusterwide Cilium
  Network Policy or even a Kubernetes Network Policy."
* "policy must be configured on both sides (sender and receiver)".
* Local host: "Kubernetes will automatically allow all communication from the local
  host of all local endpoints" (agent default ``--allow-localhost``): ingress from
  the pod's own node passes. Egress from a pod to its own node is policy like any
  other peer: the ``host`` entity allows it, nothing else does. This is where
  Cilium differs from NetworkPolicy v1, whose own-node exemption covers egress too.
* Entities: ``host`` is "the local host", ``remote-node`` "any node ... other than
  the local host", ``world`` "all endpoints outside of the cluster", ``cluster``
  every in-cluster identity, ``all`` everything. ``kube-apiserver`` "represents
  both deployments of the kube-apiserver: within the cluster and outside of the
  cluster": the ``default/kubernetes`` endpoints, also when they are node addresses
  (then the address is ``host``/``remote-node`` and ``kube-apiserver`` at once).
* toFQDNs: "In order to associate domain names with IP addresses, Cilium intercepts
  DNS responses per-Endpoint using a DNS Proxy. This requires ... an L7 policy
  allowing DNS requests": without a ``rules.dns`` section on the pod's egress a
  toFQDNs rule matches nothing. ``dns_cache`` (address -> names) stands in for the
  proxy's cache, filled from the names Hubble recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import PolicyError
from recommender.labels import matches_selector
from recommender.model import Inventory, LabelSelector, NetworkPolicy
from recommender.semantics.cilium_rules import (
    API_VERSION,
    KIND,
    CiliumRule,
    cilium_labels,
    fqdn_matches,
    parse_rule,
    parse_selector,
)
from recommender.semantics.endpoints import Endpoint
from recommender.semantics.engine import Decision, FlowTuple, PolicySet, compile_policies
from recommender.vocabulary import DIRECTIONS

FQDN_EVIDENCE = "evidence.netpol-recommender.io/fqdns"
SECTIONS: tuple[str, ...] = ("ingress", "egress", "ingressDeny", "egressDeny")


@dataclass(frozen=True)
class CiliumPolicy:
    """A parsed CiliumNetworkPolicy (one ``spec``; a ``specs`` list gives one per item)."""

    namespace: str
    name: str
    endpoint_selector: LabelSelector
    sections: Mapping[str, tuple[CiliumRule, ...] | None] = field(hash=False)
    default_deny: Mapping[str, bool] = field(hash=False)
    source: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """``namespace/name``."""
        return f"{self.namespace}/{self.name}"

    def isolates(self, direction: str) -> bool:
        """True when the policy puts its endpoints into default deny for ``direction``.

        An empty section is no section: "If omitted or empty, this rule does not apply
        at ingress" (``api.Rule.Ingress``; the same for egress and the deny sections).
        """
        present = self.sections[direction] or self.sections[f"{direction}Deny"]
        return bool(present) and self.default_deny[direction]

    def selects(self, ep: Endpoint) -> bool:
        """Pods of the policy's namespace matching ``endpointSelector``."""
        return (
            ep.kind == "pod"
            and ep.namespace == self.namespace
            and matches_selector(self.endpoint_selector, cilium_labels(ep))
        )


def is_cilium_policy(obj: Any) -> bool:
    """True for a ``cilium.io/v2`` CiliumNetworkPolicy dict."""
    return (
        isinstance(obj, Mapping)
        and obj.get("kind") == KIND
        and obj.get("apiVersion") == API_VERSION
    )


def parse_cilium_policy(
    obj: Mapping[str, Any],
    source: str = "<memory>",
    default_namespace: str | None = None,
    doc: int | None = None,
) -> list[CiliumPolicy]:
    """The policies of one CNP dict (``specs`` gives one per item).

    Raises
    ------
    PolicyError
        A field the evaluator cannot judge exactly (refused, never ignored).
    """
    meta = obj.get("metadata") or {}
    name, ns = meta.get("name"), meta.get("namespace") or default_namespace or "default"
    if not isinstance(name, str):
        raise PolicyError(source, "metadata.name", "required", doc=doc)
    specs = obj.get("specs") if obj.get("spec") is None else [obj["spec"]]
    if not isinstance(specs, list) or not specs:
        raise PolicyError(source, "spec", "a CiliumNetworkPolicy needs spec or specs", doc=doc)
    where = source if doc is None else f"{source}#{doc}"
    out = []
    for i, spec in enumerate(specs):
        field_ = "spec" if obj.get("spec") is not None else f"specs[{i}]"
        try:
            out.append(_spec(spec, ns, name if len(specs) == 1 else f"{name}[{i}]", where, obj))
        except ValueError as exc:
            raise PolicyError(source, field_, str(exc), doc=doc) from exc
    return out


def _spec(spec: Any, ns: str, name: str, source: str, raw: Mapping[str, Any]) -> CiliumPolicy:
    if not isinstance(spec, Mapping) or "endpointSelector" not in spec:
        raise ValueError("endpointSelector is required (nodeSelector is not evaluated)")
    sections: dict[str, tuple[CiliumRule, ...] | None] = {}
    for sec in SECTIONS:
        items = spec.get(sec)
        if items is not None and not isinstance(items, list):
            raise ValueError(f"{sec} must be a list")
        sections[sec] = (
            None
            if items is None
            else tuple(
                parse_rule(r, f"{ns}/{name}#{sec}[{i}]", sec, ns) for i, r in enumerate(items)
            )
        )
    dd = spec.get("enableDefaultDeny") or {}
    return CiliumPolicy(
        ns,
        name,
        parse_selector(spec["endpointSelector"], source),
        sections,
        {d: bool(dd.get(d, True)) for d in DIRECTIONS},
        source,
        raw,
    )


def peer_entities(peer: Endpoint, local: Endpoint) -> frozenset[str]:
    """The entities ``peer`` belongs to, seen from the selected pod ``local``."""
    if peer.kind == "pod":
        return frozenset({"cluster", "all"})
    if peer.kind == "host":
        own = peer.node is not None and peer.node == local.node
        return frozenset({"host" if own else "remote-node", "cluster", "all"})
    if peer.kind == "cluster_infra":
        return frozenset({"kube-apiserver", "cluster", "all"})
    family = (
        "world-ipv6" if peer.address is not None and peer.address.version == 6 else "world-ipv4"
    )
    return frozenset({"world", family, "all"})


@dataclass(frozen=True)
class _Side:
    isolated: bool
    policies: tuple[str, ...]
    allows: tuple[str, ...]
    denies: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return (not self.isolated or bool(self.allows)) and not self.denies


class CiliumPolicySet:
    """NetworkPolicies and CiliumNetworkPolicies as Cilium enforces them together."""

    def __init__(
        self,
        policies: Sequence[NetworkPolicy],
        cilium: Sequence[CiliumPolicy],
        inventory: Inventory,
        dns_cache: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.v1: PolicySet = compile_policies(policies, inventory)
        self.cilium = tuple(sorted(cilium, key=lambda p: (p.namespace, p.name, p.source or "")))
        self.inventory = inventory
        self.dns_cache = recorded_answers(self.cilium)
        for ip, names in (dns_cache or {}).items():
            self.dns_cache[ip] = tuple(sorted({*self.dns_cache.get(ip, ()), *names}))
        self._memo: dict[FlowTuple, Decision] = {}
        self._apiserver = frozenset(
            a
            for s in inventory.endpoint_slices
            if s.namespace == "default" and s.service == "kubernetes"
            for e in s.endpoints
            for a in e.addresses
        )

    @property
    def policies(self) -> tuple[Any, ...]:
        """Every compiled NetworkPolicy, then every CiliumNetworkPolicy."""
        return (*self.v1.policies, *self.cilium)

    def selecting(self, ep: Endpoint, direction: str) -> tuple[Any, ...]:
        """NetworkPolicies and CNPs that isolate ``ep`` in ``direction``."""
        cnps = tuple(p for p in self.cilium if p.selects(ep) and p.isolates(direction))
        return (*self.v1.selecting(ep, direction), *cnps)

    def uncovered_pods(self, direction: str) -> tuple[str, ...]:
        """Keys of running, non-hostNetwork inventory pods nothing isolates in ``direction``."""
        return tuple(k for k, ep in self.v1._pod_endpoints() if not self.selecting(ep, direction))

    def selected_pods(self, direction: str) -> tuple[str, ...]:
        """Keys of the inventory pods isolated in ``direction``."""
        return tuple(k for k, ep in self.v1._pod_endpoints() if self.selecting(ep, direction))

    isolated_pods = selected_pods

    def decide(self, src: Endpoint, dst: Endpoint, port: int | None, protocol: str) -> Decision:
        """Verdict for one connection (see the module notes for the rules applied)."""
        key = (src, dst, port, protocol)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._memo[key] = self._decide(src, dst, port, protocol.upper())
        return hit

    decide_once = decide

    def decide_many(self, tuples: Iterable[FlowTuple]) -> list[Decision]:
        """:meth:`decide` for each tuple."""
        return [self.decide(*t) for t in tuples]

    def _decide(self, src: Endpoint, dst: Endpoint, port: int | None, proto: str) -> Decision:
        if src.kind == "unknown" or dst.kind == "unknown":
            side = "source" if src.kind == "unknown" else "destination"
            return Decision("unknown", reason=f"{side} endpoint is unknown")
        if src.kind == "pod" and dst.kind == "pod" and src.ip and src.ip == dst.ip:
            return Decision("allowed", reason="a pod cannot block access to itself")
        e = self._side(src, dst, "egress", port, proto)
        i = self._side(dst, src, "ingress", port, proto)
        if dst.kind == "pod" and src.kind == "host" and src.node and src.node == dst.node:
            i = _Side(False, i.policies, ("allow-localhost",), ())
        denied = {(True, True): None, (False, True): "egress", (True, False): "ingress"}
        by = denied.get((e.ok, i.ok), "both")
        return Decision(
            verdict="allowed" if by is None else "denied",
            denied_by=by,
            egress_policies=e.policies,
            ingress_policies=i.policies,
            egress_rules=e.allows,
            ingress_rules=i.allows,
            egress_isolated=e.isolated,
            ingress_isolated=i.isolated,
            reason=_deny_reason(e, i),
        )

    def _side(
        self, local: Endpoint, peer: Endpoint, direction: str, port: int | None, proto: str
    ) -> _Side:
        if local.kind != "pod":
            return _Side(False, (), (), ())
        dst = peer if direction == "egress" else local
        v1 = self.v1.selecting(local, direction)
        allows = list(self.v1._allowing(v1, direction, peer, dst, port, proto))
        mine = [p for p in self.cilium if p.selects(local)]
        dns = self._dns_for(mine) if direction == "egress" else _no_dns
        ents = peer_entities(peer, local)
        if peer.kind == "host" and peer.ip in self._apiserver:
            # "This entity represents both deployments of the kube-apiserver: within
            # the cluster and outside of the cluster": a node serving the API is both.
            ents |= {"kube-apiserver"}
        denies: list[str] = []
        for p in mine:
            allows += _hits(p.sections[direction], peer, ents, dns, port, proto, dst)
            denies += _hits(p.sections[f"{direction}Deny"], peer, ents, dns, port, proto, dst)
        isolated = bool(v1) or any(p.isolates(direction) for p in mine)
        names = tuple(cp.policy.key for cp in v1) + tuple(p.key for p in mine)
        return _Side(isolated, names, tuple(allows), tuple(denies))

    def _dns_for(self, mine: Sequence[CiliumPolicy]) -> Any:
        proxied = any(r.has_dns_rule for p in mine for r in p.sections["egress"] or ())
        if not proxied:
            return _no_dns
        cache = self.dns_cache

        def resolved(ip: str | None, patterns: tuple[str, ...]) -> bool:
            names = cache.get(ip or "", ())
            return any(fqdn_matches(pat, n) for pat in patterns for n in names)

        return resolved


def recorded_answers(policies: Sequence[CiliumPolicy]) -> dict[str, tuple[str, ...]]:
    """Address -> names from the policies' ``fqdns`` evidence annotation.

    Offline there is no DNS proxy cache; the names Hubble recorded for an address in
    the training window are what the proxy would have learned then. A fresh window
    whose answers rotated is judged only by the caller's ``dns_cache``.
    """
    out: dict[str, set[str]] = {}
    for p in policies:
        meta = p.raw.get("metadata") or {}
        text = (meta.get("annotations") or {}).get(FQDN_EVIDENCE)
        for cidr, names in (json.loads(text) if text else {}).items():
            ip = cidr.split("/", 1)[0]
            out.setdefault(ip, set()).update(names)
    return {ip: tuple(sorted(n)) for ip, n in out.items()}


def _no_dns(ip: str | None, patterns: tuple[str, ...]) -> bool:
    return False


def _hits(
    rules: tuple[CiliumRule, ...] | None,
    peer: Endpoint,
    ents: frozenset[str],
    dns: Any,
    port: int | None,
    proto: str,
    dst: Endpoint,
) -> list[str]:
    return [
        r.rule_id
        for r in rules or ()
        if r.matches_peer(peer, ents, dns) and r.matches_port(port, proto, dst)
    ]


def _deny_reason(e: _Side, i: _Side) -> str | None:
    denies = e.denies + i.denies
    if denies:
        return f"denied by {', '.join(denies)} (deny rules take precedence)"
    return None


def compile_policy_kinds(
    policies: Sequence[NetworkPolicy],
    cilium: Sequence[CiliumPolicy],
    inventory: Inventory,
    dns_cache: Mapping[str, Iterable[str]] | None = None,
) -> PolicySet | CiliumPolicySet:
    """The plain v1 engine when there is no CNP, else the Cilium engine over both kinds."""
    if not cilium:
        return compile_policies(policies, inventory)
    return CiliumPolicySet(policies, cilium, inventory, dns_cache)
