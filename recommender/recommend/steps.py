"""Steps of :func:`recommender.recommend.pipeline.recommend`: scope, DNS, learning set, edges."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from recommender.inventory.workloads import WorkloadIndex
from recommender.model import LabelSelector
from recommender.recommend.learning import base_reason
from recommender.recommend.selectors import select_exactly
from recommender.recommend.suspicious import SCAN_COLUMNS, ScanFinding, detect_scans
from recommender.recommend.synthesize import DnsTarget

#: Namespaces that never get policies unless named with ``--namespace``.
SYSTEM_NAMESPACES: frozenset[str] = frozenset(
    {
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "kube-flannel",
        "calico-system",
        "calico-apiserver",
        "tigera-operator",
        "cilium",
        "cilium-secrets",
        "local-path-storage",
        "gke-managed-system",
        "gmp-system",
    }
)
#: ``dns-default`` is OpenShift's (namespace openshift-dns: Service port 53, pods on 5353).
DNS_SERVICE_NAMES: tuple[str, ...] = (
    "kube-dns",
    "coredns",
    "rke2-coredns-rke2-coredns",
    "dns-default",
)
#: NodeLocal DNSCache's documented link-local listen address (the DaemonSet also binds the
#: kube-dns ClusterIP on each node in iptables mode): pods reach a hostNetwork cache there.
NODELOCAL_DNS_ADDRESSES: tuple[str, ...] = ("169.254.20.10",)
NODELOCAL_DNS_LABEL = ("k8s-app", "node-local-dns")
#: Prefixes of platform namespaces (OpenShift's openshift-dns, openshift-monitoring, ...).
SYSTEM_PREFIXES: tuple[str, ...] = ("openshift-",)
DNS_APP_LABELS: tuple[tuple[str, str], ...] = (("k8s-app", "kube-dns"), ("k8s-app", "coredns"))

#: (direction, peer key, protocol, port)
Edge = tuple[str, str, str, int]


def is_system_namespace(name: str) -> bool:
    """Namespaces of the platform itself.

    >>> is_system_namespace("kube-system"), is_system_namespace("openshift-dns")
    (True, True)
    >>> is_system_namespace("shop")
    False
    """
    return name in SYSTEM_NAMESPACES or name.startswith(SYSTEM_PREFIXES)


def namespaces_in_scope(
    index: WorkloadIndex, options: Any, warnings: list[str]
) -> tuple[list[str], dict[str, str]]:
    """Namespaces that get policies, and why each other one does not."""
    known = sorted(set(index.ns_labels) | set(index.by_namespace))
    skipped: dict[str, str] = {}
    wanted = set(options.namespaces)
    for ns in sorted(wanted - set(known)):
        warnings.append(f"--namespace {ns}: not in the inventory; no policies written for it")
    scope = []
    for ns in known:
        if ns in options.exclude_namespaces:
            skipped[ns] = "excluded with --exclude-namespace"
        elif wanted and ns not in wanted:
            skipped[ns] = "not selected with --namespace"
        elif not wanted and is_system_namespace(ns):
            skipped[ns] = "system namespace, excluded by default (name it with --namespace)"
        else:
            scope.append(ns)
    return scope, skipped


def find_dns(index: WorkloadIndex, warnings: list[str]) -> DnsTarget:
    """Cluster DNS pods: the kube-dns Service backends, as the inventory labels them."""
    services = sorted(
        (s for s in index.inventory.services if s.name in DNS_SERVICE_NAMES),
        key=lambda s: (s.namespace != "kube-system", DNS_SERVICE_NAMES.index(s.name)),
    )
    for svc in services:
        backends = index.backends(svc)
        ports = _dns_ports(svc, backends)
        selector = (
            LabelSelector(match_labels=tuple(sorted(svc.selector.items())))
            if svc.selector
            else _selector_of(index, svc.namespace, backends)
        )
        if selector is not None and backends:
            return DnsTarget(
                svc.namespace,
                selector,
                ports,
                tuple(w.key for w in backends),
                f"service {svc.namespace}/{svc.name}",
            )
    for key, value in DNS_APP_LABELS:
        wls = [w for w in index.workloads.values() if w.label_map.get(key) == value]
        if wls:
            ns = sorted(w.namespace for w in wls)[0]
            return DnsTarget(
                ns,
                LabelSelector(match_labels=((key, value),)),
                _default_ports(),
                tuple(w.key for w in wls if w.namespace == ns),
                f"pods {key}={value}",
            )
    warnings.append(
        "no cluster DNS pods in the inventory; allow-dns assumes "
        "kube-system pods labelled k8s-app=kube-dns"
    )
    return DnsTarget(
        "kube-system",
        LabelSelector(match_labels=(("k8s-app", "kube-dns"),)),
        _default_ports(),
        (),
        "assumed",
    )


def _default_ports() -> tuple[tuple[str, int], ...]:
    return (("TCP", 53), ("UDP", 53))


def _selector_of(index: WorkloadIndex, ns: str, backends: Sequence[Any]) -> LabelSelector | None:
    universe = [w.label_map for w in index.in_namespace(ns)]
    choice = select_exactly([w.label_map for w in backends], universe)
    return choice.selector if choice else None


def _dns_ports(svc: Any, backends: Sequence[Any]) -> tuple[tuple[str, int], ...]:
    """Target ports of the DNS Service (53 unless it maps elsewhere), UDP and TCP."""
    out: set[tuple[str, int]] = set()
    for sp in svc.ports:
        if sp.protocol not in ("UDP", "TCP") or sp.port != 53:
            continue
        target = sp.target_port if sp.target_port is not None else sp.port
        if isinstance(target, str):
            nums = {
                c.port
                for w in backends
                for ps in w.port_sets
                for c in ps
                if c.name == target and c.protocol == sp.protocol
            }
            target = nums.pop() if len(nums) == 1 else sp.port
        out.add((sp.protocol, int(target)))
    return tuple(sorted(out)) or _default_ports()


def classify(
    table: pd.DataFrame,
    scope: Sequence[str],
    dns: DnsTarget,
    include_suspicious: bool,
    allow_host: bool,
    index: WorkloadIndex | None = None,
) -> list[ScanFinding]:
    """Fill ``reason`` (None = learned), ``src_in``/``dst_in`` scope flags and ``dns``."""
    in_scope = set(scope)
    table["src_in"] = [
        r == "workload" and k.split("/", 1)[0] in in_scope
        for r, k in zip(table["src_role"], table["src_key"], strict=True)
    ]
    table["dst_in"] = [
        r == "workload" and k.split("/", 1)[0] in in_scope
        for r, k in zip(table["dst_role"], table["dst_key"], strict=True)
    ]
    reasons = [base_reason(r) for r in table.to_dict("records")]
    table["reason"] = pd.Series(reasons, index=table.index, dtype=object)
    scans: list[ScanFinding] = []
    probe = table["port"].notna()
    if probe.any():
        mask, scans = detect_scans(table.loc[probe, list(SCAN_COLUMNS)])
        hit = mask[mask].index
        if not include_suspicious:
            open_rows = table.index[table["reason"].isna()]
            table.loc[hit.intersection(open_rows), "reason"] = "suspicious"
    learned = table["reason"].isna()
    table.loc[learned & ~table["src_in"] & ~table["dst_in"], "reason"] = "out-of-scope"
    if not allow_host:
        table.loc[own_node_rows(table, index), "reason"] = "own-node"
    # A bool Series, not a list: on an empty table a list gives an object column, and
    # ``table[table["dns"]]`` would then select columns (none) instead of rows.
    table["dns"] = pd.Series(
        [
            reason is None and is_dns(dns, key, proto, port)
            for reason, key, proto, port in zip(
                table["reason"], table["dst_key"], table["protocol"], table["port"], strict=True
            )
        ],
        index=table.index,
        dtype=bool,
    )
    return scans


def is_dns(dns: DnsTarget, key: str, proto: str, port: Any) -> bool:
    """A DNS request to the cluster DNS pods or to a NodeLocal DNSCache address."""
    if key in dns.workloads:
        return (proto, port) in dns.ports
    role, _, ip = key.partition(":")
    return (
        role in ("host", "world") and ip in dns.addresses and port == 53 and proto in ("UDP", "TCP")
    )


def own_node_rows(table: pd.DataFrame, index: WorkloadIndex | None) -> pd.Series:
    """Learnable rows from a node to a pod on that same node.

    The NetworkPolicy API reference (NetworkPolicySpec.ingress): traffic is allowed to
    a pod "if there are no NetworkPolicies selecting the pod ..., OR if the traffic
    source is the pod's local node, OR if the traffic matches at least one ingress
    rule". A node address the inventory does not know, named by Hubble's
    ``reserved:host`` (the observing node, e.g. Cilium's router IP), is the local node
    of the pod it reached. A known node address is own-node only when every pod of
    the workload runs on that node: an observation does not say which pod it reached,
    so a spread workload gets an ipBlock for that node (a little wide, never a denial).
    """
    out = []
    for reason, role, dst_role, dst, node, observed in zip(
        table["reason"],
        table["src_role"],
        table["dst_role"],
        table["dst_key"],
        table["src_node"],
        table["src_observed_node"],
        strict=True,
    ):
        own = False
        if reason is None and role == "host" and dst_role == "workload" and node and index:
            nodes = index.nodes_of(dst)
            own = node in nodes if observed else nodes == {node}
        out.append(own)
    return pd.Series(out, index=table.index, dtype=bool)


def with_node_local_dns(dns: DnsTarget, table: pd.DataFrame, index: WorkloadIndex) -> DnsTarget:
    """Add the NodeLocal DNSCache addresses pods used (or that the inventory implies).

    Requests to 169.254.20.10, or to the kube-dns ClusterIP delivered untranslated (the
    cache binds it on every node), reach a hostNetwork pod: a pod selector cannot match
    it, so allow-dns needs an ipBlock or DNS breaks under default-deny.
    """
    vips = {
        ip for s in index.inventory.services if s.name in DNS_SERVICE_NAMES for ip in s.cluster_ips
    }
    seen = {
        k.partition(":")[2]
        for k, p in zip(table["dst_key"], table["port"], strict=True)
        if k.partition(":")[0] in ("host", "world") and p == 53
    }
    found = seen & (set(NODELOCAL_DNS_ADDRESSES) | vips)
    key, value = NODELOCAL_DNS_LABEL
    if any(w.label_map.get(key) == value for w in index.workloads.values()):
        found |= set(NODELOCAL_DNS_ADDRESSES)
    return replace(dns, addresses=tuple(sorted(found))) if found else dns


def edges_of(table: pd.DataFrame, scope: Sequence[str]) -> dict[str, dict[Edge, dict[str, Any]]]:
    """Per in-scope workload: its edges with evidence (connections, first and last seen)."""
    out: dict[str, dict[Edge, dict[str, Any]]] = {}
    learned = table[table["reason"].isna()]
    for r in learned.to_dict("records"):
        port, proto = int(r["port"]), str(r["protocol"])
        if r["src_in"] and not r["dns"]:
            _add(out, r["src_key"], ("egress", r["dst_key"], proto, port), r)
        if r["dst_in"]:
            _add(out, r["dst_key"], ("ingress", r["src_key"], proto, port), r)
    return out


def _add(
    out: dict[str, dict[Edge, dict[str, Any]]], key: str, edge: Edge, r: dict[str, Any]
) -> None:
    ev = out.setdefault(key, {}).setdefault(
        edge, {"connections": 0, "first_seen": None, "last_seen": None}
    )
    ev["connections"] += int(r["learn"])
    first, last = timestamp_text(r["first_seen"]), timestamp_text(r["last_seen"])
    if first and (ev["first_seen"] is None or first < ev["first_seen"]):
        ev["first_seen"] = first
    if last and (ev["last_seen"] is None or last > ev["last_seen"]):
        ev["last_seen"] = last


def timestamp_text(value: Any) -> str | None:
    """UTC ISO-8601 with ``Z``, to the second; None for missing values.

    >>> timestamp_text("2026-01-02T03:04:05.678+01:00")
    '2026-01-02T02:04:05Z'
    """
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return str(ts.strftime("%Y-%m-%dT%H:%M:%SZ"))
