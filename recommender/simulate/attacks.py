"""Illegitimate traffic: port scans, lateral movement, exfiltration.

Each attack runs as a burst from one compromised pod of its source workload.
A share arrives DROPPED (``POLICY_DENIED``), the rest FORWARDED, because the
cluster had only some policies. Scans never probe a (source, destination,
port) that is also a legitimate edge, so every scan line is illegitimate.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any

from recommender.simulate.cluster import ClusterState, PodState
from recommender.simulate.connections import Conn
from recommender.simulate.edges import EPHEMERAL_PORTS, EXFIL_OCTETS, pod_peer_doc, public_ip
from recommender.simulate.hubble_writer import Peer
from recommender.simulate.topology import AttackSpec, Topology

#: Ports a scanner tries first (ssh, telnet, web, smb, docker, databases, k8s).
SCAN_PORTS = (
    21,
    22,
    23,
    25,
    80,
    110,
    135,
    139,
    443,
    445,
    1433,
    2375,
    2379,
    3000,
    3306,
    3389,
    5000,
    5432,
    5900,
    6379,
    6443,
    8000,
    8080,
    8081,
    8443,
    8888,
    9000,
    9090,
    9200,
    10250,
    11211,
    27017,
)


@dataclass(frozen=True)
class PlannedAttack:
    """One illegitimate connection and the truth edge it belongs to."""

    conn: Conn
    kind: str
    edge: str  # canonical JSON of the truth edge


def _edge_key(
    kind: str,
    src: PodState,
    dst: dict[str, Any],
    port: int,
    protocol: str,
    verdict: str,
    topology: Topology,
) -> str:
    doc = {
        "kind": kind,
        "src": pod_peer_doc(src, topology),
        "dst": dst,
        "port": port,
        "protocol": protocol,
        "verdict": verdict,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


def plan_attacks(
    topology: Topology,
    cluster: ClusterState,
    window: str,
    t0: int,
    t1: int,
    legit: set[tuple[str, str, int, str]],
    rng: random.Random,
    replies: bool,
) -> list[PlannedAttack]:
    """All illegitimate connections of one window, in no particular order."""
    out: list[PlannedAttack] = []
    for attack in topology.attacks:
        pods = cluster.pods[window].get(attack.src, [])
        if not pods:
            continue
        src = rng.choice(pods)
        start = t0 + int((t1 - t0) * rng.uniform(0.1, 0.8))
        span = int(attack.burst_minutes * 60e9)
        for _ in range(attack.count):
            t = min(start + rng.randrange(max(span, 1)), t1 - 1)
            planned = _one(attack, src, t, topology, cluster, window, legit, rng, replies)
            if planned is not None:
                out.append(planned)
    return out


def _one(
    attack: AttackSpec,
    src: PodState,
    t: int,
    topology: Topology,
    cluster: ClusterState,
    window: str,
    legit: set[tuple[str, str, int, str]],
    rng: random.Random,
    replies: bool,
) -> PlannedAttack | None:
    client = Peer("pod", src.ip, pod=src)
    sport = rng.randint(*EPHEMERAL_PORTS)
    dropped = rng.random() < attack.dropped_share
    verdict = "DROPPED" if dropped else "FORWARDED"
    if attack.kind == "exfiltration":
        ip, port = public_ip(rng, EXFIL_OCTETS), attack.port or 443
        conn = Conn(
            t,
            client,
            Peer("world", ip),
            sport,
            port,
            "TCP",
            "drop_egress" if dropped else "ok",
            reply=replies and not dropped,
        )
        key = _edge_key(
            "exfiltration", src, {"kind": "world", "ip": ip}, port, "TCP", verdict, topology
        )
        return PlannedAttack(conn, "exfiltration", key)
    target, port = _target(attack, src, cluster, window, legit, rng)
    if target is None:
        return None
    listening = any(p.port == port and p.protocol == "TCP" for p in target.spec.ports)
    outcome = "drop_ingress" if dropped else ("ok" if listening else "refused")
    conn = Conn(
        t,
        client,
        Peer("pod", target.ip, pod=target),
        sport,
        port,
        "TCP",
        outcome,
        reply=replies and outcome == "ok",
    )
    key = _edge_key(
        attack.kind, src, pod_peer_doc(target, topology), port, "TCP", verdict, topology
    )
    return PlannedAttack(conn, attack.kind, key)


def _target(
    attack: AttackSpec,
    src: PodState,
    cluster: ClusterState,
    window: str,
    legit: set[tuple[str, str, int, str]],
    rng: random.Random,
) -> tuple[PodState | None, int]:
    if attack.kind == "lateral":
        pods = cluster.pods[window].get(attack.dst or "", [])
        port = int(attack.port or 0)
        if not pods or (src.spec.key, attack.dst, port, "TCP") in legit:
            return None, port  # a legitimate triple is never marked illegitimate
        return rng.choice(pods), port
    candidates = [
        p
        for key, group in sorted(cluster.pods[window].items())
        if key != src.spec.key
        for p in group
    ]
    ports = attack.ports or SCAN_PORTS
    for _ in range(20):
        target = rng.choice(candidates)
        port = rng.choice(ports) if rng.random() < 0.8 else rng.randint(1, 65535)
        if (src.spec.key, target.spec.key, port, "TCP") not in legit:
            return target, port
    return None, 0
