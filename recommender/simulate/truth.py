"""The ground truth of a simulation (``truth.json``, format 1).

See ``README.md`` beside this module for the field-by-field definition. All
line numbers are 1-based lines of the decompressed flow file.
"""

from __future__ import annotations

import json
from typing import Any

from recommender.simulate.cluster import ClusterState, Windows
from recommender.simulate.edges import LegitEdge, end_doc
from recommender.simulate.generate import FileStats, SimOptions
from recommender.simulate.inventory_writer import rfc3339
from recommender.simulate.topology import Topology, WorkloadSpec

TRAIN_FILE = "flows-train.jsonl.gz"
FRESH_FILE = "flows-fresh.jsonl.gz"
FORMAT = 1


def _workload_doc(w: WorkloadSpec, topology: Topology) -> dict[str, Any]:
    replicas = topology.cluster.workers if w.kind == "DaemonSet" else w.replicas
    doc: dict[str, Any] = {
        "namespace": w.namespace,
        "name": w.name,
        "kind": w.kind,
        "workload": w.workload,
        "labels": dict(sorted(w.labels.items())),
        "service_account": w.service_account,
        "replicas": replicas,
        "ports": [{"name": p.name, "port": p.port, "protocol": p.protocol} for p in w.ports],
    }
    if w.schedule_hours is not None:
        doc["schedule_hours"] = w.schedule_hours
    return doc


def _edge_doc(
    e: LegitEdge,
    topology: Topology,
    cluster: ClusterState,
    scale: float,
    stats: dict[str, FileStats],
) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "id": e.id,
        "src": end_doc(e.spec.src, e, topology, cluster),
        "dst": end_doc(e.spec.dst, e, topology, cluster),
        "port": e.spec.port,
        "protocol": e.spec.protocol,
        "category": e.spec.category,
        "rate_per_hour": round(e.rate if e.spec.per_run else e.rate * scale, 6),
        "train_connections": stats[TRAIN_FILE].connections[e.id],
        "fresh_connections": stats[FRESH_FILE].connections[e.id],
        "declared_fresh_only": e.spec.fresh_only,
    }
    if e.names:
        doc["dns_names"] = list(e.names)
    if e.spec.per_run:
        doc["per_run"] = e.spec.per_run
    return doc


def _illegitimate(stats: dict[str, FileStats]) -> dict[str, Any]:
    by_kind: dict[str, int] = {"exfiltration": 0, "lateral": 0, "scan": 0}
    edges: dict[str, dict[str, Any]] = {}
    for name, s in sorted(stats.items()):
        for kind, n in s.illegitimate_by_kind.items():
            by_kind[kind] += n
        for key, count in s.attack_edges.items():
            doc = edges.setdefault(key, {**json.loads(key), "connections": {}})
            doc["connections"][name] = count
    return {
        "flows": {n: s.illegitimate for n, s in sorted(stats.items())},
        "by_kind": by_kind,
        "edges": [edges[k] for k in sorted(edges)],
    }


def _rollout(topology: Topology, cluster: ClusterState, windows: Windows) -> dict[str, Any]:
    template: dict[str, list[str]] = {}
    revision: dict[str, list[str]] = {}
    for w in topology.workloads:
        if w.key not in cluster.hashes:
            continue
        old, new = cluster.hashes[w.key]
        if old == new:
            continue
        (template if w.kind == "Deployment" else revision)[w.key] = [old, new]
    train = {p.name for g in cluster.pods["train"].values() for p in g}
    fresh = {p.name for g in cluster.pods["fresh"].values() for p in g}
    return {
        "at": rfc3339(windows.rollout),
        "changed_pod_template_hash": template,
        "changed_controller_revision_hash": revision,
        "unchanged_workloads": sorted(
            w.key
            for w in topology.workloads
            if w.key in cluster.hashes and cluster.hashes[w.key][0] == cluster.hashes[w.key][1]
        ),
        "pods_train": len(train),
        "pods_fresh": len(fresh),
        "pod_names_kept": sorted(train & fresh),
    }


def build_truth(
    topology: Topology,
    cluster: ClusterState,
    edges: list[LegitEdge],
    options: SimOptions,
    windows: Windows,
    stats: dict[str, FileStats],
    rate_scale: float,
) -> dict[str, Any]:
    """Assemble the truth document."""
    edge_docs = [_edge_doc(e, topology, cluster, rate_scale, stats) for e in edges]
    return {
        "format": FORMAT,
        "topology": topology.name,
        "seed": options.seed,
        "cluster": topology.cluster.name,
        "rate_scale": round(rate_scale, 9),
        "options": {
            "replies": options.replies,
            "illegitimate": options.illegitimate,
            "damage": options.damage,
            "non_flow": options.non_flow,
        },
        "windows": {
            "train": {"start": rfc3339(windows.train_start), "end": rfc3339(windows.rollout)},
            "fresh": {"start": rfc3339(windows.rollout), "end": rfc3339(windows.fresh_end)},
        },
        "workloads": [_workload_doc(w, topology) for w in topology.workloads],
        "legitimate_edges": edge_docs,
        "fresh_only_edges": [d["id"] for d in edge_docs if d["train_connections"] == 0],
        "illegitimate": _illegitimate(stats),
        "damaged_lines": {n: s.damaged for n, s in sorted(stats.items())},
        "non_flow_lines": {n: s.non_flow for n, s in sorted(stats.items())},
        "reply_lines": {
            n: {k: s.replies[k] for k in ("is_reply_absent", "is_reply_false", "is_reply_true")}
            for n, s in sorted(stats.items())
        },
        "line_counts": {n: s.lines for n, s in sorted(stats.items())},
        "rollout": _rollout(topology, cluster, windows),
    }
