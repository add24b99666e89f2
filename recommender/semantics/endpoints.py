"""Evaluation endpoints: who is on each side of a flow, as the semantics need it.

An :class:`Endpoint` carries exactly what NetworkPolicy matching reads: the kind
(only ``pod`` endpoints can be selected by a policy or matched by a selector peer),
the pod's namespace and full labels, the namespace labels, one IP (for ipBlock),
and the container ports (for named ports on the destination).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

from recommender.labels import namespace_labels
from recommender.model import ContainerPort, Inventory, Pod

EndpointKind = Literal["pod", "host", "world", "cluster_infra", "unknown"]
ENDPOINT_KINDS: tuple[str, ...] = ("pod", "host", "world", "cluster_infra", "unknown")
#: Pods in these phases hold no IP any more (the IP may belong to another pod).
TERMINAL_PHASES: frozenset[str] = frozenset({"Succeeded", "Failed"})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Endpoint:
    """One side of a flow. Labels are sorted ``(key, value)`` tuples so the value hashes.

    Build pods with :func:`pod_endpoint` / :func:`endpoint_for_pod` and addresses
    with :func:`endpoint_for_ip`; ``Endpoint("world", ip="8.8.8.8")`` also works.
    ``name`` (``namespace/pod``) is for reports only and never affects a verdict.
    """

    kind: str
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    namespace_labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None
    ports: tuple[ContainerPort, ...] = ()
    name: str | None = field(default=None, compare=False)
    #: The node a pod runs on, or the node a ``host`` address belongs to. It decides
    #: the "own node" exception (see ``engine``); None when unknown.
    node: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ENDPOINT_KINDS:
            raise ValueError(f"endpoint kind must be one of {ENDPOINT_KINDS}, got {self.kind!r}")
        if self.kind == "pod" and not self.namespace:
            raise ValueError("a pod endpoint needs a namespace")
        # Hash once: endpoints are dictionary keys on the hot path of decide_many.
        key = (
            self.kind,
            self.namespace,
            self.labels,
            self.namespace_labels,
            self.ip,
            self.ports,
            self.node,
        )
        object.__setattr__(self, "_hash", hash(key))

    def __hash__(self) -> int:
        return self._hash  # type: ignore[attr-defined, no-any-return]

    @cached_property
    def selector_key(self) -> tuple[object, ...]:
        """What selector peers read: kind, namespace and labels (not IP, not ports)."""
        return (self.kind, self.namespace, self.labels, self.namespace_labels)

    @cached_property
    def label_map(self) -> dict[str, str]:
        """Pod labels as a dict."""
        return dict(self.labels)

    @cached_property
    def namespace_label_map(self) -> dict[str, str]:
        """Namespace labels as a dict (always with ``kubernetes.io/metadata.name`` for pods)."""
        return dict(self.namespace_labels)

    @cached_property
    def address(self) -> IPAddress | None:
        """``ip`` parsed, or None when absent or not an address."""
        if self.ip is None:
            return None
        try:
            return ipaddress.ip_address(self.ip)
        except ValueError:
            return None


def pod_endpoint(
    namespace: str,
    labels: Mapping[str, str],
    ns_labels: Mapping[str, str] | None = None,
    ip: str | None = None,
    ports: tuple[ContainerPort, ...] = (),
    name: str | None = None,
    node: str | None = None,
) -> Endpoint:
    """A pod endpoint from plain values; the namespace always carries its name label.

    >>> e = pod_endpoint("shop", {"app": "web"})
    >>> e.namespace_label_map
    {'kubernetes.io/metadata.name': 'shop'}
    """
    return Endpoint(
        kind="pod",
        namespace=namespace,
        labels=tuple(sorted(labels.items())),
        namespace_labels=tuple(sorted(namespace_labels(namespace, ns_labels).items())),
        ip=ip,
        ports=ports,
        name=name,
        node=node,
    )


def endpoint_for_pod(pod: Pod, inventory: Inventory, ip: str | None = None) -> Endpoint:
    """The endpoint of an inventory pod; ``ip`` picks one of a dual-stack pod's IPs.

    A hostNetwork pod becomes a ``host`` endpoint. The API reference says NetworkPolicy
    behaviour for hostNetwork pods is undefined, and that in "the most common
    implementation" the plugin "ignores hostNetwork pods when matching podSelector and
    namespaceSelector. Traffic to/from hostNetwork pods is treated the same as all other
    traffic to/from the node IP." We follow that common implementation.
    """
    address = ip or (pod.ips[0] if pod.ips else None)
    if pod.host_network:
        return Endpoint(kind="host", ip=address or pod.host_ip, name=pod.key, node=pod.node)
    ns = _index(inventory).namespaces.get(pod.namespace)
    return pod_endpoint(
        pod.namespace, pod.labels, ns, address, pod.container_ports, pod.key, pod.node
    )


def endpoint_for_ip(ip: str, inventory: Inventory) -> Endpoint:
    """Classify an address against the inventory.

    Order: a live pod with that IP (``pod``; ``unknown`` when several live pods claim
    it); a node address or a hostNetwork pod IP (``host``); an address behind the
    ``default/kubernetes`` service endpoints (``cluster_infra``); a Service VIP or an
    address inside a node's pod CIDR that no pod holds (``unknown``: policies are
    enforced on the backend pod after DNAT, and a vanished pod cannot be judged);
    anything else is ``world``. An unparsable address is ``unknown``.
    """
    index = _index(inventory)
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return Endpoint(kind="unknown", ip=ip)
    text = str(address)
    pods = index.pods_by_ip.get(text, [])
    if len(pods) == 1:
        return endpoint_for_pod(pods[0], inventory, ip=text)
    if len(pods) > 1:
        return Endpoint(kind="unknown", ip=text)
    if text in index.host_ips:
        return Endpoint(kind="host", ip=text, node=index.host_ips[text])
    if text in index.infra_ips:
        return Endpoint(kind="cluster_infra", ip=text)
    if text in index.service_ips or any(address in net for net in index.pod_cidrs):
        return Endpoint(kind="unknown", ip=text)
    return Endpoint(kind="world", ip=text)


def host_endpoint(ip: str, inventory: Inventory) -> Endpoint:
    """A node-side address that the flow source already calls "host".

    Hubble labels node traffic ``reserved:host``; with Cilium the address is often
    the node's router IP inside its pod CIDR (``cilium_host``), which no pod holds
    and which is not a node address. Such an address is the host of the node that
    owns the CIDR. A known node address keeps its node; anything else is a host
    of unknown node (never matched by the own-node exception).
    """
    index = _index(inventory)
    text = _norm(ip)
    if text in index.host_ips:
        return Endpoint(kind="host", ip=text, node=index.host_ips[text])
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return Endpoint(kind="unknown", ip=ip)
    for net, node in index.cidr_nodes:
        if address in net and text not in index.pods_by_ip:
            return Endpoint(kind="host", ip=text, node=node)
    return Endpoint(kind="host", ip=text)


@dataclass
class _InventoryIndex:
    namespaces: dict[str, Mapping[str, str]]
    pods_by_ip: dict[str, list[Pod]]
    host_ips: dict[str, str | None]  # address -> node name (None when unknown)
    infra_ips: frozenset[str]
    service_ips: frozenset[str]
    pod_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    cidr_nodes: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = ()


_INDEXES: dict[int, tuple[Inventory, _InventoryIndex]] = {}


def _index(inventory: Inventory) -> _InventoryIndex:
    """Lookup tables for one inventory, cached by identity (a few at most)."""
    hit = _INDEXES.get(id(inventory))
    if hit is not None and hit[0] is inventory:
        return hit[1]
    if len(_INDEXES) >= 4:
        _INDEXES.pop(next(iter(_INDEXES)))
    built = _build_index(inventory)
    _INDEXES[id(inventory)] = (inventory, built)
    return built


def _build_index(inv: Inventory) -> _InventoryIndex:
    pods_by_ip: dict[str, list[Pod]] = {}
    host_ips: dict[str, str | None] = {}
    for pod in inv.pods:
        if pod.phase in TERMINAL_PHASES:
            continue
        if pod.host_network:
            host_ips.update((_norm(ip), pod.node) for ip in pod.ips)
            continue
        for ip in pod.ips:
            pods_by_ip.setdefault(_norm(ip), []).append(pod)
        if pod.host_ip:
            host_ips[_norm(pod.host_ip)] = pod.node
    for node in inv.nodes:
        host_ips.update((_norm(a), node.name) for a in node.addresses)
    infra = {
        _norm(a)
        for s in inv.endpoint_slices
        if s.namespace == "default" and s.service == "kubernetes"
        for e in s.endpoints
        for a in e.addresses
    }
    return _InventoryIndex(
        namespaces={n.name: n.labels for n in inv.namespaces},
        pods_by_ip=pods_by_ip,
        host_ips=host_ips,
        infra_ips=frozenset(infra),
        service_ips=frozenset(_norm(ip) for s in inv.services for ip in s.cluster_ips),
        pod_cidrs=tuple(
            net for n in inv.nodes for c in n.pod_cidrs if (net := _net(c)) is not None
        ),
        cidr_nodes=tuple(
            (net, n.name) for n in inv.nodes for c in n.pod_cidrs if (net := _net(c)) is not None
        ),
    )


def _norm(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        return ip


def _net(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return None
