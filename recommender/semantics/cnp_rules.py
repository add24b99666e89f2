"""ClusterNetworkPolicy (``policy.networking.k8s.io/v1alpha2``) objects: parsing and matching.

Quotes are the Go doc comments of network-policy-api v0.2.0
(``apis/v1alpha2/clusternetworkpolicy_types.go``). Every field is either judged
exactly or refused with a :class:`ValueError` the loader turns into a located
PolicyError; nothing is ignored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from recommender.errors import PolicyError
from recommender.labels import matches_selector
from recommender.model import LabelRequirement, LabelSelector
from recommender.semantics.endpoints import Endpoint
from recommender.semantics.rules import Network
from recommender.semantics.validate import parse_cidr
from recommender.vocabulary import DIRECTIONS

API_VERSION = "policy.networking.k8s.io/v1alpha2"
KIND = "ClusterNetworkPolicy"
TIERS: tuple[str, ...] = ("Admin", "Baseline")
ACTIONS: tuple[str, ...] = ("Accept", "Deny", "Pass")
MAX_RULES = 25  # "A maximum of 25 rules is allowed in this block."
PRIORITY_RANGE = (0, 1000)  # "Priority is a value from 0 to 1000"
FQDN_EVIDENCE = "evidence.netpol-recommender.io/fqdns"
_PEERS = {"ingress": ("namespaces", "pods"), "egress": ("namespaces", "pods", "nodes", "networks")}
_PEERS_EGRESS_EXPERIMENTAL = ("domainNames",)

#: Looks up the labels of the node behind a host endpoint (None: not in the inventory).
NodeLabels = Callable[[Endpoint], Mapping[str, str] | None]
#: Tells whether an address answered one of the given names (the DNS evidence).
Resolver = Callable[[str | None, tuple[str, ...]], bool]


@dataclass(frozen=True)
class CNPPort:
    """One ``protocols[]`` entry: a transport with a port range, or a named port."""

    protocol: str | None  # None: destinationNamedPort, any transport
    first: int | None = None
    last: int | None = None
    name: str | None = None

    def matches(self, port: int | None, protocol: str, dst: Endpoint) -> bool:
        """True when (port, protocol) towards ``dst`` matches this entry."""
        if self.name is not None:
            # "DestinationNamedPort selects a destination port on a pod based on the
            # ContainerPort name": only a pod destination has named ports.
            return (
                dst.kind == "pod"
                and port is not None
                and any(
                    cp.name == self.name and cp.port == port and cp.protocol.upper() == protocol
                    for cp in dst.ports
                )
            )
        if protocol != self.protocol or port is None:
            return False
        return self.first is None or (self.first <= port <= (self.last or self.first))


@dataclass(frozen=True)
class CNPPeer:
    """One peer; exactly one of its fields is set ("Exactly one of the fields must be set")."""

    kind: str
    namespaces: LabelSelector | None = None
    pods: LabelSelector | None = None
    nodes: LabelSelector | None = None
    networks: tuple[Network, ...] = ()
    names: tuple[str, ...] = ()

    def matches(self, ep: Endpoint, node_labels: NodeLabels, resolve: Resolver) -> bool:
        """True when ``ep`` is this peer."""
        if self.kind in ("namespaces", "pods"):
            # "Note that host-networked pods are not included in this type of peer."
            return (
                ep.kind == "pod"
                and matches_selector(self.namespaces or LabelSelector(), ep.namespace_label_map)
                and (self.pods is None or matches_selector(self.pods, ep.label_map))
            )
        if self.kind == "networks":
            # "cluster-internal traffic will be checked against the rule as well": an
            # address matches whatever it belongs to (pods and nodes too).
            addr = ep.address
            return addr is not None and any(
                addr.version == n.version and addr in n for n in self.networks
            )
        if self.kind == "nodes":
            # "It selects the nodeIPs ... present in the node.Status.Addresses field".
            labels = node_labels(ep) if ep.kind == "host" else None
            return labels is not None and matches_selector(self.nodes or LabelSelector(), labels)
        return ep.kind == "world" and resolve(ep.ip, self.names)


@dataclass(frozen=True)
class CNPRule:
    """One rule: its action, peers and protocols (None: "protocol-specific attributes
    will not be used to match traffic", so every packet of the peer matches)."""

    rule_id: str
    action: str
    peers: tuple[CNPPeer, ...]
    protocols: tuple[CNPPort, ...] | None

    def matches(
        self,
        peer: Endpoint,
        dst: Endpoint,
        port: int | None,
        protocol: str,
        lookups: tuple[NodeLabels, Resolver],
    ) -> bool:
        """True when the connection with ``peer`` on (port, protocol) towards ``dst`` matches."""
        if not any(p.matches(peer, *lookups) for p in self.peers):
            return False
        return self.protocols is None or any(p.matches(port, protocol, dst) for p in self.protocols)


@dataclass(frozen=True)
class ClusterPolicy:
    """A parsed ClusterNetworkPolicy (cluster-scoped: no namespace)."""

    name: str
    tier: str
    priority: int
    subject_namespaces: LabelSelector
    subject_pods: LabelSelector | None  # None: subject.namespaces (every pod there)
    ingress: tuple[CNPRule, ...]
    egress: tuple[CNPRule, ...]
    source: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def key(self) -> str:
        """``ClusterNetworkPolicy/name`` (cluster-scoped, so no namespace)."""
        return f"{KIND}/{self.name}"

    def rules(self, direction: str) -> tuple[CNPRule, ...]:
        """Rules of ``direction`` in precedence order ("the order in which the rule is written")."""
        return self.ingress if direction == "ingress" else self.egress

    def selects(self, ep: Endpoint) -> bool:
        """Pods of the subject ("host-networked pods are not included in subject selection")."""
        return (
            ep.kind == "pod"
            and matches_selector(self.subject_namespaces, ep.namespace_label_map)
            and (self.subject_pods is None or matches_selector(self.subject_pods, ep.label_map))
        )

    @property
    def uses_nodes(self) -> bool:
        """True when an egress rule has a ``nodes`` peer with a non-empty selector."""
        return any(
            p.kind == "nodes" and p.nodes != LabelSelector() for r in self.egress for p in r.peers
        )


def is_cluster_policy(obj: Any) -> bool:
    """True for a ``policy.networking.k8s.io/v1alpha2`` ClusterNetworkPolicy dict."""
    return (
        isinstance(obj, Mapping)
        and obj.get("kind") == KIND
        and obj.get("apiVersion") == API_VERSION
    )


def parse_cluster_policy(obj: Mapping[str, Any], source: str = "<memory>") -> ClusterPolicy:
    """Compile one ClusterNetworkPolicy dict; ValueError ``field: reason`` when refused."""
    name = (obj.get("metadata") or {}).get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("metadata.name: required, a non-empty string")
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        raise ValueError("spec: required")
    tier, priority = spec.get("tier"), spec.get("priority")
    if tier not in TIERS:
        raise ValueError(f"spec.tier: must be Admin or Baseline, got {tier!r}")
    low, high = PRIORITY_RANGE
    if not isinstance(priority, int) or isinstance(priority, bool) or not low <= priority <= high:
        raise ValueError(
            f"spec.priority: must be an integer from {low} to {high}, got {priority!r}"
        )
    ns_sel, pod_sel = _subject(spec.get("subject"))
    evidence = _evidence(obj)
    rules = {d: _rules(spec, d, name, evidence) for d in DIRECTIONS}
    return ClusterPolicy(
        name, tier, priority, ns_sel, pod_sel, rules["ingress"], rules["egress"], source, obj
    )


def _subject(subject: Any) -> tuple[LabelSelector, LabelSelector | None]:
    # "Exactly one field must be set."
    if not isinstance(subject, Mapping) or len(subject) != 1:
        raise ValueError("spec.subject: exactly one of namespaces or pods must be set")
    if "namespaces" in subject:
        return parse_label_selector(subject["namespaces"], "spec.subject.namespaces"), None
    if "pods" in subject:
        return _namespaced_pod(subject["pods"], "spec.subject.pods")
    raise ValueError(f"spec.subject: unknown field {next(iter(subject))!r}")


def _namespaced_pod(obj: Any, where: str) -> tuple[LabelSelector, LabelSelector]:
    if not isinstance(obj, Mapping) or "podSelector" not in obj:
        raise ValueError(f"{where}: podSelector is required")
    # "NamespaceSelector follows standard label selector semantics; if empty, it
    # selects all Namespaces."
    ns = parse_label_selector(obj.get("namespaceSelector") or {}, f"{where}.namespaceSelector")
    return ns, parse_label_selector(obj["podSelector"], f"{where}.podSelector")


def parse_label_selector(obj: Any, where: str) -> LabelSelector:
    """A metav1.LabelSelector dict (``{}`` selects everything)."""
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: a label selector must be an object")
    unknown = set(obj) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    labels = tuple(sorted((str(k), str(v)) for k, v in (obj.get("matchLabels") or {}).items()))
    exprs = tuple(
        LabelRequirement(e["key"], e["operator"], tuple(e.get("values") or ()))
        for e in obj.get("matchExpressions") or ()
    )
    return LabelSelector(labels or None, exprs or None)


def _rules(
    spec: Mapping[str, Any], direction: str, name: str, evidence: Mapping[str, tuple[str, ...]]
) -> tuple[CNPRule, ...]:
    items = spec.get(direction) or []
    if not isinstance(items, list):
        raise ValueError(f"spec.{direction}: must be a list")
    if len(items) > MAX_RULES:
        raise ValueError(f"spec.{direction}: {len(items)} rules, at most {MAX_RULES} are allowed")
    return tuple(
        _rule(r, f"spec.{direction}[{i}]", f"{KIND}/{name}#{direction}[{i}]", direction, evidence)
        for i, r in enumerate(items)
    )


def _rule(
    obj: Any, where: str, rule_id: str, direction: str, evidence: Mapping[str, tuple[str, ...]]
) -> CNPRule:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{where}: a rule must be an object")
    key = "from" if direction == "ingress" else "to"
    unknown = set(obj) - {"name", "action", key, "protocols"}
    if unknown:
        raise ValueError(f"{where}: unknown field {sorted(unknown)[0]!r}")
    action = obj.get("action")
    if action not in ACTIONS:
        raise ValueError(f"{where}.action: must be Accept, Deny or Pass, got {action!r}")
    peers = obj.get(key)
    if not isinstance(peers, list) or not peers:
        raise ValueError(f"{where}.{key}: must contain at least one peer")
    parsed = tuple(
        _peer(p, f"{where}.{key}[{i}]", direction, action, evidence) for i, p in enumerate(peers)
    )
    protocols = obj.get("protocols")
    ports = None if protocols is None else tuple(_protocol(p, where) for p in protocols)
    if ports and any(p.name for p in ports) and any(p.kind not in _POD_PEERS for p in parsed):
        # The CRD's own validation: "networks/nodes/domainNames peer cannot be set
        # with namedPorts since there are no namedPorts for networks/nodes/domainNames".
        raise ValueError(f"{where}: destinationNamedPort needs pods or namespaces peers only")
    return CNPRule(rule_id, str(action), parsed, ports)


_POD_PEERS = ("namespaces", "pods")


def _peer(
    obj: Any, where: str, direction: str, action: Any, evidence: Mapping[str, tuple[str, ...]]
) -> CNPPeer:
    allowed = _PEERS[direction] + (_PEERS_EGRESS_EXPERIMENTAL if direction == "egress" else ())
    if not isinstance(obj, Mapping) or len(obj) != 1:
        # An empty peer means a newer CRD with a field we do not know: the API says to
        # "fail closed"; offline we cannot tell which, so the object is refused.
        raise ValueError(f"{where}: exactly one of {', '.join(allowed)} must be set")
    kind, value = next(iter(obj.items()))
    if kind not in allowed:
        why = " (ingress peers are namespaces or pods only)" if direction == "ingress" else ""
        raise ValueError(f"{where}: unsupported peer {kind!r}{why}")
    if kind == "namespaces":
        return CNPPeer(kind, namespaces=parse_label_selector(value, f"{where}.namespaces"))
    if kind == "pods":
        ns, pods = _namespaced_pod(value, f"{where}.pods")
        return CNPPeer(kind, namespaces=ns, pods=pods)
    if kind == "nodes":
        return CNPPeer(kind, nodes=parse_label_selector(value, f"{where}.nodes"))
    if kind == "networks":
        return CNPPeer(kind, networks=tuple(parse_cidr(str(c)) for c in value))
    return _domains(value, where, action, evidence)


def _domains(
    value: Any, where: str, action: Any, evidence: Mapping[str, tuple[str, ...]]
) -> CNPPeer:
    # "DomainNames is only supported for Accept rules."
    if action != "Accept":
        raise ValueError(f"{where}: domainNames is only supported for Accept rules")
    if not evidence:
        raise ValueError(
            f"{where}: domainNames cannot be judged offline without DNS evidence "
            f"(the {FQDN_EVIDENCE} annotation)"
        )
    return CNPPeer("domainNames", names=tuple(str(n).lower().rstrip(".") for n in value))


def _evidence(obj: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    text = ((obj.get("metadata") or {}).get("annotations") or {}).get(FQDN_EVIDENCE)
    loaded = json.loads(text) if text else {}
    return {str(c).split("/", 1)[0]: tuple(n) for c, n in loaded.items()}


def _protocol(obj: Any, where: str) -> CNPPort:
    # "Exactly one field must be set."
    if not isinstance(obj, Mapping) or len(obj) != 1:
        raise ValueError(f"{where}.protocols: each entry sets exactly one of tcp, udp, sctp")
    kind, value = next(iter(obj.items()))
    if kind == "destinationNamedPort":
        return CNPPort(None, name=str(value))
    if kind not in ("tcp", "udp", "sctp"):
        raise ValueError(f"{where}.protocols: unknown protocol {kind!r}")
    port = (value or {}).get("destinationPort")
    if not isinstance(port, Mapping) or len(port) != 1:
        raise ValueError(f"{where}.protocols.{kind}: destinationPort sets number or range")
    if "number" in port:
        return CNPPort(kind.upper(), int(port["number"]))
    rng = port.get("range") or {}
    start, end = int(rng.get("start", 0)), int(rng.get("end", 0))
    if not 1 <= start < end <= 65535:
        # "Start port must be less than End port"
        raise ValueError(f"{where}.protocols.{kind}: range needs 1 <= start < end <= 65535")
    return CNPPort(kind.upper(), start, end)


def domain_matches(pattern: str, name: str) -> bool:
    """``DomainName`` matching: "'*' ... matches one or more entire labels", only as a prefix.

    >>> domain_matches("*.kubernetes.io", "latest.blog.kubernetes.io")
    True
    >>> domain_matches("*.kubernetes.io", "kubernetes.io")
    False
    >>> domain_matches("kubernetes.io", "www.kubernetes.io")
    False
    """
    name = name.lower().rstrip(".")
    if pattern.startswith("*."):
        return name.endswith(pattern[1:]) and len(name) > len(pattern) - 1
    return name == pattern


def load_cluster_policy(obj: Mapping[str, Any], path: str, doc: int | None = None) -> ClusterPolicy:
    """:func:`parse_cluster_policy` with a refusal as a PolicyError naming the field.

    Raises
    ------
    PolicyError
        A field the API server rejects or the evaluator cannot judge exactly.
    """
    where = path if doc is None else f"{path}#{doc}"
    try:
        return parse_cluster_policy(obj, where)
    except ValueError as exc:
        field_, _, reason = str(exc).partition(": ")
        raise PolicyError(path, field_, reason or str(exc), doc=doc) from exc
