"""Widening: explicit, evidence-backed allowances for legitimate flows the current set denies.

A flow is a widening candidate when all of this holds:

* the current set denies it (at least one of its cases; none is ``unknown``);
* it really flowed: connections with CNI verdict allowed/forwarded, or
  ``audit`` (an audit-mode policy would have dropped it, the flow went
  through), and none was dropped for policy. A contested edge (some
  connections dropped for policy) is not evidence, as in ``recommend``;
* NetworkPolicy can express it (TCP/UDP/SCTP with a port);
* it is not scan-shaped (:mod:`recommender.recommend.suspicious`).

For each denying side the proposal is one rule, on the denied workload only:
the isolated pods by their smallest exact stable selector, the peer by an
exact selector (plus its namespace name) or its address as a /32 (/128), the
one port. The rule goes into a policy ``<workload>-widened`` that lists only
the directions it widens. That side is isolated already (it denied), and the
selector selects exactly that workload, so the new policy isolates nothing
new. Proposals are listed with their evidence; only ``--accept-widening``
writes them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from recommender.labels import encode_labels, stable_labels
from recommender.model import IPBlock, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.recommend.cidr import host_cidr
from recommender.semantics import Endpoint
from recommender.tighten.context import NAME_LABEL, InventoryContext
from recommender.tighten.evidence import Judged
from recommender.tighten.text import peer_text

MANAGED_BY = (("app.kubernetes.io/managed-by", "netpol-recommender"),)
WIDEN_NOTE = (
    "netpol-recommender.io/widened-by",
    "netpol tighten --accept-widening; evidence in TIGHTEN.md",
)


@dataclass(frozen=True)
class Widening:
    """One proposed allowance: ``direction`` rule on ``target`` for ``peer`` on ``port``."""

    namespace: str
    target: str  # readable workload the rule is for
    selector: LabelSelector | None  # None: no exact selector, cannot widen automatically
    direction: str
    peer: Peer | None
    port: PolicyPort
    judged: Judged
    problem: str | None = None

    @property
    def possible(self) -> bool:
        """True when the allowance can be written exactly."""
        return self.selector is not None and self.peer is not None


def is_candidate(j: Judged) -> bool:
    """A legitimate flow that the current set denies (see the module docstring)."""
    o = j.observed
    return (
        j.plausible_verdict in ("denied", "mixed")
        and o.flowed > 0
        and o.policy_denied == 0
        and o.is_expressible
        and not o.suspicious
    )


def find_widenings(judged: Sequence[Judged], ctx: InventoryContext) -> list[Widening]:
    """One :class:`Widening` per (candidate, denying side), in evidence order."""
    out: list[Widening] = []
    for j in judged:
        if is_candidate(j):
            out.extend(_widen(j, side, ctx) for side in j.denied_sides())
    return out


def _widen(j: Judged, side: str, ctx: InventoryContext) -> Widening:
    o = j.observed
    cases = [c for c, ok in zip(o.cases, o.plausible or [True] * len(o.cases), strict=True) if ok]
    own = [s if side == "egress" else d for s, d in cases]
    other = [d if side == "egress" else s for s, d in cases]
    target = o.src if side == "egress" else o.dst
    port = PolicyPort(o.protocol, o.port)
    ns = own[0].namespace or ""
    selector = ctx.exact_selector(ns, sorted({_ident(e) for e in own}))
    peer, problem = _peer(other, ns, ctx)
    if selector is None:
        problem = f"no exact stable selector for {target}"
    return Widening(ns, target, selector, side, peer, port, j, problem)


def _ident(ep: Endpoint) -> str:
    return encode_labels(stable_labels(ep.label_map))


def _peer(
    ends: list[Endpoint], own_ns: str, ctx: InventoryContext
) -> tuple[Peer | None, str | None]:
    first = ends[0]
    if first.kind != "pod" or not first.namespace:
        ips = sorted({e.ip for e in ends if e.ip})
        if len(ips) != 1:
            return None, "the peer has no single address"
        return Peer(ip_block=IPBlock(host_cidr(ips[0]))), None
    ns = first.namespace
    selector = ctx.exact_selector(ns, sorted({_ident(e) for e in ends}))
    if selector is None:
        return None, f"no exact stable selector for the peer in namespace {ns}"
    ns_sel = None if ns == own_ns else LabelSelector(match_labels=((NAME_LABEL, ns),))
    return Peer(pod_selector=selector, namespace_selector=ns_sel), None


def widen_policies(
    policies: Sequence[NetworkPolicy], widenings: Sequence[Widening]
) -> list[NetworkPolicy]:
    """``policies`` plus the possible widenings, as ``<workload>-widened`` policies.

    An existing ``-widened`` policy with the same podSelector receives the new
    rules (appended after its own); otherwise a new policy is added.
    """
    grouped: dict[tuple[str, LabelSelector, str], dict[str, dict[Peer, set[PolicyPort]]]] = {}
    for w in widenings:
        if not w.possible:
            continue
        assert w.selector is not None
        assert w.peer is not None
        key = (w.namespace, w.selector, _short_name(w.target))
        rules = grouped.setdefault(key, {}).setdefault(w.direction, {})
        rules.setdefault(w.peer, set()).add(w.port)
    out = list(policies)
    for (ns, selector, short), by_dir in sorted(
        grouped.items(), key=lambda kv: (kv[0][0], kv[0][2])
    ):
        _merge(out, ns, selector, f"{short}-widened", by_dir)
    return out


def _merge(
    out: list[NetworkPolicy],
    ns: str,
    selector: LabelSelector,
    base: str,
    by_dir: dict[str, dict[Peer, set[PolicyPort]]],
) -> None:
    name, n = base, 1
    while True:
        existing = next(
            (i for i, p in enumerate(out) if p.namespace == ns and p.name == name), None
        )
        if existing is None or out[existing].pod_selector == selector:
            break
        n += 1
        name = f"{base}-{n}"
    policy = (
        out[existing]
        if existing is not None
        else NetworkPolicy(ns, name, selector, (), labels=MANAGED_BY, annotations=(WIDEN_NOTE,))
    )
    fields: dict[str, object] = {}
    types = set(policy.policy_types)
    for direction, peers in by_dir.items():
        new_rules = tuple(
            Rule((peer,), tuple(sorted(ports, key=_port_key)))
            for peer, ports in sorted(peers.items(), key=lambda kv: peer_text(kv[0]))
        )
        current = (policy.ingress if direction == "ingress" else policy.egress) or ()
        fields[direction] = tuple(current) + tuple(r for r in new_rules if r not in current)
        types.add(direction.capitalize())
    fields["policy_types"] = tuple(t for t in ("Ingress", "Egress") if t in types)
    updated = replace(policy, **fields)  # type: ignore[arg-type]
    if existing is None:
        out.append(updated)
    else:
        out[existing] = updated


def _port_key(p: PolicyPort) -> tuple[str, int]:
    return p.protocol, int(p.port) if isinstance(p.port, int) else 0


def _short_name(target: str) -> str:
    """DNS-1123 name part from ``ns/kind/name``.

    >>> _short_name("shop/deployment/Front_End")
    'front-end'
    """
    name = target.rsplit("/", 1)[-1].lower()
    name = re.sub(r"[^a-z0-9-]+", "-", name).strip("-")
    return (name or "workload")[:50].rstrip("-")
