"""Workloads: (namespace, stable labels) identities built from the inventory.

Every pod of one workload carries the same stable labels, so a selector on
stable keys selects whole workloads. The owner (Deployment, StatefulSet, ...)
gives the readable, DNS-1123 and rollout-stable name.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from recommender.labels import encode_labels, namespace_labels, stable_labels
from recommender.model import ContainerPort, Inventory, Pod, Service

#: Names of policies the writer emits for every namespace; groups never take them.
RESERVED_NAMES: frozenset[str] = frozenset({"default-deny", "allow-dns", "kustomization"})
#: Longest generated name (leaves room for a ``-N`` suffix under the 63 limit).
MAX_NAME = 56
APISERVER_SERVICE = ("default", "kubernetes")


@dataclass(frozen=True)
class Workload:
    """Pods of one namespace sharing one set of stable labels."""

    namespace: str
    labels: tuple[tuple[str, str], ...]
    name: str
    owners: tuple[str, ...] = ()
    pods: tuple[str, ...] = ()
    host_network: bool = False
    port_sets: tuple[tuple[ContainerPort, ...], ...] = field(default=(), hash=False)

    @property
    def key(self) -> str:
        """``namespace/{"k":"v"}``: the identity used everywhere in the core."""
        return workload_key(self.namespace, dict(self.labels))

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def workload_key(namespace: str, labels: Mapping[str, str]) -> str:
    """Identity key of (namespace, stable labels).

    >>> workload_key("shop", {"app": "web", "pod-template-hash": "x"})
    'shop/{"app":"web"}'
    """
    return f"{namespace}/{encode_labels(stable_labels(labels))}"


def dns1123(text: str, limit: int = MAX_NAME) -> str:
    """Lower-case DNS-1123 label made from ``text``.

    >>> dns1123("My_App.v2"), dns1123("--"), dns1123("a" * 80)[-3:]
    ('my-app-v2', 'workload', 'aaa')
    """
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower())
    name = re.sub(r"-+", "-", name).strip("-")[:limit].strip("-")
    return name or "workload"


def _readable_name(pods: list[Pod], labels: Mapping[str, str]) -> str:
    """Most common top owner name; else the ``app`` label; else the first pod name."""
    owners = Counter(p.owner_name for p in pods if p.owner_name and p.owner_kind != "Node")
    if owners:
        best = min(owners.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        return dns1123(best)
    for key in ("app.kubernetes.io/name", "app", "k8s-app", "name"):
        if labels.get(key):
            return dns1123(labels[key])
    return dns1123(min(p.name for p in pods))


@dataclass
class WorkloadIndex:
    """Lookups over an inventory that the recommender needs."""

    inventory: Inventory
    workloads: dict[str, Workload] = field(default_factory=dict)
    by_namespace: dict[str, list[Workload]] = field(default_factory=dict)
    ns_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    pod_workload: dict[str, str] = field(default_factory=dict)
    ip_workload: dict[str, str | None] = field(default_factory=dict)
    services_by_ip: dict[str, Service] = field(default_factory=dict)
    node_ips: tuple[str, ...] = ()
    apiserver_ips: tuple[str, ...] = ()
    apiserver_ports: dict[tuple[str, int], int] = field(default_factory=dict)
    pod_node: dict[str, str | None] = field(default_factory=dict)  # pod key -> node name
    ip_node: dict[str, str] = field(default_factory=dict)  # node address -> node name
    _cluster_ips: list[str] | None = field(default=None, repr=False)

    def in_namespace(self, namespace: str) -> list[Workload]:
        """Workloads of a namespace, sorted by name then key."""
        return self.by_namespace.get(namespace, [])

    def namespace_labels(self, namespace: str) -> dict[str, str]:
        return self.ns_labels.get(namespace) or namespace_labels(namespace, None)

    def cluster_ips(self) -> list[str]:
        """Every pod, node and Service address: a CIDR must not cover them (computed once)."""
        if self._cluster_ips is None:
            out = set(self.ip_workload) | set(self.node_ips) | set(self.services_by_ip)
            self._cluster_ips = sorted(out)
        return self._cluster_ips

    def node_address(self, node: str) -> str | None:
        """The lowest address the inventory knows for ``node`` (Node or pod ``hostIP``)."""
        found = sorted(ip for ip, name in self.ip_node.items() if name == node)
        return found[0] if found else None

    def nodes_of(self, key: str) -> set[str]:
        """Nodes the pods of workload ``key`` run on, as far as the inventory says."""
        wl = self.workloads.get(key)
        pods = wl.pods if wl is not None else ()
        return {n for p in pods if (n := self.pod_node.get(p))}

    def pod_networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Pod CIDRs of the nodes, sorted."""
        nets = {
            ipaddress.ip_network(c, strict=False) for n in self.inventory.nodes for c in n.pod_cidrs
        }
        return sorted(nets, key=lambda n: (n.version, int(n.network_address), n.prefixlen))

    def backends(self, service: Service) -> list[Workload]:
        """Workloads behind a Service (selector, else EndpointSlice targets)."""
        keys: set[str] = set()
        if service.selector:
            sel = dict(service.selector)
            for pod in self.inventory.pods:
                if pod.namespace == service.namespace and all(
                    pod.labels.get(k) == v for k, v in sel.items()
                ):
                    keys.add(self.pod_workload[pod.key])
        for eps in self.inventory.endpoint_slices:
            if eps.namespace == service.namespace and eps.service == service.name:
                keys |= {
                    self.pod_workload[e.pod] for e in eps.endpoints if e.pod in self.pod_workload
                }
        return [self.workloads[k] for k in sorted(keys)]


def build_index(inventory: Inventory) -> WorkloadIndex:
    """Group the inventory's pods into workloads and index addresses."""
    index = WorkloadIndex(inventory)
    for ns in inventory.namespaces:
        index.ns_labels[ns.name] = namespace_labels(ns.name, ns.labels)
    groups: dict[str, list[Pod]] = defaultdict(list)
    for pod in inventory.pods:
        groups[workload_key(pod.namespace, pod.labels)].append(pod)
    for key in sorted(groups):
        pods = groups[key]
        labels = stable_labels(pods[0].labels)
        wl = Workload(
            namespace=pods[0].namespace,
            labels=tuple(labels.items()),
            name=_readable_name(pods, labels),
            owners=tuple(sorted({p.workload for p in pods})),
            pods=tuple(sorted(p.key for p in pods)),
            host_network=all(p.host_network for p in pods),
            port_sets=tuple(sorted({p.container_ports for p in pods}, key=repr)),
        )
        index.workloads[key] = wl
        index.by_namespace.setdefault(wl.namespace, []).append(wl)
        for pod in pods:
            index.pod_workload[pod.key] = key
            index.pod_node[pod.key] = pod.node
            _index_ips(index, pod, key)
    for wls in index.by_namespace.values():
        wls.sort(key=lambda w: (w.name, w.key))
    _index_services(index, inventory)
    return index


def _index_ips(index: WorkloadIndex, pod: Pod, key: str) -> None:
    if pod.host_ip and pod.node and _is_ip(pod.host_ip):
        index.ip_node.setdefault(str(ipaddress.ip_address(pod.host_ip)), pod.node)
    if pod.host_network or pod.phase in ("Succeeded", "Failed"):
        return
    for ip in pod.ips:
        text = str(ipaddress.ip_address(ip))
        # An address two workloads claim cannot identify either.
        index.ip_workload[text] = key if index.ip_workload.get(text, key) == key else None


def _index_services(index: WorkloadIndex, inventory: Inventory) -> None:
    for svc in inventory.services:
        for ip in svc.cluster_ips:
            if ip and ip != "None":
                index.services_by_ip[str(ipaddress.ip_address(ip))] = svc
    index.node_ips = tuple(sorted({a for n in inventory.nodes for a in n.addresses if _is_ip(a)}))
    for node in inventory.nodes:  # Node objects win over what pods' hostIP says
        index.ip_node.update(
            (str(ipaddress.ip_address(a)), node.name) for a in node.addresses if _is_ip(a)
        )
    api_ips: set[str] = set()
    for eps in inventory.endpoint_slices:
        if (eps.namespace, eps.service) == APISERVER_SERVICE:
            api_ips |= {a for e in eps.endpoints for a in e.addresses if _is_ip(a)}
            ports = [p.port for p in eps.ports]
            for svc in inventory.services:
                if (svc.namespace, svc.name) == APISERVER_SERVICE:
                    _map_apiserver_ports(index, svc, ports)
    index.apiserver_ips = tuple(sorted(api_ips))


def _map_apiserver_ports(index: WorkloadIndex, svc: Service, endpoint_ports: list[int]) -> None:
    """Service port -> endpoint port of ``default/kubernetes`` (443 -> 6443 usually)."""
    for sp in svc.ports:
        target = sp.target_port if isinstance(sp.target_port, int) else None
        if target is None and len(endpoint_ports) == 1:
            target = endpoint_ports[0]
        index.apiserver_ports[(sp.protocol, sp.port)] = target or sp.port


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def declared_port_names(workload: Workload, port: int, protocol: str) -> str | None:
    """The port name every pod of ``workload`` declares for ``port``/``protocol``, else None.

    A name is usable in a policy only when every pod maps it to this number.
    """
    names: set[str | None] = set()
    for ports in workload.port_sets or ((),):
        match = [c for c in ports if c.port == port and c.protocol == protocol]
        names.add(match[0].name if len(match) == 1 else None)
        for c in ports:  # the same name must not stand for another number
            if match and c.name == match[0].name and c.port != port:
                names.add(None)
    if len(names) == 1:
        return next(iter(names))
    return None


def declares_port(workload: Workload, port: int, protocol: str) -> bool:
    """True when some pod of the workload declares ``port``/``protocol``."""
    return any(
        c.port == port and c.protocol == protocol for ports in workload.port_sets for c in ports
    )


def unique_names(workloads: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Map key -> name, suffixing ``-2``, ``-3`` ... on clashes, in key order.

    >>> sorted(unique_names([("k2", "web"), ("k1", "web"), ("k3", "default-deny")]).items())
    [('k1', 'web'), ('k2', 'web-2'), ('k3', 'default-deny-group')]
    """
    taken: set[str] = set(RESERVED_NAMES)
    out: dict[str, str] = {}
    for key, name in sorted(workloads, key=lambda kv: (kv[1], kv[0])):
        base = name if name not in RESERVED_NAMES else f"{name}-group"
        candidate, n = base, 2
        while candidate in taken:
            candidate, n = f"{base}-{n}", n + 1
        taken.add(candidate)
        out[key] = candidate
    return out
