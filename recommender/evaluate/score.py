"""Judge a policy set against simulator ground truth (DESIGN.md "How recommendations are judged").

Every flow is decided by the exact semantics engine (through shadow mode); the
truth file says which lines are illegitimate and which workload edges are
legitimate. Measures:

* false-deny rate, by connections and by distinct legitimate edges; edges seen
  in training apart from edges that appear only in the fresh window;
* block rate on illegitimate flows (request records), overall and by kind;
* over-permissiveness: (source workload, destination workload, port) triples
  the policies allow that training never showed, with the DNS allowance
  counted apart, plus external address space admitted beyond observed IPs;
* learned attacks: illegitimate edges of either window that the policies
  allow (an attack seen during training must never become a rule);
* compactness: policies and rules per workload.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recommender.model import Inventory, NetworkPolicy
from recommender.recommend.steps import SYSTEM_NAMESPACES
from recommender.semantics import endpoint_for_ip
from recommender.semantics.reachability import WorkloadRep, admitted_external, allowed_triples

DNS_PORT = 53


def peer_matches(peer: Mapping[str, Any], end: str) -> bool:
    """Does a truth peer describe a shadow end (``ns/kind/name``, ``world:ip``, ...)?

    >>> peer_matches({"kind": "pod", "namespace": "shop", "workload": "deployment/web"},
    ...              "shop/deployment/web")
    True
    >>> peer_matches({"kind": "world", "cidr": "0.0.0.0/0"}, "world:8.8.8.8")
    True
    """
    kind = peer.get("kind")
    if kind == "pod":
        return end == f"{peer['namespace']}/{peer['workload']}"
    prefix, _, ip = end.partition(":")
    if prefix != kind:
        return False
    if "ip" in peer:
        return bool(ip == peer["ip"])
    if "cidr" in peer:
        try:
            return ipaddress.ip_address(ip) in ipaddress.ip_network(peer["cidr"], strict=False)
        except ValueError:
            return False
    return True


def pod_key(peer: Mapping[str, Any]) -> str | None:
    """``ns/kind/name`` of a pod peer, else None."""
    return f"{peer['namespace']}/{peer['workload']}" if peer.get("kind") == "pod" else None


@dataclass
class _Tally:
    denied: int = 0
    total: int = 0
    unknown: int = 0

    def add(self, verdict: str, n: int) -> None:
        self.total += n
        self.denied += n if verdict == "denied" else 0
        self.unknown += n if verdict == "unknown" else 0

    def as_dict(self) -> dict[str, Any]:
        rate = self.denied / self.total if self.total else 0.0
        return {
            "denied": self.denied,
            "unknown": self.unknown,
            "total": self.total,
            "rate": round(rate, 6),
        }


@dataclass
class Scorer:
    """Accumulate verdicts batch by batch, then :meth:`result`."""

    truth: Mapping[str, Any]
    flows_name: str
    legit: _Tally = field(default_factory=_Tally)
    illegit: _Tally = field(default_factory=_Tally)
    illegit_by_kind: dict[str, _Tally] = field(default_factory=dict)
    edge_verdicts: dict[str, Counter[str]] = field(default_factory=dict)
    unattributed: int = 0
    replies: int = 0
    _bad_lines: set[int] = field(default_factory=set)
    _edge_cache: dict[tuple[Any, ...], str | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._bad_lines = set(self.truth["illegitimate"]["flows"].get(self.flows_name, ()))
        self._edges = list(self.truth["legitimate_edges"])
        self._bad_edges = list(self.truth["illegitimate"].get("edges", ()))

    def add(self, batch: pd.DataFrame, verdicts: pd.DataFrame) -> None:
        """One batch of flow records and their shadow verdict rows (same order)."""
        lines = batch["raw_ref"].str.rsplit(":", n=1).str[1].astype(int).tolist()
        conns = batch["conn_count"].fillna(0).astype(int).tolist()
        for line, conn, row in zip(lines, conns, verdicts.itertuples(index=False), strict=True):
            if row.is_reply:
                self.replies += 1
                continue
            key = (row.src_workload, row.dst_workload, row.port, row.protocol)
            if line in self._bad_lines:
                self.illegit.add(row.verdict, 1)
                kind = self._bad_kind(key)
                self.illegit_by_kind.setdefault(kind, _Tally()).add(row.verdict, 1)
                continue
            if conn <= 0:
                continue  # another observation of a connection counted elsewhere
            edge = self._edge_of(key)
            if edge is None:
                self.unattributed += conn
                continue
            self.legit.add(row.verdict, conn)
            self.edge_verdicts.setdefault(edge, Counter())[row.verdict] += conn

    def _edge_of(self, key: tuple[Any, ...]) -> str | None:
        if key not in self._edge_cache:
            src, dst, port, proto = key
            hit = None
            for e in self._edges:
                if (
                    e["port"] == port
                    and e["protocol"] == proto
                    and peer_matches(e["dst"], dst)
                    and peer_matches(e["src"], src)
                ):
                    hit = str(e["id"])
                    break
            self._edge_cache[key] = hit
        return self._edge_cache[key]

    def _bad_kind(self, key: tuple[Any, ...]) -> str:
        src, dst, port, proto = key
        for e in self._bad_edges:
            if (
                e["port"] == port
                and e["protocol"] == proto
                and peer_matches(e["dst"], dst)
                and peer_matches(e["src"], src)
            ):
                return str(e["kind"])
        return "unattributed"

    def result(self) -> dict[str, Any]:
        """False-deny and block-rate measures."""
        trained, fresh_only = _Tally(), _Tally()
        denied_edges = []
        by_id = {str(e["id"]): e for e in self._edges}
        for edge_id in sorted(self.edge_verdicts, key=_id_order):
            verdicts = self.edge_verdicts[edge_id]
            edge = by_id[edge_id]
            verdict = (
                "denied" if verdicts["denied"] else "unknown" if verdicts["unknown"] else "allowed"
            )
            (trained if edge.get("train_connections", 0) > 0 else fresh_only).add(verdict, 1)
            if verdict != "allowed":
                denied_edges.append(
                    {
                        "id": edge_id,
                        "verdict": verdict,
                        "src": edge["src"],
                        "dst": edge["dst"],
                        "port": edge["port"],
                        "protocol": edge["protocol"],
                        "trained": edge.get("train_connections", 0) > 0,
                        "connections": dict(sorted(verdicts.items())),
                    }
                )
        block = self.illegit.as_dict()
        block["rate"] = round(block["denied"] / block["total"], 6) if block["total"] else None
        return {
            "false_deny": {
                "connections": self.legit.as_dict(),
                "edges_trained": trained.as_dict(),
                "edges_fresh_only": fresh_only.as_dict(),
                "denied_edges": denied_edges,
            },
            "block": {
                **block,
                "by_kind": {k: v.as_dict() for k, v in sorted(self.illegit_by_kind.items())},
            },
            "unattributed_connections": self.unattributed,
            "reply_records": self.replies,
        }


def _id_order(edge_id: str) -> tuple[int, str]:
    digits = "".join(ch for ch in edge_id if ch.isdigit())
    return (int(digits) if digits else 0, edge_id)


def over_permissiveness(
    policies: Sequence[NetworkPolicy],
    allowed: set[tuple[str, str, int, str]] | None,
    truth: Mapping[str, Any],
    dns_workloads: Iterable[str],
) -> dict[str, Any]:
    """Allowed-but-unobserved triples (DNS apart) and external space beyond observed IPs."""
    observed = set()
    external_ips: dict[str, list[str]] = {"egress": [], "ingress": []}
    legit_cidrs: dict[str, list[str]] = {"egress": [], "ingress": []}
    for e in truth["legitimate_edges"]:
        if e.get("train_connections", 0) <= 0:
            continue
        src, dst = pod_key(e["src"]), pod_key(e["dst"])
        if src and dst:
            observed.add((src, dst, int(e["port"]), str(e["protocol"])))
        for direction, peer in (("egress", e["dst"]), ("ingress", e["src"])):
            if peer.get("kind") in ("world", "cluster_infra", "host"):
                if "ip" in peer:
                    external_ips[direction].append(str(peer["ip"]))
                if "cidr" in peer:
                    legit_cidrs[direction].append(str(peer["cidr"]))
    dns = set(dns_workloads)
    swept = allowed is not None
    allowed = allowed or set()
    extra = sorted(t for t in allowed - observed if not (t[1] in dns and t[2] == DNS_PORT))
    dns_allowed = sorted(t for t in allowed - observed if t[1] in dns and t[2] == DNS_PORT)
    admitted, beyond = admitted_external(
        policies, external_ips["egress"], "egress", legit_cidrs["egress"]
    )
    in_admitted, in_beyond = admitted_external(
        policies, external_ips["ingress"], "ingress", legit_cidrs["ingress"]
    )
    return {
        "unobserved_allowed_triples": len(extra) if swept else None,
        "examples": [list(t) for t in extra[:20]],
        "dns_allowance_triples": len(dns_allowed) if swept else None,
        "allowed_triples": len(allowed) if swept else None,
        "observed_triples": len(observed),
        "observed_allowed": len(observed & allowed) if swept else None,
        "external_addresses_admitted": admitted,
        "external_addresses_beyond_observed": beyond,
        "ingress_external_addresses_admitted": in_admitted,
        "ingress_external_addresses_beyond_legitimate": in_beyond,
    }


def compactness(policies: Sequence[NetworkPolicy], workloads: int) -> dict[str, Any]:
    """Policies and rules, in total and per workload."""
    rules = sum(len(p.ingress or ()) + len(p.egress or ()) for p in policies)
    return {
        "policies": len(policies),
        "rules": rules,
        "workloads": workloads,
        "policies_per_workload": round(len(policies) / workloads, 4) if workloads else None,
        "rules_per_workload": round(rules / workloads, 4) if workloads else None,
    }


def dns_workload_keys(universe: Sequence[WorkloadRep]) -> list[str]:
    """Workloads that serve cluster DNS (``k8s-app=kube-dns``, as kube-dns and CoreDNS use)."""
    return [w.key for w in universe if dict(w.endpoint.labels).get("k8s-app") == "kube-dns"]


def learned_attacks(
    policy_set: Any, universe: Sequence[WorkloadRep], truth: Mapping[str, Any], inventory: Inventory
) -> dict[str, Any]:
    """Illegitimate edges (from either window) that the policies would allow.

    A recommendation must never learn an attack: this replays each
    illegitimate (source workload, destination, port) of the truth at workload
    level, so an exfiltration IP learned from the training window shows up here
    even though the fresh window's attacks use other addresses.
    """
    reps = {w.key: w for w in universe}
    allowed: dict[str, int] = {}
    examples: list[dict[str, Any]] = []
    total = 0
    for e in truth["illegitimate"].get("edges", ()):
        src = reps.get(pod_key(e["src"]) or "")
        dst_key = pod_key(e["dst"])
        if src is None:
            continue
        if dst_key is not None:
            if dst_key not in reps:
                continue
            dst = reps[dst_key].endpoint
        elif "ip" in e["dst"]:
            dst = endpoint_for_ip(str(e["dst"]["ip"]), inventory)
        else:
            continue
        total += 1
        if policy_set.decide(src.endpoint, dst, int(e["port"]), str(e["protocol"])).is_allowed:
            allowed[str(e["kind"])] = allowed.get(str(e["kind"]), 0) + 1
            if len(examples) < 20:
                examples.append({k: e[k] for k in ("kind", "src", "dst", "port", "protocol")})
    return {
        "edges": total,
        "allowed": sum(allowed.values()),
        "allowed_by_kind": allowed,
        "examples": examples,
    }


def static_measures(
    policies: Sequence[NetworkPolicy],
    policy_set: Any,
    universe: Sequence[WorkloadRep],
    truth: Mapping[str, Any],
    inventory: Inventory,
    reachability: bool = True,
) -> dict[str, Any]:
    """The measures that need no flows: over-permissiveness and compactness.

    Workload pairs are enumerated when at least one end is in an application
    namespace of the truth (system namespaces such as ``kube-system`` are out of
    the recommendation's scope, so traffic among them alone is not counted).
    """
    scope = {w["namespace"] for w in truth.get("workloads", ())} - SYSTEM_NAMESPACES
    allowed = allowed_triples(policy_set, universe, namespaces=scope) if reachability else None
    return {
        "over_permissiveness": over_permissiveness(
            policies, allowed, truth, dns_workload_keys(universe)
        ),
        "learned_attacks": learned_attacks(policy_set, universe, truth, inventory),
        "compactness": compactness(policies, len(universe)),
    }
