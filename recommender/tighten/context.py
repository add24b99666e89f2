"""What tighten needs to know about the inventory: label sets, namespaces, cluster addresses."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from recommender.labels import (
    decode_labels,
    encode_labels,
    matches_selector,
    namespace_labels,
    stable_labels,
)
from recommender.model import Inventory, LabelSelector
from recommender.recommend.selectors import select_exactly
from recommender.semantics.resolve import is_live

NAME_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class InventoryContext:
    """Lookups over one inventory, built once."""

    label_sets: dict[str, tuple[str, ...]]  # namespace -> canonical stable label JSON, sorted
    namespaces: dict[str, dict[str, str]]  # namespace -> labels (with the name label)
    workloads: dict[tuple[str, str], str]  # (namespace, label JSON) -> readable workload
    forbidden: tuple[str, ...]  # pod, node and Service addresses, sorted

    @classmethod
    def build(cls, inventory: Inventory) -> InventoryContext:
        """Index ``inventory``: every non-hostNetwork pod counts for selector exactness."""
        sets: dict[str, set[str]] = {}
        workloads: dict[tuple[str, str], str] = {}
        forbidden: set[str] = set()
        for pod in sorted(inventory.pods, key=lambda p: (p.namespace, p.name)):
            if is_live(pod):
                forbidden.update(pod.ips)
                if pod.host_ip:
                    forbidden.add(pod.host_ip)
            if pod.host_network:
                continue
            ident = encode_labels(stable_labels(pod.labels))
            sets.setdefault(pod.namespace, set()).add(ident)
            workloads.setdefault((pod.namespace, ident), f"{pod.namespace}/{pod.workload}")
        for node in inventory.nodes:
            forbidden.update(node.addresses)
        for svc in inventory.services:
            forbidden.update(svc.cluster_ips)
        names = {n.name: namespace_labels(n.name, n.labels) for n in inventory.namespaces}
        for ns in sets:
            names.setdefault(ns, namespace_labels(ns, None))
        return cls(
            {k: tuple(sorted(v)) for k, v in sets.items()},
            names,
            workloads,
            tuple(sorted(a for a in forbidden if _is_address(a))),
        )

    def workload(self, namespace: str, labels: str) -> str:
        """Readable workload of a pod identity (``ns/kind/name``), or its labels."""
        return self.workloads.get((namespace, labels), f"{namespace}/{labels}")

    def namespaces_matching(self, selector: LabelSelector) -> list[str]:
        """Inventory namespaces a namespaceSelector matches, sorted."""
        return sorted(
            n for n, labels in self.namespaces.items() if matches_selector(selector, labels)
        )

    def exact_selector(self, namespace: str, targets: list[str]) -> LabelSelector | None:
        """Smallest stable selector for exactly the ``targets`` (label JSON) in ``namespace``."""
        universe = sorted(set(self.label_sets.get(namespace, ())) | set(targets))
        choice = select_exactly(
            [decode_labels(t) for t in targets], [decode_labels(u) for u in universe]
        )
        return None if choice is None else choice.selector


def _is_address(text: str) -> bool:
    """Node addresses include host names; only IPs can be covered by an ipBlock."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
