"""The policy set: which policies isolate an endpoint, and whether a flow may pass.

The rules, from the Kubernetes NetworkPolicy reference:

* "By default, a pod is non-isolated for egress [ingress]; all outbound [inbound]
  connections are allowed. A pod is isolated for egress if there is any
  NetworkPolicy that both selects the pod and has "Egress" in its policyTypes."
* "Network policies do not conflict; they are additive": the allowed set is the
  union of the rules of every policy that isolates the pod in that direction.
* "For a connection from a source pod to a destination pod to be allowed, both the
  egress policy on the source pod and the ingress policy on the destination pod
  need to allow the connection."

Only pods are selected by policies: ``host``, ``world`` and ``cluster_infra``
endpoints are never isolated. An ``unknown`` endpoint gives verdict ``unknown``.

Two exceptions from the concepts page ("Network Policies", the identifiers a pod
can talk to) are applied before any rule:

* "a pod cannot block access to itself": a connection from a pod to its own IP
  is allowed;
* "traffic to and from the node where a Pod is running is always allowed,
  regardless of the IP address of the Pod or the node": a ``host`` endpoint of
  the pod's own node (kubelet probes) passes both sides.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property

from recommender.labels import matches_selector
from recommender.model import Inventory, NetworkPolicy
from recommender.semantics.endpoints import TERMINAL_PHASES, Endpoint, endpoint_for_pod
from recommender.semantics.rules import CompiledRule, compile_rules
from recommender.vocabulary import DIRECTIONS, Decided

FlowTuple = tuple[Endpoint, Endpoint, int | None, str]
_Identity = tuple[str, tuple[tuple[str, str], ...]]  # (namespace, sorted pod labels)


@dataclass(frozen=True)
class Decision:
    """A verdict and its explanation.

    ``egress_policies``/``ingress_policies`` are the keys of the policies that select
    the source for egress / the destination for ingress; ``egress_rules``/
    ``ingress_rules`` the ids (``ns/name#egress[0]``) of every rule that allowed the
    flow on that side; ``denied_by`` is ``egress``, ``ingress``, ``both`` or None.
    """

    verdict: Decided
    denied_by: str | None = None
    egress_policies: tuple[str, ...] = ()
    ingress_policies: tuple[str, ...] = ()
    egress_rules: tuple[str, ...] = ()
    ingress_rules: tuple[str, ...] = ()
    egress_isolated: bool = False
    ingress_isolated: bool = False
    reason: str | None = None

    @property
    def is_allowed(self) -> bool:
        """True for verdict ``allowed``."""
        return self.verdict == "allowed"


@dataclass(frozen=True)
class CompiledPolicy:
    """A policy with its rules compiled per direction it applies to."""

    policy: NetworkPolicy
    ingress: tuple[CompiledRule, ...] | None  # None: policyTypes lacks Ingress
    egress: tuple[CompiledRule, ...] | None

    def rules(self, direction: str) -> tuple[CompiledRule, ...] | None:
        """Rules for ``direction``; None when the policy does not apply to it."""
        return self.ingress if direction == "ingress" else self.egress

    @cached_property
    def ip_directions(self) -> frozenset[str]:
        """Directions with an ipBlock peer (there the peer's IP matters, not just labels)."""
        return frozenset(
            d
            for d in DIRECTIONS
            if any(p.network is not None for r in self.rules(d) or () for p in r.peers or ())
        )


def compile_policies(policies: Sequence[NetworkPolicy], inventory: Inventory) -> PolicySet:
    """Compile policies for fast evaluation over ``inventory``.

    ``policy_types`` must already be defaulted (``parse_policy`` does it). Under a
    listed type, rules ``None`` and ``()`` both deny everything: "If this field is
    empty then this NetworkPolicy does not allow any traffic". A policy type that is
    not listed leaves its rules unused, even when written.
    """
    compiled = [
        CompiledPolicy(
            p,
            compile_rules(p, "ingress") if "Ingress" in p.policy_types else None,
            compile_rules(p, "egress") if "Egress" in p.policy_types else None,
        )
        for p in sorted(policies, key=lambda p: (p.namespace, p.name, p.source or ""))
    ]
    return PolicySet(compiled, inventory)


class PolicySet:
    """Compiled policies plus caches; evaluate with :meth:`decide` / :meth:`decide_many`."""

    def __init__(self, policies: Sequence[CompiledPolicy], inventory: Inventory) -> None:
        self.policies: tuple[CompiledPolicy, ...] = tuple(policies)
        self.inventory = inventory
        self._by_namespace: dict[str, list[CompiledPolicy]] = {}
        for cp in self.policies:
            self._by_namespace.setdefault(cp.policy.namespace, []).append(cp)
        self._selecting: dict[_Identity, dict[str, tuple[CompiledPolicy, ...]]] = {}
        self._peer_hits: dict[tuple[int, str, object], tuple[CompiledRule, ...]] = {}
        self._decisions: dict[FlowTuple, Decision] = {}

    # -- selection ---------------------------------------------------------

    def selecting(self, ep: Endpoint, direction: str) -> tuple[CompiledPolicy, ...]:
        """Policies that select ``ep`` and apply to ``direction`` (ingress/egress)."""
        if ep.kind != "pod" or ep.namespace is None:
            return ()
        key = (ep.namespace, ep.labels)
        hit = self._selecting.get(key)
        if hit is None:
            chosen = [
                cp
                for cp in self._by_namespace.get(ep.namespace, ())
                if matches_selector(cp.policy.pod_selector, ep.label_map)
            ]
            hit = {d: tuple(cp for cp in chosen if cp.rules(d) is not None) for d in DIRECTIONS}
            self._selecting[key] = hit
        return hit[direction]

    def selected_pods(self, direction: str) -> tuple[str, ...]:
        """Keys (``ns/pod``) of inventory pods isolated in ``direction``, sorted."""
        return tuple(k for k, ep in self._pod_endpoints() if self.selecting(ep, direction))

    isolated_pods = selected_pods

    def uncovered_pods(self, direction: str) -> tuple[str, ...]:
        """Keys of inventory pods no policy isolates in ``direction`` (open), sorted.

        hostNetwork pods and pods in phase Succeeded/Failed are left out: policies
        cannot select the former and the latter no longer run.
        """
        return tuple(k for k, ep in self._pod_endpoints() if not self.selecting(ep, direction))

    def _pod_endpoints(self) -> list[tuple[str, Endpoint]]:
        pods = [
            p for p in self.inventory.pods if not p.host_network and p.phase not in TERMINAL_PHASES
        ]
        return sorted((p.key, endpoint_for_pod(p, self.inventory)) for p in pods)

    # -- decisions ---------------------------------------------------------

    def decide(self, src: Endpoint, dst: Endpoint, port: int | None, protocol: str) -> Decision:
        """Verdict for one connection from ``src`` to ``dst`` on ``port``/``protocol``.

        ``port`` None (ICMP, or unknown) matches only rules without a port number.
        """
        key = (src, dst, port, protocol)
        hit = self._decisions.get(key)
        if hit is None:
            hit = self._decide(src, dst, port, protocol.upper())
            self._decisions[key] = hit
        return hit

    def decide_once(
        self, src: Endpoint, dst: Endpoint, port: int | None, protocol: str
    ) -> Decision:
        """:meth:`decide` without remembering the decision.

        For sweeps over every pair of a large universe (reachability, diff), where
        each tuple is asked once and a cache would only grow memory.
        """
        return self._decisions.get((src, dst, port, protocol)) or self._decide(
            src, dst, port, protocol.upper()
        )

    def decide_many(self, tuples: Iterable[FlowTuple]) -> list[Decision]:
        """:meth:`decide` for each tuple; equal tuples are evaluated once."""
        # Flow tables repeat the same endpoint objects: memoise by identity first
        # (int hashing), falling back to the value-keyed cache in decide().
        memo: dict[tuple[int, int, int | None, str], Decision] = {}
        out: list[Decision] = []
        for src, dst, port, proto in tuples:
            key = (id(src), id(dst), port, proto)
            hit = memo.get(key)
            if hit is None:
                hit = memo[key] = self.decide(src, dst, port, proto)
            out.append(hit)
        return out

    def _decide(self, src: Endpoint, dst: Endpoint, port: int | None, proto: str) -> Decision:
        if src.kind == "unknown" or dst.kind == "unknown":
            side = "source" if src.kind == "unknown" else "destination"
            return Decision("unknown", reason=f"{side} endpoint is unknown")
        exempt = _exemption(src, dst)
        if exempt is not None:
            return Decision("allowed", reason=exempt)
        egress = self.selecting(src, "egress")
        ingress = self.selecting(dst, "ingress")
        e_rules = self._allowing(egress, "egress", dst, dst, port, proto)
        i_rules = self._allowing(ingress, "ingress", src, dst, port, proto)
        # A side with no isolating policy is open; an isolated side needs a rule.
        e_ok, i_ok = not egress or bool(e_rules), not ingress or bool(i_rules)
        denied = {(True, True): None, (False, True): "egress", (True, False): "ingress"}
        return Decision(
            verdict="allowed" if e_ok and i_ok else "denied",
            denied_by=denied.get((e_ok, i_ok), "both"),
            egress_policies=tuple(cp.policy.key for cp in egress),
            ingress_policies=tuple(cp.policy.key for cp in ingress),
            egress_rules=e_rules,
            ingress_rules=i_rules,
            egress_isolated=bool(egress),
            ingress_isolated=bool(ingress),
        )

    def _allowing(
        self,
        policies: tuple[CompiledPolicy, ...],
        direction: str,
        peer: Endpoint,
        dst: Endpoint,
        port: int | None,
        proto: str,
    ) -> tuple[str, ...]:
        """Ids of the rules in ``policies`` that admit ``peer`` on (port, proto)."""
        out: list[str] = []
        for cp in policies:
            for rule in self._peer_rules(cp, direction, peer):
                if rule.matches_port(port, proto, dst):
                    out.append(rule.rule_id)
        return tuple(out)

    def _peer_rules(
        self, cp: CompiledPolicy, direction: str, peer: Endpoint
    ) -> tuple[CompiledRule, ...]:
        """Rules of one policy whose peers admit ``peer`` (cached per endpoint)."""
        # Selector peers read only (kind, namespace, labels): share the result across
        # every pod of a workload unless an ipBlock peer makes the IP matter.
        ident = peer if direction in cp.ip_directions else peer.selector_key
        key = (id(cp), direction, ident)
        hit = self._peer_hits.get(key)
        if hit is None:
            hit = tuple(r for r in cp.rules(direction) or () if r.matches_peer(peer))
            self._peer_hits[key] = hit
        return hit


def _exemption(src: Endpoint, dst: Endpoint) -> str | None:
    """The reason a connection is allowed whatever the policies say, or None."""
    if (
        src.kind == "pod"
        and dst.kind == "pod"
        and src.ip is not None
        and src.ip == dst.ip
        and src.namespace == dst.namespace
    ):
        return "a pod cannot block access to itself"
    pod, other = (dst, src) if dst.kind == "pod" else (src, dst)
    if pod.kind == "pod" and other.kind == "host" and pod.node and other.node == pod.node:
        return "traffic between a pod and its own node is always allowed"
    return None
