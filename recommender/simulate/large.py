"""The generated ``large`` topology: many teams, thousands of workloads.

``large:N`` has ``N`` workloads (default from the YAML) in namespaces of 20,
10 to 12 replicas each (so ``large:2000`` has 2,000+ workloads and 20,000+
pods), services, a shared ``platform`` namespace and sparse, low-rate edges.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any


def build_large_document(doc: Mapping[str, Any], size: int | None) -> dict[str, Any]:
    """Expand the generator parameters of ``large.yaml`` into a plain topology."""
    params = dict(doc.get("params") or {})
    n = int(size if size is not None else params.get("size", 2000))
    per_ns = int(params.get("workloads_per_namespace", 20))
    rng = random.Random(f"large:{n}")
    out: dict[str, Any] = {k: v for k, v in doc.items() if k not in ("generator", "params")}
    workloads: list[dict[str, Any]] = list(doc.get("workloads") or [])
    edges: list[dict[str, Any]] = list(doc.get("edges") or [])
    services: list[dict[str, Any]] = list(doc.get("services") or [])
    namespaces: dict[str, Any] = dict(doc.get("namespaces") or {})
    replicas = [int(r) for r in params.get("replicas", [10, 11, 12])]
    for i in range(n):
        ns = f"team-{i // per_ns:03d}"
        namespaces.setdefault(ns, {"labels": {"team": ns, "env": rng.choice(["prod", "staging"])}})
        name = f"svc-{i % per_ns:02d}"
        workloads.append(_workload(ns, name, rng.choice(replicas)))
        services.append(
            {
                "namespace": ns,
                "name": name,
                "selector": {"app": name},
                "ports": [{"name": "http", "port": 80, "target_port": "http"}],
            }
        )
        for j in rng.sample(range(per_ns), k=2):
            if j != i % per_ns and (i // per_ns) * per_ns + j < n:
                edges.append(
                    {
                        "from": f"{ns}/{name}",
                        "to": f"{ns}/svc-{j:02d}",
                        "port": "http",
                        "rate": round(rng.uniform(1, 30), 2),
                    }
                )
        edges.append(
            {
                "from": f"{ns}/{name}",
                "to": "platform/auth",
                "port": "http",
                "rate": round(rng.uniform(1, 10), 2),
            }
        )
    total_pods = sum(w.get("replicas", 1) for w in workloads)
    cluster = dict(doc["cluster"])
    cluster["workers"] = max(int(cluster.get("workers", 3)), math.ceil(total_pods / 90))
    out.update(
        namespaces=namespaces, workloads=workloads, services=services, edges=edges, cluster=cluster
    )
    return out


def _workload(ns: str, name: str, replicas: int) -> dict[str, Any]:
    return {
        "namespace": ns,
        "name": name,
        "kind": "Deployment",
        "replicas": replicas,
        "service_account": name,
        "probe": "http",
        "labels": {"app": name, "app.kubernetes.io/name": name, "team": ns},
        "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
    }
