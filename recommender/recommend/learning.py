"""The learning set: resolve each observation's peers and decide what is learned.

Learned: connection requests that really flowed (verdict allowed, including
FORWARDED/REDIRECTED, or audit), on TCP/UDP/SCTP with a port, between
attributable peers, not scan-shaped, with at least one side in scope. Every
other observation keeps a reason code and shows up in the summary; nothing is
dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recommender.errors import InputError
from recommender.inventory.workloads import WorkloadIndex, declares_port, workload_key
from recommender.labels import decode_labels
from recommender.model import OBSERVATION_COLUMNS
from recommender.vocabulary import PROTOCOLS

#: Verdict keys whose connections flowed (Hubble FORWARDED/REDIRECTED map to allowed).
LEARN_VERDICTS: tuple[str, ...] = ("allowed", "audit", "forwarded", "redirected")

#: Reason codes for observations that are not learned, with their meaning.
REASONS: dict[str, str] = {
    "denied": "dropped by the CNI for policy: a denied attempt, never learned",
    "contested": "some connections of this edge were dropped for policy: not learned",
    "dropped": "no connection flowed (error or non-policy drop)",
    "not-expressible": "ICMP, another protocol, or no port: NetworkPolicy cannot express it",
    "unknown-peer": "a peer could not be attributed; never widened into a selector",
    "suspicious": "scan-shaped traffic (see the scan findings); --include-suspicious learns it",
    "host-ingress": "from a node (kubelet probes); most CNIs allow it; --allow-host adds it",
    "own-node": "from the pod's own node: NetworkPolicy always allows it (\"the traffic source "
    "is the pod's local node\"); --allow-host writes a rule anyway",
    "apiserver-endpoints-unknown": "to the default/kubernetes Service address before "
    "translation: the rule needs the API server's endpoint "
    "address and target port, and the inventory has no "
    "EndpointSlice of default/kubernetes (add endpointslices)",
    "cilium-identity": "a Cilium reserved identity (health, ingress proxy) that NetworkPolicy "
    "v1 cannot select; a CiliumNetworkPolicy entity rule can",
    "out-of-scope": "neither side is in a namespace that gets policies",
}

#: Peer roles after resolution.
ROLES: tuple[str, ...] = ("workload", "world", "host", "apiserver", "unknown")


@dataclass(frozen=True)
class Side:
    """One resolved end of an observation."""

    role: str
    key: str
    port: int | None = None  # translated port, for a Service or apiserver VIP destination
    note: str = ""
    code: str = ""  # reason code of an unknown side ("unknown-peer" when empty)
    node: str | None = None  # the node of a host side, when known
    observed_node: bool = False  # the node is Hubble's, not the inventory's for that address


def check_observations(obs: pd.DataFrame) -> None:
    """Raise InputError when the table lacks observation columns."""
    missing = [c for c in OBSERVATION_COLUMNS if c not in obs.columns]
    if missing:
        raise InputError(None, f"observation table lacks columns {missing}")


def verdict_counts(verdicts: Any) -> tuple[int, int, int]:
    """(learnable, policy-dropped, other) connection counts from a verdict dict.

    >>> verdict_counts({"allowed": 3, "audit": 1, "denied": 2, "policy_denied": 2})
    (4, 2, 0)
    >>> verdict_counts({"denied": 5, "policy_denied": 1, "error": 1})
    (0, 1, 5)
    """
    v: Mapping[str, Any] = verdicts if isinstance(verdicts, Mapping) else {}
    learn = sum(int(v.get(k) or 0) for k in LEARN_VERDICTS)
    policy = int(v.get("policy_denied") or 0)
    other = int(v.get("denied") or 0) - policy + int(v.get("error") or 0)
    return learn, policy, max(other, 0)


class Resolver:
    """Map observation ends to roles and keys, with a cache."""

    def __init__(self, index: WorkloadIndex) -> None:
        self.index = index
        self._cache: dict[tuple[Any, ...], list[Side]] = {}

    def resolve(
        self,
        kind: Any,
        ns: Any,
        labels: Any,
        workload: Any,
        ip: Any,
        port: Any,
        proto: Any,
        is_dst: bool,
    ) -> list[Side]:
        key = (kind, ns, labels, workload, ip, port, proto, is_dst)
        hit = self._cache.get(key)
        if hit is None:
            hit = self._resolve(
                str(kind), _s(ns), _s(labels), _s(workload), _s(ip), _port(port), str(proto), is_dst
            )
            self._cache[key] = hit
        return hit

    def _resolve(
        self,
        kind: str,
        ns: str | None,
        labels: str | None,
        workload: str | None,
        ip: str | None,
        port: int | None,
        proto: str,
        is_dst: bool,
    ) -> list[Side]:
        if kind == "pod":
            return [self._pod(ns, labels, workload, ip, port)]
        if kind == "service" and is_dst:
            return self._service(ip, port, proto)
        if ip and ip in self.index.apiserver_ips:
            return [Side("apiserver", f"apiserver:{ip}", port)]
        if kind == "cluster_infra" or (ip and self._is_apiserver_vip(ip)):
            return self._infra(ip, workload, labels, port, proto)
        if kind == "host":
            return [self._host(ip, workload, port)]
        if kind == "world":
            return [Side("world", f"world:{ip}", port) if ip else _unknown("world without address")]
        return [_unknown(f"peer kind {kind}")]

    def _pod(
        self,
        ns: str | None,
        labels: str | None,
        workload: str | None,
        ip: str | None,
        port: int | None,
    ) -> Side:
        idx = self.index
        key = workload_key(ns, decode_labels(labels)) if ns else None
        if key not in idx.workloads and ip:
            key = idx.ip_workload.get(ip)
        if key not in idx.workloads and ns and workload:
            owned = [
                w.key
                for w in idx.in_namespace(ns)
                if workload in w.owners or any(o.endswith(f"/{workload}") for o in w.owners)
            ]
            key = owned[0] if len(owned) == 1 else None
        if key is None or key not in idx.workloads:
            return _unknown(f"pod {ns}/{workload or labels} not in the inventory")
        wl = idx.workloads[key]
        if wl.host_network:  # a hostNetwork pod is its node's address (see endpoint_for_pod)
            nodes = {idx.pod_node.get(p) for p in wl.pods}
            node = nodes.pop() if len(nodes) == 1 else None
            addr = ip or (idx.node_address(node) if node else None)
            return (
                Side("host", f"host:{addr}", port, node=node)
                if addr
                else _unknown("hostNetwork pod without an address")
            )
        return Side("workload", key, port)

    def _host(self, ip: str | None, workload: str | None, port: int | None) -> Side:
        """A node address, with its node: ``node/<name>`` names it (the inventory's node of
        that address, or the observing node for ``reserved:host``), else the inventory.
        A pod IP wins (FORMATS.md 2.1.3: Hubble labels some pod IPs ``remote-node``)."""
        if not ip:
            return _unknown("host without address")
        key = self.index.ip_workload.get(ip)
        if key is not None:
            return Side("workload", key, port)
        named = workload.split("/", 1)[1] if workload and workload.startswith("node/") else None
        by_address = self.index.ip_node.get(ip)
        return Side(
            "host",
            f"host:{ip}",
            port,
            node=by_address or named,
            observed_node=by_address is None and named is not None,
        )

    def _service(self, ip: str | None, port: int | None, proto: str) -> list[Side]:
        svc = self.index.services_by_ip.get(ip or "")
        if svc is None:
            return [_unknown(f"service address {ip} not in the inventory")]
        if self._is_apiserver_vip(ip or ""):
            return self._infra(ip, None, None, port, proto)
        sp = [p for p in svc.ports if p.port == port and p.protocol == proto]
        out = []
        for wl in self.index.backends(svc):
            target = sp[0].target_port if sp else None
            if isinstance(target, str):
                target = _named(wl, target, proto)
            out.append(
                Side(
                    "workload",
                    wl.key,
                    target if target is not None else port,
                    note=f"via service {svc.namespace}/{svc.name}",
                )
            )
        return out or [_unknown(f"service {svc.namespace}/{svc.name} has no backends")]

    def _is_apiserver_vip(self, ip: str) -> bool:
        svc = self.index.services_by_ip.get(ip)
        return svc is not None and (svc.namespace, svc.name) == ("default", "kubernetes")

    def _infra(
        self, ip: str | None, workload: str | None, labels: str | None, port: int | None, proto: str
    ) -> list[Side]:
        """The API server from the flow's own identity and address; other Cilium
        reserved identities (health, ingress) cannot be written as NetworkPolicy peers."""
        text = f"{workload or ''} {labels or ''}"
        vip = ip is not None and self._is_apiserver_vip(ip)
        if not vip and "apiserver" not in text:
            return [
                _unknown(
                    f"Cilium reserved identity {workload or 'cluster_infra'}", "cilium-identity"
                )
            ]
        if vip:
            return self._apiserver_vip(ip, port, proto)
        if not ip:
            return [_unknown("kube-apiserver peer without an address")]
        # The observed address and port are post-translation: that is what the rule needs.
        return [Side("apiserver", f"apiserver:{ip}", port, note="kube-apiserver")]

    def _apiserver_vip(self, ip: str | None, port: int | None, proto: str) -> list[Side]:
        """The default/kubernetes ClusterIP: policies see the endpoint after DNAT."""
        if not self.index.apiserver_ips:
            return [
                _unknown(
                    f"default/kubernetes Service address {ip}:{port} with unknown endpoints",
                    "apiserver-endpoints-unknown",
                )
            ]
        mapped = self.index.apiserver_ports.get((proto, port or 0), port)
        return [
            Side("apiserver", f"apiserver:{a}", mapped, note="via service default/kubernetes")
            for a in self.index.apiserver_ips
        ]


def _named(wl: Any, name: str, proto: str) -> int | None:
    numbers = {
        c.port for ports in wl.port_sets for c in ports if c.name == name and c.protocol == proto
    }
    return numbers.pop() if len(numbers) == 1 else None


def _unknown(reason: str, code: str = "") -> Side:
    return Side("unknown", f"unknown:{reason}", None, reason, code)


def _s(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value == "":
        return None
    return str(value)


def _port(value: Any) -> int | None:
    if value is None or pd.isna(value):
        return None
    return int(value)


def resolve_table(obs: pd.DataFrame, index: WorkloadIndex) -> pd.DataFrame:
    """One row per (observation, resolved source, resolved destination).

    Columns: ``obs`` (row position in ``obs``), ``src_role``, ``src_key``,
    ``dst_role``, ``dst_key``, ``port`` (policy port), ``protocol``,
    ``connections``, ``learn``, ``policy_denied``, ``other``, ``first_seen``,
    ``last_seen``, ``dst_names``, ``note``.
    """
    resolver = Resolver(index)
    rows: list[dict[str, Any]] = []
    for pos, rec in enumerate(obs.itertuples(index=False)):
        r = rec._asdict()
        srcs = resolver.resolve(
            r["src_kind"],
            r["src_namespace"],
            r["src_labels"],
            r["src_workload"],
            r["src_ip"],
            None,
            r["protocol"],
            False,
        )
        dsts = resolver.resolve(
            r["dst_kind"],
            r["dst_namespace"],
            r["dst_labels"],
            r["dst_workload"],
            r["dst_ip"],
            r["port"],
            r["protocol"],
            True,
        )
        learn, policy, other = verdict_counts(r["verdicts"])
        for src in srcs:
            for dst in dsts:
                rows.append(_row(pos, r, src, dst, learn, policy, other))
    return pd.DataFrame(rows, columns=RESOLVED_COLUMNS)


RESOLVED_COLUMNS: tuple[str, ...] = (
    "obs",
    "src_role",
    "src_key",
    "dst_role",
    "dst_key",
    "port",
    "protocol",
    "connections",
    "learn",
    "policy_denied",
    "other",
    "first_seen",
    "last_seen",
    "dst_names",
    "note",
    "declared",
    "dst_in_cluster",
    "peer_reason",
    "src_node",
    "src_observed_node",
)


def _row(
    pos: int, r: Mapping[str, Any], src: Side, dst: Side, learn: int, policy: int, other: int
) -> dict[str, Any]:
    port = dst.port if dst.port is not None else _port(r["port"])
    return {
        "obs": pos,
        "src_role": src.role,
        "src_key": src.key,
        "dst_role": dst.role,
        "dst_key": dst.key,
        "port": port,
        "protocol": str(r["protocol"]),
        "connections": int(r["connections"] or 0),
        "learn": learn,
        "policy_denied": policy,
        "other": other,
        "first_seen": r["first_seen"],
        "last_seen": r["last_seen"],
        "dst_names": tuple(sorted(r["dst_names"] or ())) if _is_list(r["dst_names"]) else (),
        "note": "; ".join(n for n in (src.note, dst.note) if n),
        "declared": False,
        "dst_in_cluster": dst.role == "workload",
        "peer_reason": next((s.code for s in (src, dst) if s.role == "unknown" and s.code), None),
        "src_node": src.node,
        "src_observed_node": src.observed_node,
    }


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple) or hasattr(value, "__array__")


def mark_declared(table: pd.DataFrame, index: WorkloadIndex) -> None:
    """Fill ``declared``: the destination workload declares the port."""
    table["declared"] = [
        role == "workload" and port is not None and declares_port(index.workloads[key], port, proto)
        for role, key, port, proto in zip(
            table["dst_role"], table["dst_key"], table["port"], table["protocol"], strict=True
        )
    ]


def base_reason(row: Mapping[str, Any]) -> str | None:
    """Reason code from verdicts, protocol and peers alone (scope and scans come later)."""
    if row["learn"] <= 0:
        return "denied" if row["policy_denied"] > 0 else "dropped"
    if row["policy_denied"] > 0:
        return "contested"
    if row["protocol"] not in PROTOCOLS or row["port"] is None or pd.isna(row["port"]):
        return "not-expressible"
    if row["src_role"] == "unknown" or row["dst_role"] == "unknown":
        return str(row.get("peer_reason") or "unknown-peer")
    return None


def in_scope_key(key: str, role: str, scope: Iterable[str]) -> bool:
    """True for a workload key whose namespace is in ``scope``."""
    return role == "workload" and key.split("/", 1)[0] in set(scope)
