"""Probe universe for diff and lint: which ports and non-pod addresses to ask the engine about.

Workloads come from :func:`recommender.semantics.reachability.workload_universe`. This
module adds what makes the question finite *and* exact for the policies at
hand: port and address probes that stand for whole regions of the port and
address space, cut where some policy entry starts or ends.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from recommender.model import Inventory, NetworkPolicy
from recommender.semantics import Endpoint, endpoint_for_ip
from recommender.semantics.reachability import WorkloadRep

#: Protocols a NetworkPolicy port can name, in report order.
POLICY_PROTOCOLS: tuple[str, ...] = ("TCP", "UDP", "SCTP")


def _policy_ports(
    policies: Iterable[NetworkPolicy],
) -> Iterable[tuple[str, int | str | None, int | None]]:
    for p in policies:
        for rule in (*(p.ingress or ()), *(p.egress or ())):
            for port in rule.ports or ():
                yield (port.protocol or "TCP").upper(), port.port, port.end_port


def port_probes(
    policies: Iterable[NetworkPolicy], extra: Iterable[tuple[int, str]] = ()
) -> tuple[tuple[int, str], ...]:
    """One port per region of the port space that the policies' port entries cut out.

    Every numeric ``port``/``endPort`` entry splits the port space of its protocol
    at ``port`` and ``endPort + 1``; ``extra`` ports (declared or observed) are
    regions of their own. One representative per region (its first port) makes
    numeric port matching exact over the probes: two ports of a region are
    admitted by exactly the same entries. Named ports resolve to declared container
    ports, which callers pass in ``extra``. Every protocol is probed (port 1 at
    least), so a rule without ports is told apart from a TCP-only one.

    >>> from recommender.model import LabelSelector, PolicyPort, Rule
    >>> rule = Rule(ports=(PolicyPort("TCP", 8000, 8080),))
    >>> p = NetworkPolicy("ns", "p", LabelSelector(), ("Ingress",), ingress=(rule,))
    >>> port_probes([p], [(53, "UDP")])
    ((1, 'TCP'), (8000, 'TCP'), (8081, 'TCP'), (1, 'UDP'), (53, 'UDP'), (54, 'UDP'), (1, 'SCTP'))
    """
    cuts: dict[str, set[int]] = {proto: {1} for proto in POLICY_PROTOCOLS}
    for proto, port, end in _policy_ports(policies):
        bounds = cuts.setdefault(proto, {1})
        if isinstance(port, int):
            bounds.update((port, (end if end is not None else port) + 1))
    for port, proto in extra:
        cuts.setdefault(proto.upper(), {1}).update((port, port + 1))
    return tuple(
        (port, proto)
        for proto in sorted(cuts, key=protocol_order)
        for port in sorted(cuts[proto])
        if 1 <= port <= 65535
    )


def protocol_order(proto: str) -> tuple[int, str]:
    """Sort key: TCP, UDP, SCTP, then anything else by name."""
    order = {p: i for i, p in enumerate(POLICY_PROTOCOLS)}
    return order.get(proto, len(order)), proto


def port_regions(probes: Sequence[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """The last port of the region each probe of :func:`port_probes` stands for.

    >>> port_regions(((1, "TCP"), (80, "TCP"), (81, "TCP")))
    {(1, 'TCP'): 79, (80, 'TCP'): 80, (81, 'TCP'): 65535}
    """
    out: dict[tuple[int, str], int] = {}
    for proto in sorted({p for _, p in probes}):
        ports = sorted({port for port, p in probes if p == proto})
        for port, nxt in zip(ports, [*ports[1:], 65536], strict=True):
            out[(port, proto)] = nxt - 1
    return out


def _ip_blocks(policies: Iterable[NetworkPolicy]) -> Iterable[str]:
    for p in policies:
        for rule in (*(p.ingress or ()), *(p.egress or ())):
            for peer in rule.peers or ():
                if peer.ip_block is not None:
                    yield peer.ip_block.cidr
                    yield from peer.ip_block.except_


def address_probes(
    policies: Iterable[NetworkPolicy], extra_blocks: Iterable[str] = ()
) -> tuple[tuple[str, str], ...]:
    """One address per region of the address space the policies' ipBlocks cut out.

    Every ``cidr`` and ``except`` entry splits its family's address space at its
    first address and just after its last one; any two addresses of one region are
    inside exactly the same blocks, so one representative per region (its first
    address) makes ipBlock matching exact. ``extra_blocks`` are CIDRs of other
    policy kinds (Cilium ``toCIDRSet``, ClusterNetworkPolicy ``networks``) and the
    addresses a DNS cache names, which cut alike. Returns ``(address, region)``
    with the region as a CIDR when it is one, else ``first-last``. IPv4 is always
    probed; IPv6 only when some block is IPv6.

    >>> address_probes([])
    (('0.0.0.0', '0.0.0.0/0'),)
    """
    cuts: dict[int, set[int]] = {4: {0}}
    for text in (*_ip_blocks(policies), *extra_blocks):
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue  # validation reports it; the engine never compiles it
        bounds = cuts.setdefault(net.version, {0})
        bounds.add(int(net.network_address))
        bounds.add(int(net.broadcast_address) + 1)
    out = []
    for version in sorted(cuts):
        make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
        top = 2 ** (32 if version == 4 else 128)
        starts = sorted(v for v in cuts[version] if v < top)
        for first, nxt in zip(starts, [*starts[1:], top], strict=True):
            lo, hi = make(first), make(nxt - 1)
            nets = list(ipaddress.summarize_address_range(lo, hi))
            out.append((str(lo), str(nets[0]) if len(nets) == 1 else f"{lo}-{hi}"))
    return tuple(out)


def external_universe(
    policies: Iterable[NetworkPolicy],
    inventory: Inventory,
    observed_ips: Iterable[str] = (),
    extra_blocks: Iterable[str] = (),
) -> list[WorkloadRep]:
    """Non-pod endpoints to probe: ipBlock regions, observed addresses, nodes, apiserver.

    Keys are ``world:<region>``, ``host:<node or ip>`` and ``cluster_infra:<ip>``;
    the namespace is empty and no ports are declared. Observed addresses are
    classified against the inventory: an external one already lies in one of the
    probed regions (a world endpoint is judged by its address alone, and every
    address of a region is judged alike), so only node and apiserver addresses
    are added; pod addresses are workloads of the universe already.
    """
    reps: dict[str, WorkloadRep] = {}

    def add(key: str, ep: Endpoint) -> None:
        reps.setdefault(key, WorkloadRep(key, "", ep, ()))

    for ip, region in address_probes(policies, extra_blocks):
        add(f"world:{region}", Endpoint("world", ip=ip))
    for ip in sorted(set(observed_ips)):
        ep = endpoint_for_ip(ip, inventory)
        if ep.kind in ("cluster_infra", "host"):
            add(f"{ep.kind}:{ep.ip}", ep)
    for node in sorted(inventory.nodes, key=lambda n: n.name):
        if node.addresses:
            add(f"host:{node.name}", Endpoint("host", ip=node.addresses[0], node=node.name))
    for ip in sorted(
        {
            a
            for s in inventory.endpoint_slices
            if s.namespace == "default" and s.service == "kubernetes"
            for e in s.endpoints
            for a in e.addresses
        }
    ):
        add(f"cluster_infra:{ip}", Endpoint("cluster_infra", ip=ip))
    return [reps[k] for k in sorted(reps)]
