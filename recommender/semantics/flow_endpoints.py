"""Turn the endpoints of flow records into semantics :class:`Endpoint` values.

Used by shadow mode, the scorer and tighten: every place that judges a flow
against policies resolves its two ends the same way.

Rules, in order, for a ``pod`` end:

1. The inventory pod with that ``namespace/name`` (full labels, container
   ports for named ports, hostNetwork pods become ``host``).
2. The one live inventory pod holding the record's IP in that namespace.
3. The record's own identity: namespace plus the stable labels Hubble
   reported. Cilium enforces policy on exactly these identity labels, so this
   is what the datapath would do; container ports then come from an inventory
   pod of the same namespace and stable labels, when there is one.
4. Otherwise ``unknown``: a flow whose ends cannot be resolved is never guessed.

Other ends are classified by IP against the inventory
(:func:`recommender.semantics.endpoint_for_ip`); an end Hubble calls ``host``
stays a host (of the node whose address or pod CIDR holds the IP) unless the
inventory knows the IP as a pod or the apiserver; a ``service`` end (an
un-translated ClusterIP) is ``unknown``, because policies apply to the backend
pod after DNAT.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from recommender.labels import decode_labels, encode_labels, stable_labels
from recommender.model import Inventory, Pod
from recommender.semantics import (
    Endpoint,
    endpoint_for_ip,
    endpoint_for_pod,
    host_endpoint,
    pod_endpoint,
)
from recommender.semantics.resolve import is_live


@dataclass(frozen=True)
class ResolvedEnd:
    """An evaluated end of a flow: the endpoint plus names for reports."""

    endpoint: Endpoint
    name: str  # namespace/pod, or the IP
    workload: str  # namespace/kind/name for pods; kind:ip otherwise


class EndpointResolver:
    """Resolve (kind, namespace, pod, labels, ip) of a flow end, with a cache."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self._by_name: dict[tuple[str, str], Pod] = {}
        self._by_ip: dict[str, list[Pod]] = defaultdict(list)
        self._by_identity: dict[tuple[str, str], Pod] = {}
        for pod in sorted(inventory.pods, key=lambda p: (p.namespace, p.name)):
            self._by_name[(pod.namespace, pod.name)] = pod
            if is_live(pod):
                for ip in pod.ips:
                    self._by_ip[ip].append(pod)
            ident = (pod.namespace, encode_labels(stable_labels(pod.labels)))
            self._by_identity.setdefault(ident, pod)
        self._ns = {ns.name: ns.labels for ns in inventory.namespaces}
        self._cache: dict[tuple[object, ...], ResolvedEnd] = {}

    def resolve(
        self,
        kind: str | None,
        namespace: str | None,
        pod: str | None,
        labels: str | None,
        ip: str | None,
        workload: str | None = None,
    ) -> ResolvedEnd:
        """The endpoint of one flow end; equal inputs hit a cache."""
        key = (kind, namespace, pod, labels, ip, workload)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(kind, namespace, pod, labels, ip, workload)
            self._cache[key] = hit
        return hit

    def _resolve(
        self,
        kind: str | None,
        namespace: str | None,
        pod: str | None,
        labels: str | None,
        ip: str | None,
        workload: str | None,
    ) -> ResolvedEnd:
        if kind == "pod":
            found = self._find_pod(namespace, pod, ip)
            if found is not None:
                return ResolvedEnd(
                    endpoint_for_pod(found, self.inventory, ip=ip or None),
                    found.key,
                    f"{found.namespace}/{found.workload}",
                )
            if namespace:
                return self._from_identity(namespace, pod, labels, ip, workload)
            return ResolvedEnd(Endpoint("unknown", ip=ip), pod or ip or "?", "unknown")
        if kind in ("world", "host", "cluster_infra") and ip:
            ep = endpoint_for_ip(ip, self.inventory)
            if kind == "host" and ep.kind in ("unknown", "world"):
                # Hubble's reserved:host identity is authoritative for node traffic
                # (e.g. the cilium_host router IP inside the node's pod CIDR).
                ep = host_endpoint(ip, self.inventory)
            return ResolvedEnd(ep, ep.name or ip, _ip_workload(ep, ip))
        where = f"{kind or 'unknown'}:{ip or '?'}"
        return ResolvedEnd(Endpoint("unknown", ip=ip), ip or "?", where)

    def _find_pod(self, namespace: str | None, pod: str | None, ip: str | None) -> Pod | None:
        if namespace and pod and (namespace, pod) in self._by_name:
            return self._by_name[(namespace, pod)]
        if ip:
            pods = [p for p in self._by_ip.get(ip, ()) if namespace in (None, p.namespace)]
            if len(pods) == 1:
                return pods[0]
        return None

    def _from_identity(
        self,
        namespace: str,
        pod: str | None,
        labels: str | None,
        ip: str | None,
        workload: str | None,
    ) -> ResolvedEnd:
        stable = stable_labels(decode_labels(labels))
        twin = self._by_identity.get((namespace, encode_labels(stable)))
        ports = twin.container_ports if twin is not None else ()
        ep = pod_endpoint(
            namespace,
            stable,
            self._ns.get(namespace),
            ip or None,
            ports,
            name=f"{namespace}/{pod}" if pod else None,
        )
        wl = workload or (twin.workload if twin is not None else f"pod/{pod or '?'}")
        name = f"{namespace}/{pod}" if pod else (ip or namespace)
        return ResolvedEnd(ep, name, f"{namespace}/{wl}")


def _ip_workload(ep: Endpoint, ip: str) -> str:
    if ep.kind == "pod" and ep.name:
        return f"pod:{ep.name}"
    return f"{ep.kind}:{ip}"
