"""Rewrite a policy set into a tighter one from hit counts: prune and narrow, never widen.

Every rewrite admits a subset of what the rule admitted before, so no flow the
current set denies can become allowed:

* pruning drops a rule, a peer or a port entry with no hit in the window. A
  peer list or port list is never emptied: an empty ``from``/``to``/``ports``
  means "everything" ("If this field is empty or missing, this rule matches
  all sources"), so a used rule always keeps the peers and ports that matched.
* narrowing replaces a namespace-wide selector peer by the same
  namespaceSelector AND a podSelector selecting exactly the workloads that
  talked; a broad ipBlock by blocks inside it (its excepts carried over) that
  hold the addresses seen; a port range, a protocol-only entry or a rule
  without ports by the port numbers seen.

Isolation is never touched: policyTypes stay as written, and a policy whose
every rule went unused keeps an empty rule list. Removing the policy (or the
direction from policyTypes) would make its pods non-isolated, and "By
default, a pod is non-isolated ...; all ... connections are allowed": that
would OPEN traffic, the opposite of tightening.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from recommender.diff.universe import protocol_order
from recommender.labels import decode_labels
from recommender.model import (
    IPBlock,
    LabelSelector,
    NetworkPolicy,
    Peer,
    PolicyPort,
    Rule,
)
from recommender.recommend.cidr import group_cidrs
from recommender.recommend.selectors import cover_selectors
from recommender.semantics.validate import parse_cidr
from recommender.tighten.context import NAME_LABEL, InventoryContext
from recommender.tighten.hits import HitTable, PeerHits, RuleHits
from recommender.tighten.text import Change, Note, peer_text, peers_text, port_text, ports_text
from recommender.vocabulary import PROTOCOLS

T = TypeVar("T", Peer, PolicyPort)

#: Ports that make a rule a DNS allowance (numbers, or the usual port names).
DNS_PORTS: frozenset[int | str] = frozenset({53, "dns", "dns-tcp"})


@dataclass(frozen=True)
class ProposeOptions:
    """How far tighten may go.

    ``cidr_budget``: addresses a narrowed ipBlock peer may admit beyond those
    seen. ``prune_dns``: treat DNS allowances like any other rule (by default
    they are kept, and reported when unused). ``public_ingress_min_sources``:
    an ingress ipBlock hit by this many distinct external addresses is a public
    endpoint and is not narrowed (0 = always narrow).
    """

    cidr_budget: int = 0
    prune_dns: bool = False
    public_ingress_min_sources: int = 16


@dataclass
class Proposal:
    """The rewritten policies plus what changed and what was deliberately kept."""

    policies: list[NetworkPolicy]
    changes: list[Change] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    #: Unused rules kept because their absence proves nothing yet: rule id -> why.
    holds: dict[str, str] = field(default_factory=dict)


def is_dns_rule(rule: Rule) -> bool:
    """True when every port entry of the rule is DNS (53, ``dns``, ``dns-tcp``).

    >>> is_dns_rule(Rule(ports=(PolicyPort("UDP", 53), PolicyPort("TCP", 53))))
    True
    >>> is_dns_rule(Rule(ports=None))
    False
    """
    return bool(rule.ports) and all(
        p.port in DNS_PORTS and p.end_port in (None, p.port) for p in rule.ports or ()
    )


def propose(
    policies: Sequence[NetworkPolicy],
    hits: HitTable,
    ctx: InventoryContext,
    options: ProposeOptions,
    holds: Mapping[str, str] | None = None,
) -> Proposal:
    """Tightened copies of ``policies`` (same order, same names, same isolation).

    ``holds``: unused rules to keep, with the reason (:mod:`recommender.tighten.holds`).
    """
    out = Proposal([], holds=dict(holds or {}))
    for policy in policies:
        out.policies.append(_policy(policy, hits, ctx, options, out))
    return out


def _policy(
    policy: NetworkPolicy,
    hits: HitTable,
    ctx: InventoryContext,
    options: ProposeOptions,
    out: Proposal,
) -> NetworkPolicy:
    fields: dict[str, tuple[Rule, ...] | None] = {}
    for direction in ("ingress", "egress"):
        rules = policy.ingress if direction == "ingress" else policy.egress
        if direction.capitalize() not in policy.policy_types or not rules:
            continue  # inert (type not listed) or already deny-all: nothing to tighten
        kept = []
        for i, rule in enumerate(rules):
            rid = f"{policy.key}#{direction}[{i}]"
            new = _rule(rid, policy, direction, rule, hits.rule(rid), ctx, options, out)
            if new is not None:
                kept.append(new)
        if not kept:
            out.notes.append(
                Note(
                    "keeps-isolation",
                    policy.key,
                    None,
                    (
                        f"no {direction} rule was used in the window: the rules are removed, "
                        f"policyTypes keeps {direction.capitalize()} "
                        "so the selected pods stay isolated "
                        "(dropping the policy would open their traffic)"
                    ),
                )
            )
        fields[direction] = tuple(kept)
    ingress = fields.get("ingress", policy.ingress)
    egress = fields.get("egress", policy.egress)
    return replace(policy, ingress=ingress, egress=egress) if fields else policy


def _rule(
    rid: str,
    policy: NetworkPolicy,
    direction: str,
    rule: Rule,
    rh: RuleHits | None,
    ctx: InventoryContext,
    options: ProposeOptions,
    out: Proposal,
) -> Rule | None:
    if is_dns_rule(rule) and not options.prune_dns:
        if rh is None:
            out.notes.append(
                Note(
                    "unused-dns",
                    policy.key,
                    rid,
                    "DNS allowance unused in the window, kept: "
                    f"{ports_text(rule.ports)} (pass --prune-dns to prune it)",
                )
            )
        return rule
    if rh is None and rid in out.holds:
        out.notes.append(Note("evidence-hold", policy.key, rid, f"kept: {out.holds[rid]}"))
        return rule
    if rh is None:
        out.changes.append(
            Change(
                "prune-rule",
                policy.key,
                rid,
                _rule_line(rule),
                "(removed)",
                "0 connections in the window",
            )
        )
        return None
    peers = _peers(rid, policy, direction, rule, rh, ctx, options, out)
    ports = _ports(rid, policy.key, rule, rh, out)
    return Rule(peers, ports)


def _rule_line(rule: Rule) -> str:
    return f"{peers_text(rule.peers)} / {ports_text(rule.ports)}"


# ---------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------


def _peers(
    rid: str,
    policy: NetworkPolicy,
    direction: str,
    rule: Rule,
    rh: RuleHits,
    ctx: InventoryContext,
    options: ProposeOptions,
    out: Proposal,
) -> tuple[Peer, ...] | None:
    if not rule.peers:
        out.notes.append(
            Note(
                "all-peers",
                policy.key,
                rid,
                f"rule admits every peer ({rh.connections} connections): narrow it by hand",
            )
        )
        return rule.peers
    new: list[Peer] = []
    for k, peer in enumerate(rule.peers):
        ph = rh.peers.get(k)
        if ph is None:
            out.changes.append(
                Change(
                    "prune-peer",
                    policy.key,
                    rid,
                    peer_text(peer),
                    "(removed)",
                    f"0 connections matched this peer; the rule had {rh.connections}",
                )
            )
            continue
        new.extend(_narrow_peer(rid, policy, direction, peer, ph, ctx, options, out))
    return _dedupe(new, rid, policy.key, out, peer_text)


def _narrow_peer(
    rid: str,
    policy: NetworkPolicy,
    direction: str,
    peer: Peer,
    ph: PeerHits,
    ctx: InventoryContext,
    options: ProposeOptions,
    out: Proposal,
) -> list[Peer]:
    if peer.ip_block is not None:
        narrowed, note = _narrow_block(peer, ph, direction, ctx, options)
    elif peer.pod_selector is None or peer.pod_selector.is_empty:
        narrowed, note = _narrow_selector(peer, ph, policy.namespace, ctx)
    else:
        return [peer]
    if note is not None:
        out.notes.append(Note(note[0], policy.key, rid, f"{peer_text(peer)}: {note[1]}"))
        return [peer]
    if narrowed == [peer]:
        return [peer]
    out.changes.append(
        Change(
            "narrow-ipblock" if peer.ip_block is not None else "narrow-peer",
            policy.key,
            rid,
            peer_text(peer),
            "; ".join(peer_text(p) for p in narrowed),
            _seen_text(ph, ctx),
            ph.connections,
        )
    )
    return narrowed


def _seen_text(ph: PeerHits, ctx: InventoryContext) -> str:
    seen = sorted(ctx.workload(ns, labels) for ns, labels in ph.pods) + sorted(
        ph.addresses, key=_addr_key
    )
    shown = ", ".join(seen[:8]) + (f" and {len(seen) - 8} more" if len(seen) > 8 else "")
    return f"{ph.connections} connections from/to {shown}"


def _addr_key(ip: str) -> tuple[int, int]:
    a = ipaddress.ip_address(ip)
    return a.version, int(a)


def _narrow_selector(
    peer: Peer, ph: PeerHits, own_ns: str, ctx: InventoryContext
) -> tuple[list[Peer], tuple[str, str] | None]:
    """namespaceSelector AND an exact podSelector, per namespace that talked."""
    by_ns: dict[str, list[str]] = {}
    for ns, labels in sorted(ph.pods):
        by_ns.setdefault(ns, []).append(labels)
    out: list[Peer] = []
    if all(set(ctx.label_sets.get(ns, ())) <= set(t) for ns, t in by_ns.items()) and (
        peer.namespace_selector is None
        or set(ctx.namespaces_matching(peer.namespace_selector)) <= set(by_ns)
    ):
        return [peer], None  # every workload the peer selects talks: nothing to narrow
    for ns, targets in sorted(by_ns.items()):
        ns_sel = _namespace_selector(peer.namespace_selector, ns, ctx)
        if set(ctx.label_sets.get(ns, ())) <= set(targets):
            # Every workload of this namespace talks: narrow the namespaces only.
            out.append(Peer(pod_selector=peer.pod_selector, namespace_selector=ns_sel))
            continue
        universe = sorted(set(ctx.label_sets.get(ns, ())) | set(targets))
        wanted = [decode_labels(t) for t in targets]
        cover = cover_selectors(wanted, [decode_labels(u) for u in universe])
        if len({i for _, ix in cover for i in ix}) < len(wanted):
            names = ", ".join(ctx.workload(ns, t) for t in targets)
            return [peer], ("no-exact-selector", f"no exact stable selector for {names}")
        out.extend(Peer(pod_selector=sel, namespace_selector=ns_sel) for sel, _ in cover)
    return out, None


def _namespace_selector(
    original: LabelSelector | None, ns: str, ctx: InventoryContext
) -> LabelSelector | None:
    """The original namespaceSelector, ANDed with the namespace name when it matches several.

    None stays None (a podSelector-only peer means the policy's own namespace).
    Adding a matchLabels pair can only shrink the set of matching namespaces.
    """
    if original is None or ctx.namespaces_matching(original) == [ns]:
        return original
    pairs = dict(original.match_labels or ())
    pairs[NAME_LABEL] = ns
    return replace(original, match_labels=tuple(sorted(pairs.items())))


def _narrow_block(
    peer: Peer, ph: PeerHits, direction: str, ctx: InventoryContext, options: ProposeOptions
) -> tuple[list[Peer], tuple[str, str] | None]:
    """Blocks inside the original holding the addresses seen, within the budget."""
    assert peer.ip_block is not None
    if ph.pods:
        return [peer], ("pod-ipblock", f"matched {len(ph.pods)} pod identities by IP; kept")
    public = options.public_ingress_min_sources
    if direction == "ingress" and public and len(ph.world_addresses) >= public:
        return [peer], (
            "public-ingress",
            f"{len(ph.world_addresses)} distinct external sources: a public endpoint, kept",
        )
    members = sorted(ph.addresses, key=_addr_key)
    forbidden = [f for f in ctx.forbidden if f not in ph.addresses]
    excepts = [(e, parse_cidr(e)) for e in peer.ip_block.except_]
    out = []
    for block in group_cidrs(members, options.cidr_budget, forbidden):
        net = ipaddress.ip_network(block.cidr)
        # An except is either inside the new block or disjoint from it (CIDRs nest), and
        # never covers it (the block holds an address the original admitted).
        inner = tuple(
            text
            for text, ex in excepts
            if ex.version == net.version and ex.subnet_of(net)  # type: ignore[arg-type]
        )
        out.append(Peer(ip_block=IPBlock(block.cidr, inner)))
    if len(out) == 1 and _same_block(out[0].ip_block, peer.ip_block):
        return [peer], None
    return out, None


def _same_block(a: IPBlock | None, b: IPBlock) -> bool:
    if a is None:
        return False
    return (parse_cidr(a.cidr), sorted(map(str, map(parse_cidr, a.except_)))) == (
        parse_cidr(b.cidr),
        sorted(map(str, map(parse_cidr, b.except_))),
    )


# ---------------------------------------------------------------------------
# Ports
# ---------------------------------------------------------------------------


def _ports(
    rid: str, policy: str, rule: Rule, rh: RuleHits, out: Proposal
) -> tuple[PolicyPort, ...] | None:
    if not rule.ports:
        return _narrow_all_ports(rid, policy, rule, rh, out)
    new: list[PolicyPort] = []
    for k, port in enumerate(rule.ports):
        ph = rh.ports.get(k)
        if ph is None:
            out.changes.append(
                Change(
                    "prune-port",
                    policy,
                    rid,
                    port_text(port),
                    "(removed)",
                    f"0 connections on this entry; the rule had {rh.connections}",
                )
            )
            continue
        broad = port.port is None or (isinstance(port.port, int) and port.end_port is not None)
        if not broad:
            new.append(port)
            continue
        seen = _numbered(ph.ports)
        if seen is None:
            out.notes.append(
                Note(
                    "not-narrowed-ports",
                    policy,
                    rid,
                    f"{port_text(port)}: traffic without a port number matched it",
                )
            )
            new.append(port)
            continue
        out.changes.append(
            Change(
                "narrow-ports",
                policy,
                rid,
                port_text(port),
                ", ".join(port_text(p) for p in seen),
                f"{ph.connections} connections on these ports",
                ph.connections,
            )
        )
        new.extend(seen)
    return _dedupe(new, rid, policy, out, port_text)


def _narrow_all_ports(
    rid: str, policy: str, rule: Rule, rh: RuleHits, out: Proposal
) -> tuple[PolicyPort, ...] | None:
    seen = _numbered(rh.all_ports)
    if seen is None:
        out.notes.append(
            Note(
                "not-narrowed-ports",
                policy,
                rid,
                "rule admits every port; traffic without a port number, or "
                "outside TCP/UDP/SCTP, used it",
            )
        )
        return rule.ports
    out.changes.append(
        Change(
            "narrow-ports",
            policy,
            rid,
            "(every port)",
            ", ".join(port_text(p) for p in seen),
            f"{rh.connections} connections on these ports",
            rh.connections,
        )
    )
    return tuple(seen)


def _numbered(ports: set[tuple[int | None, str]]) -> list[PolicyPort] | None:
    """Single-port entries for the (port, protocol) pairs seen; None if one has no number."""
    if any(p is None or proto not in PROTOCOLS for p, proto in ports):
        return None
    pairs = sorted({(proto, p) for p, proto in ports}, key=lambda t: (protocol_order(t[0]), t[1]))
    return [PolicyPort(proto, p) for proto, p in pairs]


def _dedupe(
    items: list[T], rid: str, policy: str, out: Proposal, text: Callable[[T], str]
) -> tuple[T, ...]:
    """Drop repeated entries (equal dataclasses), keeping the first; same meaning."""
    seen: list[T] = []
    for item in items:
        if item in seen:
            out.changes.append(
                Change(
                    "dedupe",
                    policy,
                    rid,
                    text(item),
                    "(removed)",
                    "the same entry appears earlier in the rule",
                )
            )
            continue
        seen.append(item)
    return tuple(seen)
