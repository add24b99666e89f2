"""CiliumNetworkPolicy (``cilium.io/v2``) L3/L4 rules: parsing and matching.

Quotes are from Cilium's policy language page (Documentation/security/policy/
language.rst, "Layer 3 Examples" and "Layer 4 Examples"). Only L3/L4 is evaluated;
an L7 section (``rules``) is read as allowing at L4, because the L7 proxy decides
per request, after the connection was admitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from recommender.labels import matches_selector
from recommender.model import LabelRequirement, LabelSelector
from recommender.semantics.endpoints import Endpoint
from recommender.semantics.rules import Network, _named_port_matches
from recommender.semantics.validate import parse_cidr

API_VERSION = "cilium.io/v2"
KIND = "CiliumNetworkPolicy"
NAMESPACE_KEY = "io.kubernetes.pod.namespace"
NAMESPACE_LABEL_PREFIX = "io.cilium.k8s.namespace.labels."
ENTITIES: frozenset[str] = frozenset(
    {"host", "remote-node", "kube-apiserver", "ingress", "cluster", "init", "health"}
    | {"unmanaged", "world", "world-ipv4", "world-ipv6", "all"}
)
#: Rule fields this evaluator understands; any other field is refused, never ignored.
_PEER_FIELDS = {
    "ingress": ("fromEndpoints", "fromEntities", "fromCIDR", "fromCIDRSet"),
    "egress": ("toEndpoints", "toEntities", "toCIDR", "toCIDRSet", "toFQDNs"),
}


@dataclass(frozen=True)
class CiliumPort:
    """One ``toPorts[].ports[]`` entry; ``protocol`` None is "ANY"."""

    protocol: str | None
    first: int | None  # None with name None: every port
    last: int | None
    name: str | None

    def matches(self, port: int | None, protocol: str, dst: Endpoint) -> bool:
        """True when (port, protocol) towards ``dst`` is admitted."""
        # "Protocol is the L4 protocol. If omitted or empty, any protocol matches."
        if self.protocol is not None and protocol != self.protocol:
            return False
        if protocol not in ("TCP", "UDP", "SCTP"):
            return False  # "Matching on ICMP is not supported" in toPorts
        if self.name is not None:
            return _named_port_matches(self.name, protocol, port, dst)
        if self.first is None:
            return True
        if port is None:
            return False
        return self.first <= port <= (self.last if self.last is not None else self.first)


@dataclass(frozen=True)
class CiliumRule:
    """One ingress/egress (or deny) rule, compiled.

    ``selectors`` are endpoint selectors already scoped to a namespace where the
    policy language scopes them; ``wildcard_l3`` marks a rule with ports but no L3
    field ("to any layer 3 destination").
    """

    rule_id: str
    selectors: tuple[LabelSelector, ...]
    entities: frozenset[str]
    networks: tuple[tuple[Network, tuple[Network, ...]], ...]
    fqdns: tuple[str, ...]
    ports: tuple[CiliumPort, ...] | None
    wildcard_l3: bool
    has_dns_rule: bool

    def matches_peer(self, peer: Endpoint, entities: frozenset[str], dns: Any) -> bool:
        """True when ``peer`` (whose entities relative to the selected pod are given) matches."""
        if self.wildcard_l3 or self.entities & entities:
            return True
        if peer.kind == "pod" and any(
            matches_selector(s, cilium_labels(peer)) for s in self.selectors
        ):
            return True
        # "By default, CIDR-based selectors do not match in-cluster entities (pods or
        # nodes)": only a peer outside the cluster is matched by address.
        if peer.kind == "world" and peer.address is not None:
            if any(_in(peer, net, ex) for net, ex in self.networks):
                return True
            return bool(self.fqdns) and dns(peer.ip, self.fqdns)
        return False

    def matches_port(self, port: int | None, protocol: str, dst: Endpoint) -> bool:
        """No ``toPorts``: "allowed to send and receive on all layer 4 ports and protocols"."""
        return self.ports is None or any(p.matches(port, protocol, dst) for p in self.ports)


def _in(peer: Endpoint, net: Network, excepts: tuple[Network, ...]) -> bool:
    addr = peer.address
    if addr is None or addr.version != net.version or addr not in net:
        return False
    return not any(addr in ex for ex in excepts)


def cilium_labels(ep: Endpoint) -> dict[str, str]:
    """The identity labels Cilium gives a pod, without the ``k8s:`` source prefix."""
    out = dict(ep.labels)
    out[NAMESPACE_KEY] = ep.namespace or ""
    out.update((NAMESPACE_LABEL_PREFIX + k, v) for k, v in ep.namespace_labels)
    return out


def parse_selector(obj: Any, where: str) -> LabelSelector:
    """A Cilium EndpointSelector with label sources stripped (``k8s:app`` -> ``app``)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: a selector must be an object")
    labels = {_key(k): str(v) for k, v in (obj.get("matchLabels") or {}).items()}
    exprs = tuple(
        LabelRequirement(_key(e["key"]), e["operator"], tuple(e.get("values") or ()))
        for e in obj.get("matchExpressions") or ()
    )
    return LabelSelector(tuple(sorted(labels.items())), exprs)


def _key(key: str) -> str:
    # "any:" and "k8s:" both match the Kubernetes labels of a pod; reserved: keys stay.
    for prefix in ("k8s:", "any:"):
        if key.startswith(prefix):
            return key[len(prefix) :]
    return key


def scoped(selector: LabelSelector, namespace: str) -> LabelSelector:
    """``selector`` limited to ``namespace`` unless it names a namespace itself.

    Cilium's Kubernetes namespaces section: a ``fromEndpoints``/``toEndpoints``
    selector without the ``k8s:io.kubernetes.pod.namespace`` label selects only
    endpoints of the policy's own namespace ("An empty EndpointSelector will select
    all egress endpoints from an endpoint based on the CiliumNetworkPolicy namespace").
    """
    keys = {k for k, _ in selector.match_labels or ()} | {
        r.key for r in selector.match_expressions or ()
    }
    if NAMESPACE_KEY in keys:
        return selector
    labels = tuple(sorted({*(selector.match_labels or ()), (NAMESPACE_KEY, namespace)}))
    return LabelSelector(labels, selector.match_expressions)


def parse_rule(obj: Any, rule_id: str, direction: str, namespace: str) -> CiliumRule:
    """Compile one rule dict; unknown or unsupported fields raise PolicyError."""
    base = direction.replace("Deny", "")
    if not isinstance(obj, Mapping):
        raise ValueError(f"{rule_id}: a rule must be an object")
    unknown = set(obj) - set(_PEER_FIELDS[base]) - {"toPorts"}
    if unknown:
        raise ValueError(f"{rule_id}: unsupported field(s) {', '.join(sorted(unknown))}")
    pre = "from" if base == "ingress" else "to"
    selectors = tuple(
        scoped(parse_selector(s, rule_id), namespace) for s in obj.get(f"{pre}Endpoints") or ()
    )
    entities = frozenset(obj.get(f"{pre}Entities") or ())
    bad = entities - ENTITIES
    if bad:
        raise ValueError(f"{rule_id}: unknown entity {sorted(bad)[0]!r}")
    networks = _networks(obj, pre)
    fqdns = tuple(_fqdn(f, rule_id) for f in obj.get("toFQDNs") or ())
    ports, dns = _ports(obj.get("toPorts"), rule_id)
    has_l3 = any(f in obj for f in _PEER_FIELDS[base])
    # An empty rule selects no peer ("default deny ... without whitelisting other
    # peers"); ports without an L3 field apply "to any layer 3 destination".
    return CiliumRule(
        rule_id, selectors, entities, networks, fqdns, ports, not has_l3 and ports is not None, dns
    )


def _networks(obj: Mapping[str, Any], pre: str) -> tuple[tuple[Network, tuple[Network, ...]], ...]:
    out: list[tuple[Network, tuple[Network, ...]]] = [
        (parse_cidr(c), ()) for c in obj.get(f"{pre}CIDR") or ()
    ]
    for item in obj.get(f"{pre}CIDRSet") or ():
        excepts = tuple(parse_cidr(e) for e in item.get("except") or ())
        out.append((parse_cidr(item["cidr"]), excepts))
    return tuple(out)


def _fqdn(obj: Mapping[str, Any], where: str) -> str:
    """A name (exact) or a pattern, kept as the pattern text (``*`` wildcards)."""
    value = obj.get("matchName") or obj.get("matchPattern")
    if not isinstance(value, str):
        raise ValueError(f"{where}: toFQDNs needs matchName or matchPattern")
    return value.lower().rstrip(".")


def _ports(items: Sequence[Any] | None, where: str) -> tuple[tuple[CiliumPort, ...] | None, bool]:
    if not items:
        return None, False
    out: list[CiliumPort] = []
    dns = False
    for item in items:
        dns = dns or bool((item.get("rules") or {}).get("dns"))
        for p in item.get("ports") or ():
            out.append(_port(p, where))
    return tuple(out), dns


def _port(p: Mapping[str, Any], where: str) -> CiliumPort:
    proto = str(p.get("protocol") or "ANY").upper()
    text = str(p.get("port", "0"))
    end = p.get("endPort")
    if not text.isdigit():
        # "EndPort is ignored if Port is a named port."
        return CiliumPort(None if proto == "ANY" else proto, None, None, text)
    number = int(text)
    if number == 0:  # port 0 is the wildcard: every port of the protocol
        return CiliumPort(None if proto == "ANY" else proto, None, None, None)
    return CiliumPort(None if proto == "ANY" else proto, number, int(end) if end else None, None)


def fqdn_matches(pattern: str, name: str) -> bool:
    """``matchPattern`` semantics: "``*`` within a domain allows 0 or more valid DNS
    characters, except for the ``.`` separator"; "``*`` alone matches all names".

    >>> fqdn_matches("*.cilium.io", "sub.cilium.io"), fqdn_matches("*.cilium.io", "cilium.io")
    (True, False)
    """
    import re

    name = name.lower().rstrip(".")
    if pattern == "*":
        return True
    regex = "".join("[-a-z0-9_]*" if c == "*" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name) is not None
