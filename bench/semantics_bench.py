"""Benchmark: 1M flows against 500 policies over a 5,000-pod inventory.

The flow table is a list of (src, dst, port, protocol) endpoint tuples drawn from a
skewed (Zipf-like) distribution over a realistic edge set: most traffic goes over a
few hundred service edges, with a long tail of rare edges and external peers.

Usage::

    .venv/bin/python bench/semantics_bench.py [--flows 1000000] [--seed 7]
"""

from __future__ import annotations

import argparse
import collections
import resource
import time

import numpy as np

from recommender.model import (
    ContainerPort,
    Inventory,
    IPBlock,
    LabelSelector,
    Namespace,
    NetworkPolicy,
    Peer,
    Pod,
    PolicyPort,
    Rule,
)
from recommender.semantics import Endpoint, compile_policies, endpoint_for_pod

N_NAMESPACES, APPS_PER_NS, PODS_PER_APP = 20, 25, 10  # 5,000 pods, 500 workloads
SERVICE_PORTS = (80, 8080, 9090, 5432, 6379)


def sel(**labels: str) -> LabelSelector:
    return LabelSelector(match_labels=tuple(sorted(labels.items())))


def build_inventory() -> Inventory:
    namespaces, pods = [], []
    for n in range(N_NAMESPACES):
        ns = f"team-{n:02d}"
        namespaces.append(Namespace(ns, {"tier": "prod" if n % 2 else "dev"}))
        for a in range(APPS_PER_NS):
            port = SERVICE_PORTS[a % len(SERVICE_PORTS)]
            cports = (ContainerPort(port, "TCP", "web"), ContainerPort(9100, "TCP", "metrics"))
            for r in range(PODS_PER_APP):
                labels = {
                    "app": f"app-{a:02d}",
                    "role": "db" if a % 5 == 3 else "svc",
                    "pod-template-hash": f"h{r % 3}",
                }
                ip = f"10.{n}.{a}.{r + 10}"
                pods.append(
                    Pod(
                        ns,
                        f"app-{a:02d}-{r}",
                        labels,
                        ips=(ip,),
                        phase="Running",
                        container_ports=cports,
                    )
                )
    return Inventory(namespaces=tuple(namespaces), pods=tuple(pods))


def build_policies() -> list[NetworkPolicy]:
    """25 policies per namespace: default-deny, DNS, 23 per-app allow policies."""
    out = []
    for n in range(N_NAMESPACES):
        ns = f"team-{n:02d}"
        out.append(NetworkPolicy(ns, "default-deny", LabelSelector(), ("Ingress", "Egress")))
        dns = Rule(ports=(PolicyPort("UDP", 53), PolicyPort("TCP", 53)))
        out.append(NetworkPolicy(ns, "allow-dns", LabelSelector(), ("Egress",), egress=(dns,)))
        for a in range(APPS_PER_NS - 2):
            callers = (
                Peer(pod_selector=sel(app=f"app-{(a + 1) % APPS_PER_NS:02d}")),
                Peer(namespace_selector=sel(tier="prod"), pod_selector=sel(role="svc")),
            )
            ingress = (
                Rule(peers=callers, ports=(PolicyPort("TCP", "web"),)),
                Rule(
                    peers=(
                        Peer(namespace_selector=sel(**{"kubernetes.io/metadata.name": "team-00"})),
                    ),
                    ports=(PolicyPort("TCP", 9100),),
                ),
            )
            egress = (
                Rule(peers=(Peer(pod_selector=LabelSelector()),)),
                Rule(
                    peers=(Peer(ip_block=IPBlock("0.0.0.0/0", ("10.0.0.0/8",))),),
                    ports=(PolicyPort("TCP", 443), PolicyPort("TCP", 8000, 8999)),
                ),
            )
            out.append(
                NetworkPolicy(
                    ns,
                    f"app-{a:02d}",
                    sel(app=f"app-{a:02d}"),
                    ("Ingress", "Egress"),
                    ingress=ingress,
                    egress=egress,
                )
            )
    return out


def build_flows(inv: Inventory, n_flows: int, seed: int) -> list[tuple]:
    rng = np.random.default_rng(seed)
    pods = [endpoint_for_pod(p, inv) for p in inv.pods]
    externals = [Endpoint("world", ip=f"203.0.{i // 250}.{i % 250}") for i in range(2000)]
    n_edges = 50_000
    src = rng.integers(0, len(pods), n_edges)
    to_external = rng.random(n_edges) < 0.1
    dst_pod = rng.integers(0, len(pods), n_edges)
    dst_ext = rng.integers(0, len(externals), n_edges)
    port = rng.choice(np.array((80, 8080, 9090, 5432, 6379, 9100, 443, 53, 8500)), n_edges)
    legit = rng.random(n_edges) < 0.6  # callers of the next app, as the policies intend
    edges = []
    for i in range(n_edges):
        proto = "UDP" if port[i] == 53 else "TCP"
        if legit[i] and not to_external[i]:
            ns, app = divmod(int(src[i]) // PODS_PER_APP, APPS_PER_NS)
            callee = (app - 1) % APPS_PER_NS
            d = (ns * APPS_PER_NS + callee) * PODS_PER_APP + int(dst_pod[i]) % PODS_PER_APP
            callee_port = SERVICE_PORTS[callee % len(SERVICE_PORTS)]
            edges.append((pods[src[i]], pods[d], callee_port, "TCP"))
            continue
        dst = externals[dst_ext[i]] if to_external[i] else pods[dst_pod[i]]
        edges.append((pods[src[i]], dst, int(port[i]), proto))
    weights = 1.0 / np.arange(1, n_edges + 1) ** 1.1  # Zipf-like skew
    picks = rng.choice(n_edges, n_flows, p=weights / weights.sum())
    return [edges[i] for i in picks]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t0 = time.perf_counter()
    inv, policies = build_inventory(), build_policies()
    flows = build_flows(inv, args.flows, args.seed)
    t1 = time.perf_counter()
    ps = compile_policies(policies, inv)
    t2, c2 = time.perf_counter(), time.process_time()
    decisions = ps.decide_many(flows)
    t3, c3 = time.perf_counter(), time.process_time()
    again = ps.decide_many(flows)
    t4, c4 = time.perf_counter(), time.process_time()
    assert again == decisions
    verdicts = collections.Counter(d.verdict for d in decisions)
    unique = len(set(flows))
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"pods={len(inv.pods)} policies={len(policies)} flows={len(flows)} unique={unique}")
    print(f"setup (inventory, policies, flow table): {t1 - t0:.2f} s")
    print(f"compile_policies: {t2 - t1:.3f} s")
    print(
        f"decide_many cold: {t3 - t2:.2f} s wall, {c3 - c2:.2f} s CPU "
        f"= {len(flows) / (c3 - c2):,.0f} flows/CPU-s"
    )
    print(
        f"decide_many warm: {t4 - t3:.2f} s wall, {c4 - c3:.2f} s CPU "
        f"= {len(flows) / (c4 - c3):,.0f} flows/CPU-s"
    )
    print(f"verdicts: {dict(sorted(verdicts.items()))}")
    print(f"peak RSS: {rss_mb:.0f} MB")


if __name__ == "__main__":
    main()
