"""Semantic diff of policy sets of every kind: NetworkPolicy, Cilium and ClusterNetworkPolicy.

Both sets are compiled with :func:`recommender.semantics.cnp.compile_all_kinds`,
the engine ``netpol shadow`` uses, so a reachability gets the same verdict here
as a flow there. The universe is the v1 one (:mod:`recommender.diff.universe`)
with what the other kinds can name:

* address regions cut by Cilium ``toCIDR``/``toCIDRSet``/``fromCIDR``/``fromCIDRSet``
  (with ``except``) and ClusterNetworkPolicy ``networks``, and one region per
  address the DNS evidence names (``toFQDNs`` and ``domainNames`` match an
  address by the names recorded for it, so each such address is its own probe);
* the entities: ``world`` (every address region), ``kube-apiserver`` (the
  ``default/kubernetes`` endpoints, or one synthetic endpoint when the
  inventory has none), ``host`` and ``remote-node`` (one host probe per node,
  nodes only named by pods included: seen from a pod, the probe of its own node
  is ``host``, every other one ``remote-node``);
* port regions cut by Cilium ``toPorts`` and ClusterNetworkPolicy ``protocols``
  as well as by NetworkPolicy ports.

Pruning is the v1 diff's, generalised: one side of an endpoint depends only on
the engine kind and the rules (written canonically, without names or rule ids)
of the policies of every kind that select it for that direction, plus the DNS
evidence of the set. Only pairs where the source's egress side or the
destination's ingress side differs are evaluated, on every port region of the
pair.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from recommender.diff.core import (
    SIDES,
    DiffResult,
    Engine,
    ReachChange,
    Universe,
    _rule_key,
)
from recommender.diff.universe import (
    POLICY_PROTOCOLS,
    external_universe,
    port_probes,
    port_regions,
    protocol_order,
)
from recommender.model import Inventory, LabelSelector, NetworkPolicy
from recommender.semantics import Decision, Endpoint, PolicySet, endpoint_for_ip
from recommender.semantics.cilium import CiliumPolicy, CiliumPolicySet
from recommender.semantics.cnp import ClusterPolicySet, compile_all_kinds
from recommender.semantics.cnp_rules import ClusterPolicy
from recommender.semantics.endpoints import IPAddress
from recommender.semantics.reachability import WorkloadRep, workload_universe

#: The key of the synthetic kube-apiserver probe (inventory without its endpoints).
APISERVER_KEY = "cluster_infra:kube-apiserver"


@dataclass(frozen=True)
class PolicyKinds:
    """One side of a diff: its policies of every kind."""

    policies: tuple[NetworkPolicy, ...] = ()
    cilium: tuple[CiliumPolicy, ...] = ()
    cluster: tuple[ClusterPolicy, ...] = ()

    @property
    def other_kinds(self) -> bool:
        """True when the set holds a CiliumNetworkPolicy or a ClusterNetworkPolicy."""
        return bool(self.cilium or self.cluster)

    def __len__(self) -> int:
        return len(self.policies) + len(self.cilium) + len(self.cluster)

    def counts(self) -> dict[str, int]:
        """Objects per kind (kinds with none are left out)."""
        out = {
            "NetworkPolicy": len(self.policies),
            "CiliumNetworkPolicy": len(self.cilium),
            "ClusterNetworkPolicy": len(self.cluster),
        }
        return {k: v for k, v in out.items() if v}

    def compile(self, inventory: Inventory) -> Engine:
        """The engine shadow would use for this set."""
        return compile_all_kinds(self.policies, self.cilium, self.cluster, inventory)


# ---------------------------------------------------------------------------
# Universe
# ---------------------------------------------------------------------------


def kind_blocks(kinds: Iterable[PolicyKinds]) -> list[str]:
    """CIDRs (and excepts) of Cilium and ClusterNetworkPolicy peers, and DNS-evidence addresses."""
    out: list[str] = []
    for k in kinds:
        for p in k.cilium:
            for rules in p.sections.values():
                for r in rules or ():
                    for net, excepts in r.networks:
                        out += [str(net), *map(str, excepts)]
        for c in k.cluster:
            for cr in (*c.ingress, *c.egress):
                out += [str(n) for peer in cr.peers for n in peer.networks]
    return out


def _dns_addresses(engines: Iterable[Engine]) -> list[str]:
    """Every address a set's DNS evidence names, as a one-address block."""
    out: set[str] = set()
    for ps in engines:
        for cache in _dns_caches(ps):
            out.update(cache)
    return [f"{ip}/{128 if ':' in ip else 32}" for ip in sorted(out)]


def _dns_caches(ps: Engine) -> list[dict[str, tuple[str, ...]]]:
    if isinstance(ps, ClusterPolicySet):
        return [ps._dns, *_dns_caches(ps.inner)]
    if isinstance(ps, CiliumPolicySet):
        return [dict(ps.dns_cache)]
    return []


def kind_port_cuts(kinds: Iterable[PolicyKinds]) -> set[tuple[int, str]]:
    """Port cuts of Cilium ``toPorts`` and ClusterNetworkPolicy ``protocols``."""
    out: set[tuple[int, str]] = set()
    for k in kinds:
        for p in k.cilium:
            for rules in p.sections.values():
                out |= _cilium_cuts(rules or ())
        for c in k.cluster:
            out |= _cnp_cuts((*c.ingress, *c.egress))
    return out


def _cilium_cuts(rules: Iterable[Any]) -> set[tuple[int, str]]:
    out: set[tuple[int, str]] = set()
    for r in rules:
        for port in r.ports or ():
            if port.first is None:
                continue  # every port, or a named port (declared ports cut for it)
            last = port.last if port.last is not None else port.first
            # "If omitted or empty, any protocol matches."
            for proto in (port.protocol,) if port.protocol else POLICY_PROTOCOLS:
                out.update(((port.first, proto), (last + 1, proto)))
    return out


def _cnp_cuts(rules: Iterable[Any]) -> set[tuple[int, str]]:
    out: set[tuple[int, str]] = set()
    for r in rules:
        for port in r.protocols or ():
            if port.protocol is None or port.first is None:
                continue
            last = port.last or port.first
            out.update(((port.first, port.protocol), (last + 1, port.protocol)))
    return out


def build_kinds_universe(
    old: PolicyKinds,
    new: PolicyKinds,
    inventory: Inventory,
    observed_ports: Iterable[tuple[int, str]] = (),
    observed_ips: Iterable[str] = (),
    compiled: tuple[Engine, Engine] | None = None,
) -> Universe:
    """The universe for comparing two sets of any kinds on ``inventory``."""
    engines = compiled or (old.compile(inventory), new.compile(inventory))
    workloads = workload_universe(inventory)
    v1 = [*old.policies, *new.policies]
    seen_ports = tuple(sorted({(int(p), str(proto).upper()) for p, proto in observed_ports}))
    declared = {p for w in workloads for p in w.ports}
    extra = [*declared, *seen_ports, *kind_port_cuts((old, new))]
    ports = tuple(p for p in port_probes(v1, extra) if 1 <= p[0] <= 65535)
    ips = tuple(sorted(set(observed_ips)))
    blocks = [*kind_blocks((old, new)), *_dns_addresses(engines)]
    externals = {
        r.key: r
        for rep in external_universe(v1, inventory, ips, blocks)
        if (r := _world_address(rep, inventory)) is not None
    }
    for rep in _entity_probes(inventory, externals.values()):
        externals.setdefault(rep.key, rep)
    return Universe(
        tuple(workloads),
        tuple(externals[k] for k in sorted(externals)),
        ports,
        seen_ports,
        ips,
    )


def _world_address(rep: WorkloadRep, inventory: Inventory, tries: int = 16) -> WorkloadRep | None:
    """A region's probe at an address of the region that is outside the cluster.

    An ipBlock judges an address alone, but a Cilium CIDR or ``world`` entity
    matches only "endpoints outside of the cluster": a region's first address
    may be a node, the apiserver or a pod-network address (probed as such, or
    no world endpoint at all). A region inside a node's pod CIDR, or one
    address that is not outside, holds no world endpoint and is dropped;
    otherwise the probe moves to the first outside address among the next ones.
    """
    if rep.endpoint.kind != "world" or rep.endpoint.address is None:
        return rep
    first = rep.endpoint.address
    last = _region_last(rep.key.split(":", 1)[1], first)
    nets = [ipaddress.ip_network(c, strict=False) for n in inventory.nodes for c in n.pod_cidrs]
    pod_nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = [
        *ipaddress.collapse_addresses(n for n in nets if n.version == 4),
        *ipaddress.collapse_addresses(n for n in nets if n.version == 6),
    ]
    if any(first.version == n.version and first in n and last in n for n in pod_nets):
        return None
    for step in range(min(tries, int(last) - int(first) + 1)):
        addr = first + step
        if endpoint_for_ip(str(addr), inventory).kind == "world":
            return rep if step == 0 else replace(rep, endpoint=Endpoint("world", ip=str(addr)))
    return None if first == last else rep


def _region_last(region: str, first: IPAddress) -> IPAddress:
    """The last address of a region written as ``a/len`` or ``first-last``."""
    if "-" in region:
        return ipaddress.ip_address(region.split("-", 1)[1])
    if "/" in region:
        return ipaddress.ip_network(region, strict=False).broadcast_address
    return first


def _entity_probes(inventory: Inventory, have: Iterable[WorkloadRep]) -> list[WorkloadRep]:
    """Host probes for nodes only pods name, and a kube-apiserver probe if there is none."""
    have = list(have)
    nodes = {rep.endpoint.node for rep in have if rep.endpoint.kind == "host"}
    out = []
    for pod in sorted(inventory.pods, key=lambda p: (p.node or "", p.name)):
        if pod.node and pod.node not in nodes and pod.host_ip:
            nodes.add(pod.node)
            ep = Endpoint("host", ip=pod.host_ip, node=pod.node)
            out.append(WorkloadRep(f"host:{pod.node}", "", ep, ()))
    if not any(rep.endpoint.kind == "cluster_infra" for rep in have):
        out.append(WorkloadRep(APISERVER_KEY, "", Endpoint("cluster_infra"), ()))
    return out


# ---------------------------------------------------------------------------
# Side signatures
# ---------------------------------------------------------------------------


def _no_id(rule: Any) -> str:
    """A compiled Cilium or ClusterNetworkPolicy rule without its id (names never decide)."""
    return repr(replace(rule, rule_id=""))


def kind_side_signature(ps: Engine, ep: Endpoint, side: str) -> object:
    """What decides one side of ``ep`` in ``ps``: engine kind, isolation, rules, DNS evidence."""
    if isinstance(ps, ClusterPolicySet):
        tiers = sorted(
            (p.tier, p.priority, tuple(_no_id(r) for r in p.rules(side)))
            for p in ps.cluster
            if p.rules(side) and p.selects(ep)
        )
        inner = kind_side_signature(ps.inner, ep, side)
        if not tiers and inner is None:
            return None
        return ("tiers", tuple(tiers), tuple(sorted(ps._dns.items())), inner)
    v1 = ps.v1 if isinstance(ps, CiliumPolicySet) else ps
    selecting = v1.selecting(ep, side)
    allows = {
        repr(_rule_key(cp.policy.namespace, r))
        for cp in selecting
        for r in (cp.policy.egress if side == "egress" else cp.policy.ingress) or ()
    }
    if not isinstance(ps, CiliumPolicySet):
        return ("v1", tuple(sorted(allows))) if selecting else None
    mine = [p for p in ps.cilium if p.selects(ep)]
    if not mine and not selecting:
        return None
    isolated = bool(selecting) or any(p.isolates(side) for p in mine)
    allows |= {_no_id(r) for p in mine for r in p.sections[side] or ()}
    denies = {_no_id(r) for p in mine for r in p.sections[f"{side}Deny"] or ()}
    dns = tuple(sorted(ps.dns_cache.items())) if side == "egress" else ()
    return ("cilium", isolated, tuple(sorted(allows)), tuple(sorted(denies)), dns)


# ---------------------------------------------------------------------------
# The diff
# ---------------------------------------------------------------------------


def diff_kinds(
    old: PolicyKinds,
    new: PolicyKinds,
    inventory: Inventory,
    universe: Universe | None = None,
    compiled: tuple[Engine, Engine] | None = None,
) -> DiffResult:
    """Compare two sets of any kinds over ``universe`` (built from the inventory when None).

    Returns every reachability whose verdict changes, sorted by (change, source,
    destination, protocol, port), with the rules and policies responsible.
    """
    old_ps, new_ps = compiled or (old.compile(inventory), new.compile(inventory))
    uni = universe or build_kinds_universe(old, new, inventory, compiled=(old_ps, new_ps))
    every = [*uni.workloads, *uni.externals]
    changed = {
        side: {
            rep.key
            for rep in uni.workloads
            if kind_side_signature(old_ps, rep.endpoint, side)
            != kind_side_signature(new_ps, rep.endpoint, side)
        }
        for side in SIDES
    }
    probes = _KindPorts((old_ps, new_ps))
    explained: dict[tuple[Decision, Decision], tuple[Any, ...]] = {}
    changes: list[ReachChange] = []
    pairs = decisions = 0
    to_changed = [rep for rep in every if rep.key in changed["ingress"]]
    for src in every:
        for dst in every if src.key in changed["egress"] else to_changed:
            if src.key == dst.key and src.namespace:
                continue  # a pod cannot block access to itself
            pairs += 1
            for port, last, proto in probes.of(src, dst):
                decisions += 1
                a = old_ps.decide(src.endpoint, dst.endpoint, port, proto)
                b = new_ps.decide(src.endpoint, dst.endpoint, port, proto)
                if a.is_allowed != b.is_allowed:
                    why = explained.get((a, b))
                    if why is None:
                        why = explained[(a, b)] = explain_flip(a, b)
                    change, sides, old_r, new_r, old_p, new_p = why
                    own = _own_node(src.endpoint, dst.endpoint)
                    changes.append(
                        ReachChange(
                            src.key,
                            dst.key,
                            port,
                            proto,
                            change,
                            last,
                            sides,
                            old_r,
                            new_r,
                            old_p,
                            new_p,
                            own,
                        )
                    )

        _forget(old_ps, new_ps)
    changes.sort(key=lambda c: (c.change, c.src, c.dst, protocol_order(c.protocol), c.port))
    return DiffResult(uni, changes, {s: len(v) for s, v in changed.items()}, pairs, decisions)


def _own_node(src: Endpoint, dst: Endpoint) -> bool:
    """True for a pod and the node it runs on (either way round)."""
    pod, other = (src, dst) if src.kind == "pod" else (dst, src)
    return pod.kind == "pod" and other.kind == "host" and bool(pod.node) and other.node == pod.node


def _forget(*engines: Engine) -> None:
    """Drop the engines' decision memos: a diff never asks the same tuple twice."""
    for ps in engines:
        if isinstance(ps, PolicySet):
            ps._decisions.clear()
        else:
            ps._memo.clear()
            _forget(ps.inner if isinstance(ps, ClusterPolicySet) else ps.v1)


class _KindPorts:
    """Port regions per (source, destination) pair, cut by the policies of every kind
    selecting the source's egress or the destination's ingress, and the destination's
    declared ports (named ports resolve there); one probe per region is exact."""

    def __init__(self, sets: tuple[Engine, Engine]) -> None:
        self.sets = sets
        self.base = {(1, p) for p in POLICY_PROTOCOLS}
        self._side: dict[tuple[str, str], frozenset[tuple[int, str]]] = {}
        self._pairs: dict[tuple[object, object], tuple[tuple[int, int, str], ...]] = {}

    def _cuts(self, rep: WorkloadRep, side: str) -> frozenset[tuple[int, str]]:
        hit = self._side.get((rep.key, side))
        if hit is None:
            cuts: set[tuple[int, str]] = set()
            for ps in self.sets:
                cuts |= _engine_cuts(ps, rep.endpoint, side)
            if side == "ingress":
                cuts.update(
                    c for port, proto in rep.ports for c in ((port, proto), (port + 1, proto))
                )
            hit = self._side[(rep.key, side)] = frozenset(cuts)
        return hit

    def of(self, src: WorkloadRep, dst: WorkloadRep) -> tuple[tuple[int, int, str], ...]:
        """(first port, last port, protocol) of every region for this pair."""
        key = (self._cuts(src, "egress"), self._cuts(dst, "ingress"))
        hit = self._pairs.get(key)
        if hit is None:
            probes = sorted(
                {p for p in self.base | key[0] | key[1] if 1 <= p[0] <= 65535},
                key=lambda p: (protocol_order(p[1]), p[0]),
            )
            regions = port_regions(probes)
            hit = self._pairs[key] = tuple((p, regions[(p, proto)], proto) for p, proto in probes)
        return hit


def _engine_cuts(ps: Engine, ep: Endpoint, side: str) -> set[tuple[int, str]]:
    if isinstance(ps, ClusterPolicySet):
        mine = [p for p in ps.cluster if p.rules(side) and p.selects(ep)]
        return _cnp_cuts(r for p in mine for r in p.rules(side)) | _engine_cuts(ps.inner, ep, side)
    v1 = ps.v1 if isinstance(ps, CiliumPolicySet) else ps
    rules = [
        r
        for cp in v1.selecting(ep, side)
        for r in (cp.policy.egress if side == "egress" else cp.policy.ingress) or ()
    ]
    out = set(
        port_probes([NetworkPolicy("", "", LabelSelector(), ("Ingress",), ingress=tuple(rules))])
    )
    if isinstance(ps, CiliumPolicySet):
        for p in ps.cilium:
            if p.selects(ep):
                out |= _cilium_cuts((*(p.sections[side] or ()), *(p.sections[f"{side}Deny"] or ())))
    return out


# ---------------------------------------------------------------------------
# Explanations
# ---------------------------------------------------------------------------

#: ``semantics.cilium`` names the deny rules that won in the decision's reason.
_CILIUM_DENY = re.compile(r"denied by (.+?) \(deny rules take precedence\)")


def _side_ok(d: Decision, side: str) -> bool:
    if d.is_allowed:
        return True
    if d.verdict != "denied":
        return False  # unknown: neither side can be vouched for
    return d.denied_by not in (side, "both")


def _responsible(d: Decision, side: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(rules, policies) deciding one side: the allowing rules, or what denies."""
    rules = d.egress_rules if side == "egress" else d.ingress_rules
    policies = d.egress_policies if side == "egress" else d.ingress_policies
    if _side_ok(d, side):
        return rules, tuple(sorted({r.split("#", 1)[0] for r in rules}))
    denies = _CILIUM_DENY.search(d.reason or "")
    if denies:
        ids = tuple(i for i in denies.group(1).split(", ") if f"#{side}Deny" in i)
        if ids:
            return ids, tuple(sorted({r.split("#", 1)[0] for r in ids}))
    if rules and all("ClusterNetworkPolicy/" in r for r in rules):
        return rules, tuple(sorted({r.split("#", 1)[0] for r in rules}))  # a tier's Deny
    return (), policies


def explain_flip(a: Decision, b: Decision) -> tuple[Any, ...]:
    """(change, sides, old rules, new rules, old policies, new policies) of a verdict flip."""
    sides = tuple(s for s in SIDES if _side_ok(a, s) != _side_ok(b, s)) or SIDES
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
