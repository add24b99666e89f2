"""Readable one-line forms of peers, ports and rules for the tighten report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from recommender.model import LabelSelector, Peer, PolicyPort, Rule
from recommender.recommend.selectors import selector_labels_text


@dataclass(frozen=True)
class Change:
    """One proposed change, with its evidence.

    ``kind`` is one of :data:`CHANGE_KINDS`; ``rule`` the rule id in the
    CURRENT set (``ns/name#egress[1]``) or None for a whole-policy change.
    """

    kind: str
    policy: str
    rule: str | None
    before: str
    after: str
    evidence: str
    connections: int = 0


@dataclass(frozen=True)
class Note:
    """Something reported but deliberately not changed (``kind`` in :data:`NOTE_KINDS`)."""

    kind: str
    policy: str
    rule: str | None
    text: str


CHANGE_KINDS: dict[str, str] = {
    "prune-rule": "rule unused in the window: removed",
    "prune-peer": "peer unused in the window: removed from its rule",
    "prune-port": "port entry unused in the window: removed from its rule",
    "narrow-peer": "namespace-wide peer narrowed to the workloads that talk",
    "narrow-ipblock": "ipBlock narrowed to the addresses observed (within the CIDR budget)",
    "narrow-ports": "port range, protocol-only entry or all-ports rule narrowed to observed ports",
    "dedupe": "duplicate peer or port entry removed (no change in meaning)",
    "widen": "new allowance for a legitimate flow the current set denies",
}

NOTE_KINDS: dict[str, str] = {
    "unused-dns": "DNS allowance unused in the window: kept (pass --prune-dns to prune it)",
    "dns-kept": "DNS allowance: kept as written (pass --prune-dns to tighten it)",
    "keeps-isolation": "every rule of a direction is unused: the rules go, isolation stays",
    "pod-ipblock": "ipBlock matched pod IPs: not narrowed (pod IPs change; use a selector)",
    "public-ingress": "ipBlock admits many external sources: a public endpoint, not narrowed",
    "no-exact-selector": "no exact stable selector for the talking workloads: not narrowed",
    "all-peers": "rule admits every peer: narrow it by hand",
    "not-narrowed-ports": "ports seen without a number or outside TCP/UDP/SCTP: not narrowed",
    "widen-proposed": "widening proposed, not applied (pass --accept-widening)",
    "evidence-hold": "unused in the window, but its absence is shorter than its period or "
    "inside a lost-event gap: kept (docs/evidence.md)",
    "widen-impossible": "widening needed but no exact selector exists: widen by hand",
    "fqdn-no-dns-evidence": "toFQDNs rule unused, but no DNS answer of the window names it: "
    "its absence proves nothing, kept",
    "not-tightened": "an object of a kind tighten does not change: written through unchanged",
}


def selector_text(selector: LabelSelector | None) -> str:
    """``app=web``; ``(all)`` for an empty selector."""
    if selector is None:
        return "-"
    return selector_labels_text(selector) if not selector.is_empty else "(all)"


def peer_text(peer: Peer) -> str:
    """``ipBlock 0.0.0.0/0 except 10.0.0.0/8``, ``ns(team=a) pods(app=web)``, ``pods(app=web)``."""
    if peer.ip_block is not None:
        block = peer.ip_block
        excepts = f" except {','.join(block.except_)}" if block.except_ else ""
        return f"ipBlock {block.cidr}{excepts}"
    parts = []
    if peer.namespace_selector is not None:
        parts.append(f"ns({selector_text(peer.namespace_selector)})")
    if peer.pod_selector is not None:
        parts.append(f"pods({selector_text(peer.pod_selector)})")
    return " ".join(parts) or "(invalid peer)"


def port_text(port: PolicyPort) -> str:
    """``TCP 80``, ``TCP 8000-8080``, ``UDP (all)``, ``TCP http``."""
    if port.port is None:
        return f"{port.protocol} (all)"
    if port.end_port is not None:
        return f"{port.protocol} {port.port}-{port.end_port}"
    return f"{port.protocol} {port.port}"


def peers_text(peers: Sequence[Peer] | None) -> str:
    """Peers joined with ``; ``; ``(every peer)`` when absent or empty."""
    return "; ".join(peer_text(p) for p in peers) if peers else "(every peer)"


def ports_text(ports: Sequence[PolicyPort] | None) -> str:
    """Ports joined with ``, ``; ``(every port)`` when absent or empty."""
    return ", ".join(port_text(p) for p in ports) if ports else "(every port)"


def rule_text(rule: Rule) -> str:
    """``peers -> ports``."""
    return f"{peers_text(rule.peers)} / {ports_text(rule.ports)}"


def change_dict(c: Change) -> dict[str, Any]:
    """JSON form."""
    return {
        "kind": c.kind,
        "policy": c.policy,
        "rule": c.rule,
        "before": c.before,
        "after": c.after,
        "evidence": c.evidence,
        "connections": c.connections,
    }


def note_dict(n: Note) -> dict[str, Any]:
    """JSON form."""
    return {"kind": n.kind, "policy": n.policy, "rule": n.rule, "text": n.text}
