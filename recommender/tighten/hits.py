"""Hit counts per policy, rule, peer and port over the evidence window.

A rule is *hit* by an observation when it is one of the rules that allowed a
side of it (``Decision.egress_rules`` / ``ingress_rules``) and the observation
counts as use:

* the current set allows it (any of its cases), so pruning the rule could
  deny traffic the app really makes; or
* it is a widening candidate (it flowed, the current set denies it, see
  :mod:`recommender.tighten.widen`): the side that already allows it must keep
  allowing it, or accepting the widening of the other side would not help.

Observations denied for other reasons (policy drops, scans) and ``unknown``
ones do not keep a rule alive. Within a hit rule, the peers and port entries
that matched are recorded too, with what matched them: the addresses, the pod
identities, the port numbers. That is the raw material for narrowing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from recommender.labels import encode_labels, stable_labels
from recommender.semantics import Endpoint, PolicySet
from recommender.semantics.rules import CompiledRule
from recommender.tighten.evidence import Judged, Observed

#: A pod identity as tighten narrows to it: (namespace, canonical stable labels JSON).
PodIdentity = tuple[str, str]


@dataclass
class PeerHits:
    """What one peer of a rule matched."""

    connections: int = 0
    observations: int = 0
    addresses: set[str] = field(default_factory=set)  # world, host and apiserver addresses
    world_addresses: set[str] = field(default_factory=set)
    pods: set[PodIdentity] = field(default_factory=set)


@dataclass
class PortHits:
    """What one port entry of a rule matched: (port, protocol) pairs."""

    connections: int = 0
    observations: int = 0
    ports: set[tuple[int | None, str]] = field(default_factory=set)


@dataclass
class RuleHits:
    """Use of one rule (``ns/name#ingress[0]``)."""

    rule_id: str
    connections: int = 0
    observations: int = 0
    first_seen: str | None = None
    last_seen: str | None = None
    peers: dict[int, PeerHits] = field(default_factory=dict)
    ports: dict[int, PortHits] = field(default_factory=dict)
    # (port, protocol) of every use, for rules without port entries.
    all_ports: set[tuple[int | None, str]] = field(default_factory=set)

    def seen(self, first: str | None, last: str | None) -> None:
        """Widen the first/last seen times."""
        if first and (self.first_seen is None or first < self.first_seen):
            self.first_seen = first
        if last and (self.last_seen is None or last > self.last_seen):
            self.last_seen = last


@dataclass
class HitTable:
    """Hits of every rule, and per policy."""

    rules: dict[str, RuleHits] = field(default_factory=dict)
    policies: dict[str, int] = field(default_factory=dict)  # policy key -> connections

    def rule(self, rule_id: str) -> RuleHits | None:
        """Hits of one rule, None when unused."""
        return self.rules.get(rule_id)


def rule_index(policies: PolicySet) -> dict[str, CompiledRule]:
    """Every compiled rule by id."""
    out: dict[str, CompiledRule] = {}
    for cp in policies.policies:
        for rules in (cp.ingress, cp.egress):
            out.update((r.rule_id, r) for r in rules or ())
    return out


def count_hits(judged: Sequence[Judged], policies: PolicySet, uses: Iterable[int]) -> HitTable:
    """Hits of the rules of ``policies`` by the observations whose index is in ``uses``."""
    rules = rule_index(policies)
    table = HitTable()
    wanted = set(uses)
    for j in judged:
        if j.observed.index in wanted:
            _count_one(j, rules, table)
    return table


def _count_one(j: Judged, rules: dict[str, CompiledRule], table: HitTable) -> None:
    o = j.observed
    hit_rules: dict[str, RuleHits] = {}
    peers_seen: set[tuple[str, int]] = set()
    ports_seen: set[tuple[str, int]] = set()
    for (src, dst), d in zip(o.cases, j.decisions, strict=True):
        for side, ids in (("egress", d.egress_rules), ("ingress", d.ingress_rules)):
            peer = dst if side == "egress" else src
            for rid in ids:
                rule = rules.get(rid)
                if rule is None:
                    continue  # a rule of another kind enforced beside (tightened elsewhere)
                rh = hit_rules.get(rid) or table.rules.setdefault(rid, RuleHits(rid))
                hit_rules[rid] = rh
                rh.all_ports.add((o.port, o.protocol))
                for k in rule.matching_peers(peer):
                    _peer_hit(rh.peers.setdefault(k, PeerHits()), peer, o, (rid, k) in peers_seen)
                    peers_seen.add((rid, k))
                for k in rule.matching_ports(o.port, o.protocol, dst):
                    ph = rh.ports.setdefault(k, PortHits())
                    ph.ports.add((o.port, o.protocol))
                    if (rid, k) not in ports_seen:
                        ph.connections += o.connections
                        ph.observations += 1
                        ports_seen.add((rid, k))
    for rh in hit_rules.values():
        rh.connections += o.connections
        rh.observations += 1
        rh.seen(o.first_seen, o.last_seen)
    for policy in sorted({rid.split("#", 1)[0] for rid in hit_rules}):
        table.policies[policy] = table.policies.get(policy, 0) + o.connections


def _peer_hit(ph: PeerHits, peer: Endpoint, o: Observed, counted: bool) -> None:
    if not counted:
        ph.connections += o.connections
        ph.observations += 1
    if peer.kind == "pod" and peer.namespace:
        ph.pods.add((peer.namespace, encode_labels(stable_labels(peer.label_map))))
    elif peer.ip:
        ph.addresses.add(peer.ip)
        if peer.kind == "world":
            ph.world_addresses.add(peer.ip)
