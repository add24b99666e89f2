"""Semantic diff of two policy sets over a finite universe (``netpol diff``).

Not a YAML diff: the question is which (source workload, destination workload,
port, protocol) reachabilities change, decided by the exact semantics engine
for both sets over the same universe:

* every workload of the inventory (one representative pod each);
* every external address: one probe per region of the address space that the
  two sets' ipBlocks cut out (a world endpoint is judged by its address alone,
  so every address of a region, observed ones included, is judged alike); one
  host address per node, observed node addresses and the apiserver endpoints;
* every TCP/UDP/SCTP port: per (source, destination) pair, one probe per region
  of the port space cut by the port entries of the policies on either side and
  the destination's declared ports (named ports resolve there).

Within that universe the answer is exact. Names, file layout and rule order
never matter: the engine's verdict does not depend on them.

Pruning, exactly: a verdict is ``egress(src) AND ingress(dst)``, and one side's
answer depends only on the rules of the policies that select that endpoint for
that direction. When that multiset of rules (written canonically, without
names) is equal in both sets, the side answers alike for every peer and port.
Only pairs where the source's egress side or the destination's ingress side
differs are evaluated.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from recommender.diff.universe import (
    POLICY_PROTOCOLS,
    external_universe,
    port_probes,
    port_regions,
    protocol_order,
)
from recommender.labels import matches_selector
from recommender.model import Inventory, LabelSelector, NetworkPolicy, Peer, PolicyPort, Rule
from recommender.semantics import Decision, Endpoint, PolicySet, compile_policies
from recommender.semantics.cilium import CiliumPolicySet
from recommender.semantics.cnp import ClusterPolicySet
from recommender.semantics.reachability import WorkloadRep, workload_universe

SIDES: tuple[str, ...] = ("egress", "ingress")
#: Any compiled policy set: NetworkPolicy alone, with Cilium, or under ClusterNetworkPolicy tiers.
Engine = PolicySet | CiliumPolicySet | ClusterPolicySet


@dataclass(frozen=True)
class ReachChange:
    """One reachability whose verdict differs between OLD and NEW.

    ``change`` is ``allowed`` (denied before, allowed now) or ``denied``;
    ``sides`` the sides whose answer changed; ``old_policies``/``new_policies``
    the policies responsible on those sides (the rules' policies where a side
    allows, the isolating policies where it denies).
    """

    src: str
    dst: str
    port: int
    protocol: str
    change: str
    port_last: int  # the probe stands for ports port..port_last
    sides: tuple[str, ...]
    old_rules: tuple[str, ...]
    new_rules: tuple[str, ...]
    old_policies: tuple[str, ...]
    new_policies: tuple[str, ...]
    #: A pod and its own node: v1 always allows it, Cilium policy decides it.
    own_node: bool = False


@dataclass(frozen=True)
class Universe:
    """The finite universe a diff is exact over."""

    workloads: tuple[WorkloadRep, ...]
    externals: tuple[WorkloadRep, ...]
    ports: tuple[tuple[int, str], ...]  # probed on every destination, besides its declared ports
    observed_ports: tuple[tuple[int, str], ...] = ()
    observed_ips: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        """Counts and the definition, for reports."""
        kinds: dict[str, int] = {}
        for rep in self.externals:
            kind = rep.key.split(":", 1)[0]
            kinds[kind] = kinds.get(kind, 0) + 1
        declared = {p for w in self.workloads for p in w.ports}
        return {
            "workloads": len(self.workloads),
            "declared_ports": len(declared),
            "probe_ports": len(self.ports),
            "observed_ports": len(self.observed_ports),
            "observed_external_addresses": len(set(self.observed_ips)),
            "external_probes": dict(sorted(kinds.items())),
            "definition": UNIVERSE_NOTE,
        }


UNIVERSE_NOTE = (
    "exact over: every inventory workload (one representative pod each); every external "
    "address (one probe per region the ipBlocks of either set cut out, which covers every "
    "observed address); one host address per node, observed node addresses and apiserver "
    "endpoints; every TCP/UDP/SCTP port (one probe per region cut by the port entries of "
    "the policies on either side of a pair and the destination's declared ports). Pods not "
    "in the inventory are not compared."
)


@dataclass
class DiffResult:
    """What :func:`diff_policies` found."""

    universe: Universe
    changes: list[ReachChange]
    changed_sides: dict[str, int]  # endpoints whose egress / ingress side differs
    pairs_evaluated: int
    decisions: int
    flow_changes: list[dict[str, Any]] | None = None
    flow_totals: dict[str, Any] = field(default_factory=dict)

    @property
    def equivalent(self) -> bool:
        """True when no reachability of the universe changes."""
        return not self.changes

    def counts(self) -> dict[str, int]:
        """Number of reachabilities newly allowed and newly denied."""
        allowed = sum(1 for c in self.changes if c.change == "allowed")
        return {"newly_allowed": allowed, "newly_denied": len(self.changes) - allowed}


# ---------------------------------------------------------------------------
# Universe
# ---------------------------------------------------------------------------


def build_universe(
    old: Sequence[NetworkPolicy],
    new: Sequence[NetworkPolicy],
    inventory: Inventory,
    observed_ports: Iterable[tuple[int, str]] = (),
    observed_ips: Iterable[str] = (),
) -> Universe:
    """The universe for comparing ``old`` and ``new`` on ``inventory``."""
    workloads = workload_universe(inventory)
    both = [*old, *new]
    seen_ports = tuple(sorted({(int(p), str(proto).upper()) for p, proto in observed_ports}))
    declared = {p for w in workloads for p in w.ports}
    ports = port_probes(both, [*declared, *seen_ports])
    ips = tuple(sorted(set(observed_ips)))
    return Universe(
        tuple(workloads), tuple(external_universe(both, inventory, ips)), ports, seen_ports, ips
    )


# ---------------------------------------------------------------------------
# Canonical side signatures (for pruning)
# ---------------------------------------------------------------------------


def _selector_key(s: LabelSelector | None) -> object:
    if s is None:
        return None
    # matchLabels/matchExpressions None and empty select alike.
    exprs = sorted(
        (r.key, r.operator, tuple(sorted(set(r.values)))) for r in s.match_expressions or ()
    )
    return (tuple(sorted(s.match_labels or ())), tuple(exprs))


def _peer_key(p: Peer) -> object:
    block = None if p.ip_block is None else (p.ip_block.cidr, tuple(sorted(p.ip_block.except_)))
    return (_selector_key(p.pod_selector), _selector_key(p.namespace_selector), block)


def _port_key(p: PolicyPort) -> object:
    return ((p.protocol or "TCP").upper(), str(p.port) if p.port is not None else "", p.end_port)


def _rule_key(namespace: str, r: Rule) -> object:
    """A rule as the engine reads it: "empty or missing" peers/ports both mean all."""
    peers = tuple(sorted(map(repr, map(_peer_key, r.peers)))) if r.peers else None
    ports = tuple(sorted(map(repr, map(_port_key, r.ports)))) if r.ports else None
    return (namespace, peers, ports)


def side_signature(policies: PolicySet, ep: Endpoint, side: str) -> object:
    """What decides one side of ``ep``: isolation plus the set of its rules, without names."""
    selecting = policies.selecting(ep, side)
    rules = {
        repr(_rule_key(cp.policy.namespace, r))
        for cp in selecting
        for r in (cp.policy.egress if side == "egress" else cp.policy.ingress) or ()
    }
    return (bool(selecting), tuple(sorted(rules)))


# ---------------------------------------------------------------------------
# The diff
# ---------------------------------------------------------------------------


def diff_policies(
    old: Sequence[NetworkPolicy],
    new: Sequence[NetworkPolicy],
    inventory: Inventory,
    universe: Universe | None = None,
    compiled: tuple[PolicySet, PolicySet] | None = None,
) -> DiffResult:
    """Compare two policy sets over ``universe`` (built from the inventory when None).

    ``compiled`` passes both sets already compiled (see :func:`compile_pair`).
    Returns every reachability whose verdict changes, sorted by (change, source,
    destination, protocol, port), with the policies responsible.
    """
    uni = universe or build_universe(old, new, inventory)
    old_ps, new_ps = compiled or compile_pair(old, new, inventory)
    every = [*uni.workloads, *uni.externals]
    sigs = _Signatures()
    changed = {
        side: {
            rep.key
            for rep in uni.workloads
            if sigs.of(old_ps, rep.endpoint, side) != sigs.of(new_ps, rep.endpoint, side)
        }
        for side in SIDES
    }
    probes = _PairPorts((old_ps, new_ps), uni)
    check = _Sides(old_ps, new_ps, every)
    explained: dict[tuple[Decision, Decision], tuple[Any, ...]] = {}
    changes: list[ReachChange] = []
    pairs = decisions = 0
    to_changed = [rep for rep in every if rep.key in changed["ingress"]]
    for src in every:
        targets = every if src.key in changed["egress"] else to_changed
        for dst in targets:
            if src.key == dst.key and src.namespace:
                continue  # a pod cannot block access to itself
            pairs += 1
            sides = [
                side
                for side, rep in (("egress", src), ("ingress", dst))
                if rep.key in changed[side]
            ]
            for port, last, proto in probes.of(src, dst):
                if not any(check.differ(side, src, dst, port, proto) for side in sides):
                    continue  # the unchanged side answers alike: the verdict cannot flip
                decisions += 1
                a = old_ps.decide(src.endpoint, dst.endpoint, port, proto)
                b = new_ps.decide(src.endpoint, dst.endpoint, port, proto)
                if a.is_allowed != b.is_allowed:
                    why = explained.get((a, b))
                    if why is None:
                        why = explained[(a, b)] = _explain(a, b)
                    changes.append(
                        ReachChange(src.key, dst.key, port, proto, why[0], last, *why[1:])
                    )
        _forget(old_ps, new_ps)
    changes.sort(key=lambda c: (c.change, c.src, c.dst, protocol_order(c.protocol), c.port))
    return DiffResult(uni, changes, {s: len(v) for s, v in changed.items()}, pairs, decisions)


class _Sides:
    """One side of :meth:`PolicySet.decide`, from the engine's own selection and rules.

    "A pod is isolated for egress [ingress] if there is any NetworkPolicy that both
    selects the pod and has Egress [Ingress] in its policyTypes"; an isolated side
    needs a rule of one of those policies admitting the peer on (port, protocol).
    Used as a cheap pre-check: only a probe where a changed side answers
    differently in the two sets can flip the verdict, and only those go to
    :meth:`PolicySet.decide`.

    Peer matching is the engine's (:meth:`CompiledPeer.matches`); it is only
    narrowed first to the candidates that can match (selector peers select pods
    of their own or of the selected namespaces), and cached per rule over the
    universe, so policies with hundreds of rules stay cheap.
    """

    def __init__(self, old: PolicySet, new: PolicySet, every: Sequence[WorkloadRep]) -> None:
        self.sets = (old, new)
        self.every = every
        self.by_ns: dict[str, list[WorkloadRep]] = {}
        for rep in every:
            if rep.endpoint.kind == "pod" and rep.endpoint.namespace:
                self.by_ns.setdefault(rep.endpoint.namespace, []).append(rep)
        self.ns_labels = {
            ns: reps[0].endpoint.namespace_label_map for ns, reps in self.by_ns.items()
        }
        self._admits: dict[tuple[int, str], dict[str, tuple[Any, ...]]] = {}

    def _rules_for(self, cp: Any, side: str) -> dict[str, tuple[Any, ...]]:
        """Universe endpoint key -> the rules of ``cp`` on ``side`` that admit it."""
        key = (id(cp), side)
        hit = self._admits.get(key)
        if hit is None:
            index: dict[str, list[Any]] = {}
            for rule in cp.rules(side) or ():
                for peer_key in self._admitted(rule):
                    index.setdefault(peer_key, []).append(rule)
            hit = self._admits[key] = {k: tuple(v) for k, v in index.items()}
        return hit

    def _admitted(self, rule: Any) -> frozenset[str]:
        if rule.peers is None:
            return frozenset(rep.key for rep in self.every)  # "matches all"
        out: set[str] = set()
        for peer in rule.peers:
            if peer.network is not None:
                candidates: Sequence[WorkloadRep] = self.every
            elif peer.namespace_selector is None:
                candidates = self.by_ns.get(peer.own_namespace, [])
            else:
                candidates = [
                    rep
                    for ns, labels in self.ns_labels.items()
                    if matches_selector(peer.namespace_selector, labels)
                    for rep in self.by_ns[ns]
                ]
            out.update(rep.key for rep in candidates if peer.matches(rep.endpoint))
        return frozenset(out)

    def _allows(
        self, ps: PolicySet, side: str, src: WorkloadRep, dst: WorkloadRep, port: int, proto: str
    ) -> bool:
        own, peer = (src, dst) if side == "egress" else (dst, src)
        isolating = ps.selecting(own.endpoint, side)
        if not isolating:
            return True
        return any(
            rule.matches_port(port, proto, dst.endpoint)
            for cp in isolating
            for rule in self._rules_for(cp, side).get(peer.key, ())
        )

    def differ(self, side: str, src: WorkloadRep, dst: WorkloadRep, port: int, proto: str) -> bool:
        """True when ``side`` answers differently in the two sets."""
        old, new = self.sets
        return self._allows(old, side, src, dst, port, proto) != self._allows(
            new, side, src, dst, port, proto
        )


class _Signatures:
    """:func:`side_signature` with each policy's canonical rules computed once."""

    def __init__(self) -> None:
        self._rules: dict[tuple[int, str], frozenset[str]] = {}

    def of(self, ps: PolicySet, ep: Endpoint, side: str) -> object:
        selecting = ps.selecting(ep, side)
        rules: set[str] = set()
        for cp in selecting:
            key = (id(cp), side)
            hit = self._rules.get(key)
            if hit is None:
                written = cp.policy.egress if side == "egress" else cp.policy.ingress
                hit = self._rules[key] = frozenset(
                    repr(_rule_key(cp.policy.namespace, r)) for r in written or ()
                )
            rules |= hit
        return (bool(selecting), tuple(sorted(rules)))


class _PairPorts:
    """Port probes for one (source, destination) pair, with the region each stands for.

    A pair's four side answers (old/new egress of the source, old/new ingress of
    the destination) depend on the port only through the port entries of the
    policies selecting those sides, the destination's declared ports (named
    ports) and nothing else; cutting the port space there (plus at observed
    ports) gives regions where every answer is constant, so one probe per region
    is exact. Far fewer probes than the global cut set on large inventories.
    """

    def __init__(self, sets: tuple[PolicySet, PolicySet], uni: Universe) -> None:
        self.sets = sets
        # Observed ports need no probe of their own: each lies in a region.
        self.base: set[tuple[int, str]] = {(1, p) for p in POLICY_PROTOCOLS}
        self._policy_cuts: dict[tuple[int, str], frozenset[tuple[int, str]]] = {}
        self._side_cuts: dict[tuple[str, str], frozenset[tuple[int, str]]] = {}
        self._pairs: dict[
            tuple[frozenset[tuple[int, str]], frozenset[tuple[int, str]]],
            tuple[tuple[int, int, str], ...],
        ] = {}

    def _cuts(self, rep: WorkloadRep, side: str) -> frozenset[tuple[int, str]]:
        hit = self._side_cuts.get((rep.key, side))
        if hit is None:
            cuts: set[tuple[int, str]] = set()
            for ps in self.sets:
                for cp in ps.selecting(rep.endpoint, side):
                    cuts |= self._policy(cp.policy, side)
            if side == "ingress":
                cuts.update(
                    c for port, proto in rep.ports for c in ((port, proto), (port + 1, proto))
                )
            hit = self._side_cuts[(rep.key, side)] = frozenset(cuts)
        return hit

    def _policy(self, policy: NetworkPolicy, side: str) -> frozenset[tuple[int, str]]:
        key = (id(policy), side)
        hit = self._policy_cuts.get(key)
        if hit is None:
            rules = (policy.egress if side == "egress" else policy.ingress) or ()
            cuts = {
                (port, proto)
                for port, proto in port_probes(
                    [NetworkPolicy("", "", LabelSelector(), ("Ingress",), ingress=rules)]
                )
            }
            hit = self._policy_cuts[key] = frozenset(cuts)
        return hit

    def of(self, src: WorkloadRep, dst: WorkloadRep) -> tuple[tuple[int, int, str], ...]:
        """(first port, last port, protocol) of every region for this pair."""
        # Egress rules may name ports of the destination: its declared ports cut too.
        key = (self._cuts(src, "egress"), self._cuts(dst, "ingress"))
        hit = self._pairs.get(key)
        if hit is None:
            probes = sorted(self.base | key[0] | key[1], key=lambda p: (protocol_order(p[1]), p[0]))
            probes = [p for p in probes if 1 <= p[0] <= 65535]
            regions = port_regions(probes)
            hit = self._pairs[key] = tuple(
                (port, regions[(port, proto)], proto) for port, proto in probes
            )
        return hit


def _forget(*sets: PolicySet) -> None:
    """Drop the engines' decision memo: a diff never asks the same tuple twice."""
    for ps in sets:
        ps._decisions.clear()  # bounded memory on large universes


def _side_ok(d: Decision, side: str) -> bool:
    isolated = d.egress_isolated if side == "egress" else d.ingress_isolated
    rules = d.egress_rules if side == "egress" else d.ingress_rules
    return d.reason is not None or not isolated or bool(rules)


def _responsible(d: Decision, side: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(rules, policies) that decide one side: allowing rules, or the isolating policies."""
    rules = d.egress_rules if side == "egress" else d.ingress_rules
    if rules:
        return rules, tuple(r.split("#", 1)[0] for r in rules)
    if _side_ok(d, side):
        return (), ()
    return (), d.egress_policies if side == "egress" else d.ingress_policies


def _explain(a: Decision, b: Decision) -> tuple[Any, ...]:
    """(change, sides, old rules, new rules, old policies, new policies) of a verdict flip."""
    sides = tuple(s for s in SIDES if _side_ok(a, s) != _side_ok(b, s))
    old = [_responsible(a, s) for s in sides]
    new = [_responsible(b, s) for s in sides]
    return (
        "allowed" if b.is_allowed else "denied",
        sides,
        tuple(sorted({r for rules, _ in old for r in rules})),
        tuple(sorted({r for rules, _ in new for r in rules})),
        tuple(sorted({p for _, ps in old for p in ps})),
        tuple(sorted({p for _, ps in new for p in ps})),
    )


def compile_pair(
    old: Sequence[NetworkPolicy], new: Sequence[NetworkPolicy], inventory: Inventory
) -> tuple[PolicySet, PolicySet]:
    """Both sets compiled, for judging observed flows (``ShadowRun(new, inv, old)``)."""
    return compile_policies(old, inventory), compile_policies(new, inventory)


# ---------------------------------------------------------------------------
# Observed flows (shadow replay of both sets)
# ---------------------------------------------------------------------------

_FLOW_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
_NON_POD = frozenset({"world", "host", "cluster_infra"})


class FlowReplay:
    """Replay flow batches against NEW with OLD as baseline, and collect the observed universe.

    The judging is :class:`recommender.shadow.core.ShadowRun`'s, so a flow gets the
    same verdict here as in ``netpol shadow``.
    """

    def __init__(self, old: Engine, new: Engine, inventory: Inventory) -> None:
        from recommender.shadow.core import ShadowRun

        # Every engine answers decide/selecting as PolicySet does (shadow relies on it).
        self.run = ShadowRun(cast(PolicySet, new), inventory, baseline=cast(PolicySet, old))
        self.ports: set[tuple[int, str]] = set()
        self.ips: set[str] = set()

    def add(self, batch: Any) -> None:
        """Judge one FLOW_COLUMNS batch and note its ports and external addresses."""
        self.run.evaluate(batch)
        requests = batch[batch["is_reply"].map(lambda v: v is not True)]
        for port, proto in zip(
            requests["dst_port"].tolist(), requests["protocol"].tolist(), strict=True
        ):
            if proto in _FLOW_PROTOCOLS and port is not None and port == port:
                self.ports.add((int(port), str(proto)))
        for side in ("src", "dst"):
            kinds = requests[f"{side}_kind"].tolist()
            ips = requests[f"{side}_ip"].tolist()
            self.ips.update(
                str(ip)
                for k, ip in zip(kinds, ips, strict=True)
                if k in _NON_POD and isinstance(ip, str) and ip
            )

    def changes(self) -> list[dict[str, Any]]:
        """Observed edges whose verdict differs between OLD (baseline) and NEW."""
        table = self.run.edge_table()
        if table.empty:
            return []
        mask = (table["outcome"] != "cni_dropped") & (table["baseline"] != table["outcome"])
        rows = []
        for row in table[mask].to_dict(orient="records"):
            row["port"] = (
                None if row["port"] is None or row["port"] != row["port"] else int(row["port"])
            )
            row["old"], row["new"] = row.pop("baseline"), row.pop("outcome")
            rows.append(row)
        return rows

    def totals(self) -> dict[str, Any]:
        """Record and connection counts of the replay."""
        t = self.run.totals
        return {
            "records": t.records,
            "request_records": t.requests,
            "connections": t.connections,
            "cni_dropped_records": t.cni_dropped,
        }


# ---------------------------------------------------------------------------
# Grouping for reports
# ---------------------------------------------------------------------------


def group_changes(changes: Sequence[ReachChange]) -> list[dict[str, Any]]:
    """One row per (change, source, destination, sides, responsible), ports merged into ranges.

    >>> c = [ReachChange("a", "b", p, "TCP", "denied", last, ("ingress",), (), (), ("x",), ())
    ...      for p, last in ((1, 79), (80, 80), (81, 65535))]
    >>> group_changes(c)[0]["ports"]
    ['TCP 1-65535']
    """
    groups: dict[tuple[Any, ...], list[ReachChange]] = {}
    for c in changes:
        key = (
            c.change,
            c.src,
            c.dst,
            c.sides,
            c.old_policies,
            c.new_policies,
            c.old_rules,
            c.new_rules,
            c.own_node,
        )
        groups.setdefault(key, []).append(c)
    rows = []
    for key, items in groups.items():
        change, src, dst, sides, old_p, new_p, old_r, new_r, own = key
        row: dict[str, Any] = {
            "change": change,
            "src": src,
            "dst": dst,
            "ports": _ranges(items),
            "sides": list(sides),
            "old_policies": list(old_p),
            "new_policies": list(new_p),
            "old_rules": list(old_r),
            "new_rules": list(new_r),
            "probes": len(items),
        }
        if own:
            row["own_node"] = True
        rows.append(row)
    rows.sort(key=lambda r: (r["change"], r["src"], r["dst"], r["ports"]))
    return rows


def _ranges(items: Sequence[ReachChange]) -> list[str]:
    spans: list[list[Any]] = []
    for c in sorted(items, key=lambda c: (protocol_order(c.protocol), c.port)):
        if spans and spans[-1][0] == c.protocol and spans[-1][2] + 1 == c.port:
            spans[-1][2] = c.port_last
        else:
            spans.append([c.protocol, c.port, c.port_last])
    return [f"{p} {a}" if a == b else f"{p} {a}-{b}" for p, a, b in spans]
