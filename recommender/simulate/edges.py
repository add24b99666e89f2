"""Legitimate edges resolved to concrete peers, and the truth-file PEER objects."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from recommender.simulate.cluster import ClusterState, PodState
from recommender.simulate.hubble_writer import Peer
from recommender.simulate.topology import EdgeSpec, Topology

EPHEMERAL_PORTS = (32768, 60999)
#: First octets of the simulated internet clients and exfiltration targets (all public).
CLIENT_OCTETS = (23, 31, 37, 46, 62, 77, 81, 85, 91, 109, 141, 151, 176, 188, 193, 212, 217)
EXFIL_OCTETS = (5, 45, 89, 103, 139, 154, 167, 185, 194, 198)


@dataclass(frozen=True)
class LegitEdge:
    """A legitimate edge with its id; world edges are split per destination IP."""

    id: str
    spec: EdgeSpec
    rate: float
    world_ip: str | None = None
    names: tuple[str, ...] = ()
    cidr: str | None = None

    @property
    def names_json(self) -> str | None:
        return json.dumps(list(self.names), separators=(",", ":")) if self.names else None


def resolve_edges(topology: Topology) -> list[LegitEdge]:
    """Number the edges ``e1``... in topology order; one edge per external IP."""
    out: list[LegitEdge] = []
    for spec in topology.edges:
        if spec.dst.startswith("world:"):
            ext = topology.external(spec.dst[6:])
            for ip in ext.ips:
                out.append(
                    LegitEdge(
                        f"e{len(out) + 1}", spec, spec.rate / len(ext.ips), ip, ext.names, ext.cidr
                    )
                )
        else:
            out.append(LegitEdge(f"e{len(out) + 1}", spec, spec.rate))
    return out


def pod_peer_doc(pod_or_key: PodState | str, topology: Topology) -> dict[str, Any]:
    """Truth PEER of a pod or workload key."""
    spec = pod_or_key.spec if isinstance(pod_or_key, PodState) else topology.workload(pod_or_key)
    return {"kind": "pod", "namespace": spec.namespace, "workload": spec.workload}


def end_doc(end: str, edge: LegitEdge, topology: Topology, cluster: ClusterState) -> dict[str, Any]:
    """Truth PEER for one end of a legitimate edge."""
    if end == "host":
        return {"kind": "host"}
    if end == "internet":
        return {"kind": "world", "cidr": "0.0.0.0/0"}
    if end == "apiserver":
        return {"kind": "cluster_infra", "name": "kube-apiserver", "ip": cluster.apiserver_ip}
    if end.startswith("world:"):
        doc: dict[str, Any] = {"kind": "world", "ip": edge.world_ip, "names": list(edge.names)}
        if edge.cidr:
            doc["provider_cidr"] = edge.cidr
        return doc
    return pod_peer_doc(end, topology)


def public_ip(rng: random.Random, octets: tuple[int, ...]) -> str:
    """A random address whose first octet is one of ``octets`` (all public space)."""
    return f"{rng.choice(octets)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


class PeerPicker:
    """Picks concrete client and server peers for an edge in one window."""

    def __init__(self, cluster: ClusterState, window: str, rng: random.Random) -> None:
        self.cluster = cluster
        self.window = window
        self.rng = rng

    def pods(self, key: str) -> list[PodState]:
        return self.cluster.pods[self.window].get(key, [])

    def server(self, edge: LegitEdge) -> Peer | None:
        dst = edge.spec.dst
        if dst == "apiserver":
            return Peer("apiserver", self.cluster.apiserver_ip)
        if edge.world_ip is not None:
            return Peer("world", edge.world_ip)
        pods = self.pods(dst)
        if not pods:
            return None
        pod = self.rng.choice(pods)
        return Peer("pod", pod.ip, pod=pod)

    def client(self, edge: LegitEdge, server: Peer, run_pod: PodState | None) -> Peer | None:
        src = edge.spec.src
        if run_pod is not None:
            return Peer("pod", run_pod.ip, pod=run_pod)
        if src == "internet":
            return Peer("world", public_ip(self.rng, CLIENT_OCTETS))
        if src == "host":
            if server.pod is None:
                return None
            node = server.pod.node
            return Peer("host", node.router_ip, node=node)
        pods = self.pods(src)
        if not pods:
            return None
        pod = self.rng.choice(pods)
        return Peer("pod", pod.ip, pod=pod)
