"""Groups and their edges -> NetworkPolicy objects.

Ports are merged per peer, then peers with the same ports share one rule.
Workload peers of one namespace with the same ports share one selector when an
exact one exists. Peers in another namespace pair a ``namespaceSelector`` on
``kubernetes.io/metadata.name`` with a ``podSelector`` in the same peer (AND);
the namespace selector alone is used only when every workload of that
namespace is a peer. External, node and apiserver addresses become ipBlocks.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from recommender.inventory.workloads import Workload, WorkloadIndex, declared_port_names
from recommender.labels import NAMESPACE_NAME_LABEL
from recommender.model import IPBlock, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.recommend.cidr import CidrBlock, group_cidrs, host_cidr
from recommender.recommend.selectors import cover_selectors

#: Consecutive ports (same protocol) that ``--port-ranges`` writes as one ``endPort`` range.
PORT_RANGE_MIN_RUN = 3
#: Default of ``--public-ingress-min-sources``: a group reached from at least this many
#: distinct external addresses is a public endpoint (clients are not an allow-list).
PUBLIC_INGRESS_MIN_SOURCES = 16
MANAGED_BY = (("app.kubernetes.io/managed-by", "netpol-recommender"),)
ANNOTATION_PREFIX = "netpol-recommender.io/"
#: Annotations under this prefix are evidence; rollout-stability comparisons ignore them.
EVIDENCE_PREFIX = "evidence.netpol-recommender.io/"

PortSpec = tuple[str, int]  # (protocol, number)
PeerPorts = Mapping[str, set[PortSpec]]  # peer key -> ports


@dataclass(frozen=True)
class SynthesisOptions:
    named_ports: bool = False
    port_ranges: bool = False
    allow_host: bool = False
    cidr_budget: int = 0
    public_ingress_min_sources: int = PUBLIC_INGRESS_MIN_SOURCES


@dataclass(frozen=True)
class DnsTarget:
    """Where cluster DNS lives, as the inventory shows it."""

    namespace: str
    selector: LabelSelector
    ports: tuple[PortSpec, ...]
    workloads: tuple[str, ...] = ()
    source: str = "inventory"
    addresses: tuple[str, ...] = ()  # NodeLocal DNSCache listen addresses (ipBlock, port 53)


@dataclass
class RuleNotes:
    """What a reviewer should know about the rules of one policy."""

    cidr_blocks: list[tuple[str, CidrBlock]] = field(default_factory=list)
    namespace_wide: list[str] = field(default_factory=list)
    fqdns: dict[str, list[str]] = field(default_factory=dict)
    split_peers: list[str] = field(default_factory=list)
    public: list[str] = field(default_factory=list)


def default_deny(namespace: str) -> NetworkPolicy:
    """Deny all ingress and egress for every pod of ``namespace``."""
    return NetworkPolicy(
        namespace, "default-deny", LabelSelector(), ("Ingress", "Egress"), labels=MANAGED_BY
    )


def allow_dns(
    namespace: str, dns: DnsTarget, annotations: Sequence[tuple[str, str]] = ()
) -> NetworkPolicy:
    """Egress from every pod of ``namespace`` to the DNS pods on their DNS ports."""
    peer = Peer(
        pod_selector=dns.selector,
        namespace_selector=LabelSelector(match_labels=((NAMESPACE_NAME_LABEL, dns.namespace),)),
    )
    ports = tuple(PolicyPort(proto, port) for proto, port in sorted(dns.ports))
    rules = [Rule(peers=(peer,), ports=ports)]
    if dns.addresses:  # NodeLocal DNSCache listens on 53 whatever the DNS pods' port is
        blocks = tuple(Peer(ip_block=IPBlock(host_cidr(a))) for a in dns.addresses)
        rules.append(Rule(peers=blocks, ports=(PolicyPort("TCP", 53), PolicyPort("UDP", 53))))
    return NetworkPolicy(
        namespace,
        "allow-dns",
        LabelSelector(),
        ("Egress",),
        egress=tuple(rules),
        labels=MANAGED_BY,
        annotations=tuple(sorted(annotations)),
    )


def compact_ports(specs: Iterable[tuple[str, int | str]], ranges: bool) -> tuple[PolicyPort, ...]:
    """Sorted PolicyPorts; with ``ranges`` runs of PORT_RANGE_MIN_RUN+ numbers use endPort.

    >>> [(p.port, p.end_port) for p in compact_ports([("TCP", 8), ("TCP", 9), ("TCP", 10)], True)]
    [(8, 10)]
    >>> [p.port for p in compact_ports([("UDP", 53), ("TCP", "http")], False)]
    ['http', 53]
    """
    by_proto: dict[str, list[int]] = defaultdict(list)
    out: list[PolicyPort] = []
    for proto, port in sorted(set(specs), key=lambda s: (s[0], isinstance(s[1], int), s[1])):
        if isinstance(port, str) or not ranges:
            out.append(PolicyPort(proto, port))
        else:
            by_proto[proto].append(port)
    for proto, numbers in sorted(by_proto.items()):
        out.extend(_ranges(proto, sorted(numbers)))
    return tuple(sorted(out, key=_port_key))


def _ranges(proto: str, numbers: list[int]) -> list[PolicyPort]:
    out, start = [], 0
    for i in range(1, len(numbers) + 1):
        if i == len(numbers) or numbers[i] != numbers[i - 1] + 1:
            run = numbers[start:i]
            if len(run) >= PORT_RANGE_MIN_RUN:
                out.append(PolicyPort(proto, run[0], run[-1]))
            else:
                out.extend(PolicyPort(proto, n) for n in run)
            start = i
    return out


def _port_key(p: PolicyPort) -> tuple[str, int, str, int]:
    if isinstance(p.port, str):
        return (p.protocol, 0, p.port, 0)
    return (p.protocol, 1, "", p.port or 0)


class RuleBuilder:
    """Builds the ingress or egress rules of one group's policy."""

    def __init__(
        self,
        index: WorkloadIndex,
        opts: SynthesisOptions,
        namespace: str,
        members: Sequence[Workload],
        fqdns: Mapping[str, Sequence[str]],
    ) -> None:
        self.index, self.opts, self.namespace = index, opts, namespace
        self.members, self.fqdns = list(members), fqdns
        self.notes = RuleNotes()

    def rules(self, direction: str, peers: PeerPorts) -> tuple[Rule, ...]:
        """Rules for one direction: peers with equal port sets share a rule."""
        by_ports: dict[tuple[PolicyPort, ...], list[Peer]] = defaultdict(list)
        for peer, ports in self._workload_peers(direction, peers):
            by_ports[ports].append(peer)
        for peer, ports in self._address_peers(direction, peers):
            by_ports[ports].append(peer)
        rules = [
            Rule(peers=tuple(sorted(set(ps), key=_peer_key)), ports=ports)
            for ports, ps in by_ports.items()
        ]
        return tuple(sorted(rules, key=lambda r: (repr(r.ports), repr(r.peers))))

    # -- workload peers --------------------------------------------------

    def _port_specs(
        self, direction: str, peer: Workload, ports: set[PortSpec]
    ) -> frozenset[tuple[str, int | str]]:
        dst = self.members if direction == "ingress" else [peer]
        out: set[tuple[str, int | str]] = set()
        for proto, port in ports:
            name = self._common_name(dst, port, proto) if self.opts.named_ports else None
            out.add((proto, name or port))
        return frozenset(out)

    @staticmethod
    def _common_name(dst: Sequence[Workload], port: int, proto: str) -> str | None:
        names = {declared_port_names(w, port, proto) for w in dst}
        return names.pop() if len(names) == 1 else None

    def _workload_peers(
        self, direction: str, peers: PeerPorts
    ) -> list[tuple[Peer, tuple[PolicyPort, ...]]]:
        sets: dict[tuple[str, frozenset[tuple[str, int | str]]], list[Workload]] = defaultdict(list)
        for key, ports in sorted(peers.items()):
            wl = self.index.workloads.get(key)
            if wl is not None:
                sets[(wl.namespace, self._port_specs(direction, wl, ports))].append(wl)
        out: list[tuple[Peer, tuple[PolicyPort, ...]]] = []
        for (ns, specs), wls in sorted(
            sets.items(), key=lambda kv: (kv[0][0], sorted(map(repr, kv[0][1])))
        ):
            policy_ports = compact_ports(specs, self.opts.port_ranges)
            out.extend((peer, policy_ports) for peer in self._selector_peers(ns, wls))
        return out

    def _selector_peers(self, ns: str, wls: list[Workload]) -> list[Peer]:
        universe = self.index.in_namespace(ns)
        if len(wls) == len(universe) and len(wls) > 1:
            self.notes.namespace_wide.append(ns)
            return [self._peer(ns, LabelSelector())]
        cover = cover_selectors([w.label_map for w in wls], [u.label_map for u in universe])
        if len(cover) > 1:
            self.notes.split_peers.append(f"{ns}: {', '.join(w.name for w in wls)}")
        covered = {i for _, ix in cover for i in ix}
        if len(covered) < len(wls) and len(wls) == len(universe):
            return [self._peer(ns, LabelSelector())]  # a lone unlabelled workload
        return [self._peer(ns, selector) for selector, _ in cover]

    def _peer(self, ns: str, selector: LabelSelector) -> Peer:
        if ns == self.namespace:
            # A peer with only podSelector selects pods in the policy's own namespace.
            return Peer(pod_selector=selector)
        ns_sel = LabelSelector(match_labels=((NAMESPACE_NAME_LABEL, ns),))
        if selector.is_empty:
            return Peer(namespace_selector=ns_sel)
        return Peer(pod_selector=selector, namespace_selector=ns_sel)

    # -- address peers ---------------------------------------------------

    def _address_peers(
        self, direction: str, peers: PeerPorts
    ) -> list[tuple[Peer, tuple[PolicyPort, ...]]]:
        world: dict[str, set[PortSpec]] = {}
        exact: dict[str, set[PortSpec]] = defaultdict(set)
        for key, ports in sorted(peers.items()):
            role, _, ip = key.partition(":")
            if role == "world":
                world[ip] = set(ports)
            elif role == "apiserver" or (role == "host" and direction == "egress"):
                exact[host_cidr(ip)] |= ports
            elif role == "host":  # from another node; every node's address with --allow-host
                for node_ip in {ip, *(self.index.node_ips if self.opts.allow_host else ())}:
                    exact[host_cidr(node_ip)] |= ports
        out = [
            (Peer(ip_block=IPBlock(cidr)), compact_ports(ports, self.opts.port_ranges))
            for cidr, ports in sorted(exact.items())
        ]
        return out + self._world_peers(direction, world)

    def _world_peers(
        self, direction: str, world: Mapping[str, set[PortSpec]]
    ) -> list[tuple[Peer, tuple[PolicyPort, ...]]]:
        least = self.opts.public_ingress_min_sources
        if direction == "ingress" and least and len(world) >= least:
            return self._public_peers(world)
        out = []
        forbidden = self.index.cluster_ips() if self.opts.cidr_budget else ()
        for block in group_cidrs(sorted(world), self.opts.cidr_budget, forbidden):
            ports: set[PortSpec] = set().union(*(world[m] for m in block.members))
            self.notes.cidr_blocks.append((direction, block))
            names = sorted({n for m in block.members for n in self.fqdns.get(m, ())})
            if names:
                self.notes.fqdns[block.cidr] = names
            out.append(
                (Peer(ip_block=IPBlock(block.cidr)), compact_ports(ports, self.opts.port_ranges))
            )
        return out

    def _public_peers(
        self, world: Mapping[str, set[PortSpec]]
    ) -> list[tuple[Peer, tuple[PolicyPort, ...]]]:
        """Any internet address, minus the cluster's pod networks (an ipBlock matches pods too)."""
        ports: set[PortSpec] = set().union(*world.values())
        families = {ipaddress.ip_address(ip).version for ip in world}
        out = []
        for version, cidr in ((4, "0.0.0.0/0"), (6, "::/0")):
            if version not in families:
                continue
            pod_nets: list[Any] = [n for n in self.index.pod_networks() if n.version == version]
            except_ = tuple(str(n) for n in ipaddress.collapse_addresses(pod_nets))
            self.notes.public.append(f"{cidr} ({len(world)} external sources seen)")
            out.append(
                (Peer(ip_block=IPBlock(cidr, except_)), compact_ports(ports, self.opts.port_ranges))
            )
        return out


def _peer_key(p: Peer) -> tuple[int, str]:
    return (1 if p.ip_block is not None else 0, repr(p))


def group_policy(
    namespace: str,
    name: str,
    selector: LabelSelector,
    rules: Mapping[str, tuple[Rule, ...]],
    annotations: Sequence[tuple[str, str]],
) -> NetworkPolicy | None:
    """The policy of one group, or None when it has no rules at all."""
    types = tuple(t for t, d in (("Ingress", "ingress"), ("Egress", "egress")) if rules.get(d))
    if not types:
        return None
    return NetworkPolicy(
        namespace,
        name,
        selector,
        types,
        ingress=rules.get("ingress") or None if "Ingress" in types else None,
        egress=rules.get("egress") or None if "Egress" in types else None,
        labels=MANAGED_BY,
        annotations=tuple(sorted(annotations)),
    )


def fqdn_annotation(fqdns: Mapping[str, Sequence[str]]) -> tuple[str, str] | None:
    """JSON map of ipBlock CIDR -> the names seen for it, or None.

    The names are evidence: which names a window resolved depends on the DNS
    traffic captured in it, so the key lives under :data:`EVIDENCE_PREFIX`.
    """
    if not fqdns:
        return None
    text = orjson.dumps({k: sorted(v) for k, v in fqdns.items()}, option=orjson.OPT_SORT_KEYS)
    return (f"{EVIDENCE_PREFIX}fqdns", text.decode())


def without_evidence(policy: NetworkPolicy) -> NetworkPolicy:
    """The policy minus evidence annotations: what must not change across a rollout."""
    kept = tuple((k, v) for k, v in policy.annotations if not k.startswith(EVIDENCE_PREFIX))
    return NetworkPolicy(
        policy.namespace,
        policy.name,
        policy.pod_selector,
        policy.policy_types,
        policy.ingress,
        policy.egress,
        policy.labels,
        kept,
        policy.source,
    )
