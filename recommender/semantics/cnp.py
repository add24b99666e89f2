"""ClusterNetworkPolicy evaluation in tiers, mixed with NetworkPolicy (and Cilium), explained.

The order, from ``ClusterNetworkPolicySpec.Tier`` (network-policy-api v0.2.0):

* "Policy tiers are evaluated in the following order: Admin tier, NetworkPolicy
  tier, Baseline tier." "If Admin tier has made a final decision (Accept or Deny)
  on a connection, then no further evaluation is done."
* "v1.NetworkPolicy always makes a final decision for selected pods. Further
  evaluation only happens for Pods not selected by a v1.NetworkPolicy." The
  NetworkPolicy tier is whatever the v1 engine (or, with CiliumNetworkPolicies,
  the Cilium engine) says for that side.
* "If a given connection wasn't allowed or denied by any of the tiers, the default
  kubernetes policy is applied, which says that all pods can communicate".
* Priority: "Policies with lower priority values have higher precedence"; within
  one policy "The relative precedence of ... rules ... will be determined by the
  order in which the rule is written". Ties: "If two (or more) policies in the same
  tier with the same priority could match a connection, then the implementation
  can apply any of the matching policies": when such policies disagree the
  verdict is ``unknown`` (named in the reason), never a guess.
* Pass: "Skips all further ClusterNetworkPolicy rules in the current tier ... and
  passes evaluation to the next tier." A Baseline Pass falls to the default allow.
* Each direction is its own decision: egress Accept means "No further egress
  ClusterNetworkPolicy or NetworkPolicy rules will be processed but any ingress
  rules at the destination do apply"; "CNPs with no egress rules do not affect
  egress traffic" (conformance CNPAdminTierIngressRulesEgressUnaffected).
* The v1 exemptions (a pod to itself, a pod and its own node) belong to the
  NetworkPolicy tier; Admin and Baseline rules judge such traffic as written
  (conformance CNPAdminTierHairpin: "Under CNP, this hairpin traffic is subject to
  ingress policy").
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from recommender.errors import PolicyError
from recommender.model import Inventory, NetworkPolicy
from recommender.semantics.cilium import CiliumPolicy, CiliumPolicySet, compile_policy_kinds
from recommender.semantics.cnp_rules import FQDN_EVIDENCE, ClusterPolicy, domain_matches
from recommender.semantics.endpoints import Endpoint
from recommender.semantics.engine import Decision, FlowTuple, PolicySet, _exemption

FINAL = ("Accept", "Deny")


@dataclass(frozen=True)
class _Side:
    """One direction's outcome: ``ok`` None when same-priority policies disagree."""

    ok: bool | None
    policies: tuple[str, ...]
    rules: tuple[str, ...]
    isolated: bool
    why: str | None = None


class ClusterPolicySet:
    """ClusterNetworkPolicies around a NetworkPolicy-tier engine, decided per direction."""

    def __init__(
        self,
        inner: PolicySet | CiliumPolicySet,
        cluster: Sequence[ClusterPolicy],
        inventory: Inventory,
    ) -> None:
        self.inner, self.inventory = inner, inventory
        self.cluster = tuple(sorted(cluster, key=lambda p: (p.tier, p.priority, p.name)))
        _refuse_unjudgeable(self.cluster, inventory)
        self._nodes = {n.name: dict(n.labels) for n in inventory.nodes}
        self._node_ips = {a: n.name for n in inventory.nodes for a in n.addresses}
        self._dns = _recorded_answers(self.cluster)
        self._memo: dict[FlowTuple, Decision] = {}

    @property
    def policies(self) -> tuple[Any, ...]:
        """The NetworkPolicy-tier policies, then every ClusterNetworkPolicy."""
        return (*self.inner.policies, *self.cluster)

    def selecting(self, ep: Endpoint, direction: str) -> tuple[Any, ...]:
        """Policies of any tier with rules for ``ep`` in ``direction``."""
        mine = tuple(p for p in self.cluster if p.rules(direction) and p.selects(ep))
        return (*self.inner.selecting(ep, direction), *mine)

    def _pods(self) -> list[tuple[str, Endpoint]]:
        v1 = self.inner.v1 if isinstance(self.inner, CiliumPolicySet) else self.inner
        return v1._pod_endpoints()

    def uncovered_pods(self, direction: str) -> tuple[str, ...]:
        """Keys of running, non-hostNetwork pods no policy of any tier applies to."""
        return tuple(k for k, ep in self._pods() if not self.selecting(ep, direction))

    def selected_pods(self, direction: str) -> tuple[str, ...]:
        """Keys of the pods some policy of any tier applies to in ``direction``."""
        return tuple(k for k, ep in self._pods() if self.selecting(ep, direction))

    isolated_pods = selected_pods

    def decide(self, src: Endpoint, dst: Endpoint, port: int | None, protocol: str) -> Decision:
        """Verdict for one connection (see the module notes for the order applied)."""
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
        e = self._side(src, dst, "egress", dst, port, proto)
        i = self._side(dst, src, "ingress", dst, port, proto)
        if e.ok is None or i.ok is None:
            why = " ".join(w for w in (e.why, i.why) if w)
            return Decision("unknown", reason=why)
        denied = {(True, True): None, (False, True): "egress", (True, False): "ingress"}
        by = denied.get((e.ok, i.ok), "both")
        reasons = [s.why for s, bad in ((e, not e.ok), (i, not i.ok)) if bad and s.why]
        return Decision(
            verdict="allowed" if by is None else "denied",
            denied_by=by,
            egress_policies=e.policies,
            ingress_policies=i.policies,
            egress_rules=e.rules,
            ingress_rules=i.rules,
            egress_isolated=e.isolated,
            ingress_isolated=i.isolated,
            reason="; ".join(reasons) or None,
        )

    def _side(
        self,
        local: Endpoint,
        peer: Endpoint,
        direction: str,
        dst: Endpoint,
        port: int | None,
        proto: str,
    ) -> _Side:
        if local.kind != "pod":
            return _Side(True, (), (), False)
        conn = (peer, dst, port, proto)
        admin = self._tier("Admin", local, direction, conn)
        if admin is not None and (admin.ok is None or admin.rules):
            return admin
        np = self._np_side(local, direction, conn)
        if np.isolated:
            return _merge(admin, np)
        base = self._tier("Baseline", local, direction, conn)
        if base is not None and (base.ok is None or base.rules):
            return _merge(admin, base)
        return _merge(admin, _merge(np, base))

    def _tier(
        self, tier: str, local: Endpoint, direction: str, conn: tuple[Any, ...]
    ) -> _Side | None:
        """The tier's outcome: a final Accept/Deny (``rules`` set), Pass or no match."""
        mine = [
            p for p in self.cluster if p.tier == tier and p.rules(direction) and p.selects(local)
        ]
        if not mine:
            return None
        keys = tuple(p.key for p in mine)
        for prio, group in groupby(mine, key=lambda p: p.priority):
            hits = [h for h in (self._first_hit(p, direction, conn) for p in group) if h]
            if not hits:
                continue
            actions = {a for a, _ in hits}
            ids = tuple(r for _, r in hits)
            if len(actions) > 1:
                why = (
                    f"{direction}: {tier}-tier policies of the same priority {prio} disagree "
                    f"({', '.join(f'{r} {a}' for a, r in hits)}); the API lets the "
                    "implementation apply any of them"
                )
                return _Side(None, keys, ids, True, why)
            action = actions.pop()
            if action == "Pass":  # "passes evaluation to the next tier"
                return _Side(True, keys, (), False, f"{direction} passed by {', '.join(ids)}")
            ok = action == "Accept"
            deny = f"{direction} denied by {', '.join(ids)} ({tier} tier Deny)"
            return _Side(ok, keys, ids, True, None if ok else deny)
        return _Side(True, keys, (), False)

    def _first_hit(
        self, policy: ClusterPolicy, direction: str, conn: tuple[Any, ...]
    ) -> tuple[str, str] | None:
        peer, dst, port, proto = conn
        for rule in policy.rules(direction):
            if rule.matches(peer, dst, port, proto, (self._node_labels, self._resolved)):
                return rule.action, rule.rule_id
        return None

    def _np_side(self, local: Endpoint, direction: str, conn: tuple[Any, ...]) -> _Side:
        peer, dst, port, proto = conn
        if isinstance(self.inner, CiliumPolicySet):
            s = self.inner._side(local, peer, direction, port, proto)
            own = direction == "ingress" and peer.kind == "host" and peer.node == local.node
            ok = s.ok or bool(own and peer.node)  # Cilium's allow-localhost
            why = None if ok else f"{direction}: NetworkPolicy tier ({', '.join(s.policies)})"
            return _Side(ok, s.policies, s.allows, s.isolated, why)
        src, dst_ = (local, peer) if direction == "egress" else (peer, local)
        selected = self.inner.selecting(local, direction)
        if selected and _exemption(src, dst_) is not None:
            return _Side(True, (), (), True, _exemption(src, dst_))
        rules = self.inner._allowing(selected, direction, peer, dst, port, proto)
        names = tuple(cp.policy.key for cp in selected)
        ok = not selected or bool(rules)
        why = None if ok else f"{direction}: no rule of {', '.join(names)} allows it"
        return _Side(ok, names, rules, bool(selected), why)

    def _node_labels(self, ep: Endpoint) -> Mapping[str, str] | None:
        name = ep.node or self._node_ips.get(ep.ip or "")
        return self._nodes.get(name) if name else None

    def _resolved(self, ip: str | None, patterns: tuple[str, ...]) -> bool:
        names = self._dns.get(ip or "", ())
        return any(domain_matches(p, n) for p in patterns for n in names)


def _merge(first: _Side | None, second: _Side | None) -> _Side:
    """``second``'s verdict with the policies of both (``first`` passed or matched nothing)."""
    if second is None:
        return first or _Side(True, (), (), False)
    if first is None:
        return second
    return _Side(
        second.ok,
        first.policies + second.policies,
        second.rules,
        first.isolated or second.isolated,
        second.why,
    )


def _refuse_unjudgeable(cluster: Sequence[ClusterPolicy], inventory: Inventory) -> None:
    """A ``nodes`` peer with a selector needs node labels; without them it is refused."""
    if any(n.labels for n in inventory.nodes):
        return
    for p in cluster:
        if p.uses_nodes:
            raise PolicyError(
                p.source or "<memory>",
                "spec.egress",
                f"{p.key}: a nodes peer with a selector cannot be judged: the inventory "
                "has no node labels (include the Node objects)",
            )


def _recorded_answers(cluster: Sequence[ClusterPolicy]) -> dict[str, tuple[str, ...]]:
    """Address -> names the policies' DNS evidence annotation recorded (domainNames peers)."""
    out: dict[str, set[str]] = {}
    for p in cluster:
        text = ((p.raw.get("metadata") or {}).get("annotations") or {}).get(FQDN_EVIDENCE)
        for cidr, names in (json.loads(text) if text else {}).items():
            out.setdefault(cidr.split("/", 1)[0], set()).update(n.lower() for n in names)
    return {ip: tuple(sorted(n)) for ip, n in out.items()}


def compile_all_kinds(
    policies: Sequence[NetworkPolicy],
    cilium: Sequence[CiliumPolicy],
    cluster: Sequence[ClusterPolicy],
    inventory: Inventory,
    dns_cache: Mapping[str, Iterable[str]] | None = None,
) -> PolicySet | CiliumPolicySet | ClusterPolicySet:
    """The engine for any mix of kinds: tiers only when there is a ClusterNetworkPolicy."""
    inner = compile_policy_kinds(policies, cilium, inventory, dns_cache)
    return ClusterPolicySet(inner, cluster, inventory) if cluster else inner
