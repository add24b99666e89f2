"""Compiled NetworkPolicy rules: peer and port matching, exactly as networking.k8s.io/v1.

Each function quotes the API reference where the branch is subtle.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from recommender.labels import matches_selector
from recommender.model import LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.semantics.endpoints import Endpoint
from recommender.semantics.validate import parse_cidr

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class CompiledPeer:
    """A peer ready for matching. ``own_namespace`` is the policy's namespace."""

    own_namespace: str
    pod_selector: LabelSelector | None
    namespace_selector: LabelSelector | None
    network: Network | None
    excepts: tuple[Network, ...]

    def matches(self, ep: Endpoint) -> bool:
        """True when the peer admits ``ep``."""
        if self.network is not None:
            return _in_block(ep, self.network, self.excepts)
        # Selector peers select pods only: "podSelector ... selects particular Pods";
        # an external address or a node is never a pod, so it never matches.
        if ep.kind != "pod":
            return False
        if self.namespace_selector is None:
            if self.pod_selector is None:
                return False  # "must specify a peer": the API server rejects this
            # podSelector alone: "selects particular Pods in the same namespace as
            # the NetworkPolicy".
            if ep.namespace != self.own_namespace:
                return False
        elif not matches_selector(self.namespace_selector, ep.namespace_label_map):
            return False
        # namespaceSelector alone: "selects all Pods" in the matching namespaces; with
        # both set, "selects particular Pods within particular namespaces" (AND).
        return self.pod_selector is None or matches_selector(self.pod_selector, ep.label_map)


def _in_block(ep: Endpoint, network: Network, excepts: tuple[Network, ...]) -> bool:
    """ipBlock matches any endpoint by address, pod IPs included.

    The reference calls ipBlock meant for cluster-external IPs, but the upstream
    conformance suite (test/e2e/network/netpol) allows and denies pods by their pod
    IP with ipBlock/except, so conformant CNIs match pod IPs too.
    """
    addr = ep.address
    if addr is None or addr.version != network.version or addr not in network:
        return False
    return not any(addr in ex for ex in excepts)


@dataclass(frozen=True)
class CompiledPort:
    """A port entry: protocol, then a number range or a name."""

    protocol: str
    first: int | None  # None with name None: every port of the protocol
    last: int | None
    name: str | None

    def matches(self, port: int | None, protocol: str, dst: Endpoint) -> bool:
        """True when (port, protocol) towards ``dst`` is admitted."""
        if protocol != self.protocol:
            return False
        if self.name is not None:
            return _named_port_matches(self.name, self.protocol, port, dst)
        if self.first is None:
            # "If this field is not provided, this matches all port names and numbers."
            return True
        if port is None:
            return False
        # "endPort ... indicates that the range of ports from port to endPort if set,
        # inclusive, should be allowed".
        return self.first <= port <= (self.last if self.last is not None else self.first)


def _named_port_matches(name: str, protocol: str, port: int | None, dst: Endpoint) -> bool:
    """A named port resolves on the destination pod's container ports, name AND protocol.

    This holds for ingress (the selected pod is the destination) and egress (the peer
    pod is the destination) alike; a non-pod destination has no named ports.
    """
    if dst.kind != "pod" or port is None:
        return False
    return any(
        cp.name == name and cp.protocol.upper() == protocol and cp.port == port for cp in dst.ports
    )


@dataclass(frozen=True)
class CompiledRule:
    """One ingress or egress rule: ``peers``/``ports`` None means "all"."""

    rule_id: str
    peers: tuple[CompiledPeer, ...] | None
    ports: tuple[CompiledPort, ...] | None

    def matches_peer(self, ep: Endpoint) -> bool:
        """ "If this field is empty or missing, this rule matches all sources/destinations"."""
        return self.peers is None or any(p.matches(ep) for p in self.peers)

    def matches_port(self, port: int | None, protocol: str, dst: Endpoint) -> bool:
        """ "If this field is empty or missing, this rule matches all ports"."""
        return self.ports is None or any(p.matches(port, protocol, dst) for p in self.ports)

    def matching_peers(self, ep: Endpoint) -> tuple[int, ...]:
        """Indexes of the peers that admit ``ep``; () when the rule has no peer list.

        For reports that count hits per peer (``netpol tighten``); the verdict
        itself only needs :meth:`matches_peer`.
        """
        return tuple(i for i, p in enumerate(self.peers or ()) if p.matches(ep))

    def matching_ports(self, port: int | None, protocol: str, dst: Endpoint) -> tuple[int, ...]:
        """Indexes of the port entries that admit (port, protocol) towards ``dst``."""
        return tuple(i for i, p in enumerate(self.ports or ()) if p.matches(port, protocol, dst))


def compile_rules(policy: NetworkPolicy, direction: str) -> tuple[CompiledRule, ...]:
    """Compiled rules of one direction (``ingress``/``egress``); None and () both give ()."""
    rules = policy.ingress if direction == "ingress" else policy.egress
    return tuple(
        _compile_rule(rule, f"{policy.key}#{direction}[{i}]", policy.namespace)
        for i, rule in enumerate(rules or ())
    )


def _compile_rule(rule: Rule, rule_id: str, namespace: str) -> CompiledRule:
    # Absent, null and empty from/to/ports all mean "everything" (external IPs included).
    peers = tuple(_compile_peer(p, namespace) for p in rule.peers) if rule.peers else None
    ports = tuple(_compile_port(p) for p in rule.ports) if rule.ports else None
    return CompiledRule(rule_id, peers, ports)


def _compile_peer(peer: Peer, namespace: str) -> CompiledPeer:
    network: Network | None = None
    excepts: tuple[Network, ...] = ()
    if peer.ip_block is not None:
        # CIDRs with host bits set are valid; the API server parses them "sloppily"
        # and the CNI uses the masked network.
        network = parse_cidr(peer.ip_block.cidr)
        excepts = tuple(parse_cidr(e) for e in peer.ip_block.except_)
    return CompiledPeer(namespace, peer.pod_selector, peer.namespace_selector, network, excepts)


def _compile_port(port: PolicyPort) -> CompiledPort:
    protocol = (port.protocol or "TCP").upper()
    if isinstance(port.port, str):
        return CompiledPort(protocol, None, None, port.port)
    return CompiledPort(protocol, port.port, port.end_port, None)
