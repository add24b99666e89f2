"""Workload-level reachability over a finite universe, with the exact semantics engine.

The universe is every workload of the inventory (one representative pod each,
since a controller's pods share one template) times the ports the destination
declares. That makes "what does this policy set allow?" finite and exact for
this inventory; ports that no container declares are not enumerated, and the
caller may add observed ports.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from recommender.model import Inventory, NetworkPolicy, Pod
from recommender.semantics import Endpoint, PolicySet, endpoint_for_pod
from recommender.semantics.resolve import is_live

Triple = tuple[str, str, int, str]  # (src workload, dst workload, port, protocol)


@dataclass(frozen=True)
class WorkloadRep:
    """One workload: ``key`` is ``namespace/kind/name``; ports are (port, protocol)."""

    key: str
    namespace: str
    endpoint: Endpoint
    ports: tuple[tuple[int, str], ...]


def workload_universe(inventory: Inventory) -> list[WorkloadRep]:
    """One representative per (namespace, workload) of live, pod-network pods."""
    groups: dict[str, list[Pod]] = {}
    for pod in inventory.pods:
        if is_live(pod) and not pod.host_network and pod.ips:
            groups.setdefault(f"{pod.namespace}/{pod.workload}", []).append(pod)
    reps = []
    for key in sorted(groups):
        pods = sorted(groups[key], key=lambda p: p.name)
        ports = sorted({(cp.port, cp.protocol) for p in pods for cp in p.container_ports})
        reps.append(
            WorkloadRep(key, pods[0].namespace, endpoint_for_pod(pods[0], inventory), tuple(ports))
        )
    return reps


def allowed_triples(
    policies: PolicySet,
    universe: Sequence[WorkloadRep],
    extra_ports: Iterable[tuple[int, str]] = (),
    namespaces: Iterable[str] | None = None,
) -> set[Triple]:
    """Every (src, dst, port, protocol) of the universe that ``policies`` allow.

    ``extra_ports`` are probed on every destination as well (for example the
    ports seen in observations that no container declares). With
    ``namespaces``, only pairs with at least one end in those namespaces count.
    """
    extra = tuple(sorted(set(extra_ports)))
    scope = None if namespaces is None else set(namespaces)
    out: set[Triple] = set()
    for dst in universe:
        ports = tuple(sorted(set(dst.ports) | set(extra)))
        for src in universe:
            if scope is not None and src.namespace not in scope and dst.namespace not in scope:
                continue
            # Within one workload the question is replica-to-replica, not a pod to
            # itself (which no policy can block): drop the IP so the self exemption
            # does not apply.
            src_ep = replace(src.endpoint, ip=None) if src is dst else src.endpoint
            for port, proto in ports:
                if policies.decide_once(src_ep, dst.endpoint, port, proto).verdict == "allowed":
                    out.add((src.key, dst.key, port, proto))
    return out


def admitted_external(
    policies: Sequence[NetworkPolicy],
    observed: Iterable[str],
    direction: str = "egress",
    legitimate_cidrs: Iterable[str] = (),
) -> tuple[int, int]:
    """Address space that ipBlocks admit in one direction, and how much lies beyond the known.

    "Known" is the ``observed`` addresses plus ``legitimate_cidrs`` (for example
    "the internet" as the legitimate source of a public ingress). Blocks are
    de-duplicated; overlapping blocks are counted once per distinct
    (cidr, except) pair, which can only overstate, never hide, permissiveness.

    Returns
    -------
    (admitted, beyond_known)
    """
    blocks = set()
    for p in policies:
        for rule in (p.egress if direction == "egress" else p.ingress) or ():
            for peer in rule.peers or ():
                if peer.ip_block is not None:
                    blocks.add((peer.ip_block.cidr, tuple(sorted(peer.ip_block.except_))))
    known_nets = [ipaddress.ip_network(c, strict=False) for c in legitimate_cidrs]
    ips = [ipaddress.ip_address(ip) for ip in set(observed)]
    total = beyond = 0
    for cidr, excepts in sorted(blocks):
        net = ipaddress.ip_network(cidr, strict=False)
        holes = [ipaddress.ip_network(e, strict=False) for e in excepts]
        size = net.num_addresses - sum(h.num_addresses for h in holes)
        total += size
        if any(
            net.version == k.version and net.subnet_of(k)  # type: ignore[arg-type]
            for k in known_nets
        ):
            continue  # wholly inside a legitimate range
        inside = sum(
            1
            for ip in ips
            if ip.version == net.version and ip in net and not any(ip in h for h in holes)
        )
        beyond += size - inside
    return total, beyond
