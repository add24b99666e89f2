"""Observed traffic between a pod and its own node that NetworkPolicy v1 cannot deny.

The Kubernetes Network Policies page: "IP blocks (exception: traffic to and from the
node where a Pod is running is always allowed, regardless of the IP address of the
Pod or the node)". So when the learned policies isolate a pod and no rule of them
admits such traffic, NetworkPolicy v1 still lets it through: the least-privilege
intent is unexpressible there. Both directions are listed:

* egress, a pod to its own node (the kubelet API on 10250 is a common
  lateral-movement probe): Cilium policy judges it like any peer ("Egress from a
  pod to its own node is policy like any other peer", ``semantics.cilium``), so
  ``--kind cilium`` denies it;
* ingress, the node to its pods (kubelet health probes): Cilium allows it too by
  default (``allow-localhost``), so no kind written here denies it.

Only traffic that flowed is listed (connections in the learnable verdicts), learned
or not: a scan of the node's ports that was excluded as suspicious is exactly what
the policy means to deny and cannot.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from recommender.model import Inventory
from recommender.semantics import Endpoint, PolicySet, compile_policies, pod_endpoint
from recommender.semantics.endpoints import host_endpoint

#: Said with every listed edge, per direction.
HINTS: dict[str, str] = {
    "egress": "--kind cilium denies it (a pod's egress to its own node needs the host entity)",
    "ingress": "Cilium allows it too by default (allow-localhost); no kind written here denies it",
}


@dataclass(frozen=True)
class OwnNodeEdge:
    """One observed edge between a workload and the node its pods run on."""

    direction: str  # egress: pod -> its node; ingress: node -> pod
    workload: str  # the workload index key
    name: str  # namespace/name, for reports
    node: str  # node name
    address: str  # the node address seen
    protocol: str
    port: int | None
    connections: int
    reason: str | None  # why it was not learned; None when learned

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` form."""
        return {
            "direction": self.direction,
            "workload": self.name,
            "node": self.node,
            "address": self.address,
            "protocol": self.protocol,
            "port": self.port,
            "connections": self.connections,
            "not_learned_because": self.reason,
            "hint": HINTS[self.direction],
        }

    def describe(self) -> str:
        """One SUMMARY.md line."""
        peer = self.name
        port = f"{self.protocol}/{self.port}" if self.port is not None else self.protocol
        how = f"not learned: {self.reason}" if self.reason else "learned"
        if self.direction == "egress":
            what = f"{peer} -> its node {self.node} ({self.address}) {port}"
        else:
            what = f"node {self.node} ({self.address}) -> {peer} {port}"
        return f"{what}: {self.connections:,} connections ({how})"


def unexpressible_in_v1(rec: Any, inventory: Inventory) -> list[OwnNodeEdge]:
    """Edges between a pod and its own node that flowed and that no learned rule admits,
    on a side the learned policies isolate (so only the v1 exemption lets them through)."""
    if rec.index is None or rec.table.empty:
        return []
    policies = compile_policies(rec.policies, inventory)
    merged: dict[tuple[Any, ...], OwnNodeEdge] = {}
    for r in rec.table.to_dict("records"):
        edge = _own_node_edge(r, rec.index, inventory)
        if edge is None or not _unadmitted(policies, rec.index, edge):
            continue
        key = (edge.direction, edge.workload, edge.node, edge.protocol, edge.port, edge.reason)
        seen = merged.get(key)
        if seen is not None:
            edge = replace(seen, connections=seen.connections + edge.connections)
        merged[key] = edge
    return sorted(
        merged.values(),
        key=lambda e: (e.direction, e.name, e.node, e.protocol, e.port or 0, e.reason or ""),
    )


def _own_node_edge(r: dict[str, Any], index: Any, inventory: Inventory) -> OwnNodeEdge | None:
    learn = int(r.get("learn") or 0)
    if learn <= 0 or r["port"] is None or r["port"] != r["port"]:
        return None
    if r["src_role"] == "workload" and r["dst_role"] == "host":
        direction, workload, address = "egress", r["src_key"], r["dst_key"].split(":", 1)[1]
        node = host_endpoint(address, inventory).node
        observed = False
    elif r["src_role"] == "host" and r["dst_role"] == "workload":
        direction, workload, address = "ingress", r["dst_key"], r["src_key"].split(":", 1)[1]
        node = r.get("src_node") or host_endpoint(address, inventory).node
        observed = bool(r.get("src_observed_node"))
    else:
        return None
    nodes = index.nodes_of(workload)
    # As for the own-node exclusion: a node Hubble named is the pod's own node when a
    # pod of the workload runs there; an address alone only when every pod does.
    if not node or not (node in nodes if observed else nodes == {node}):
        return None
    reason = r["reason"] if isinstance(r["reason"], str) else None
    wl = index.workloads[workload]
    return OwnNodeEdge(
        direction,
        workload,
        f"{wl.namespace}/{wl.name}",
        node,
        address,
        str(r["protocol"]),
        int(r["port"]),
        learn,
        reason,
    )


def _unadmitted(policies: PolicySet, index: Any, edge: OwnNodeEdge) -> bool:
    """True when the pod's side is isolated and no rule admits the node on that port."""
    wl = index.workloads[edge.workload]
    ns_labels = index.namespace_labels(wl.namespace)
    host = Endpoint("host", ip=edge.address, node=edge.node)
    for ports in wl.port_sets or ((),):
        pod = pod_endpoint(wl.namespace, wl.label_map, ns_labels, ports=ports, node=edge.node)
        selecting = policies.selecting(pod, edge.direction)
        if not selecting:
            return False  # not isolated: allowed with or without the exemption
        dst = host if edge.direction == "egress" else pod
        # The rules alone, without the own-node exemption the engine applies.
        if policies._allowing(selecting, edge.direction, host, dst, edge.port, edge.protocol):
            return False
    return True


#: The SUMMARY.md heading of the section.
TITLE = "Unexpressible in NetworkPolicy v1: a pod and its own node"


def summary_section(edges: list[OwnNodeEdge]) -> list[str]:
    """The SUMMARY.md section."""
    lines = [
        f"## {TITLE}",
        "",
        'NetworkPolicy v1 cannot deny this observed traffic: "traffic to and from the node '
        "where a Pod is running is always allowed, regardless of the IP address of the Pod "
        'or the node" (Kubernetes, Network Policies). The learned policies isolate these '
        "pods and have no rule for it.",
        "",
    ]
    for direction, what in (("egress", "a pod to its own node"), ("ingress", "a node to its pods")):
        mine = [e for e in edges if e.direction == direction]
        if not mine:
            continue
        total = sum(e.connections for e in mine)
        lines.append(
            f"- {direction}, {what}: {len(mine)} edges, {total:,} connections; {HINTS[direction]}"
        )
        lines += [f"  - {e.describe()}" for e in mine]
    return [*lines, ""]
