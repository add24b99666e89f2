"""Self-check before writing: validate every policy, replay every observation.

Every learned observation must be allowed by the output (exact semantics
engine). Every excluded or dropped observation that the output would allow is
reported. Schema validation (``kubernetes-validate``) is structural, so it runs
once per distinct document shape; the value checks of
``recommender.semantics.validate.check_policy_dict`` run on every policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from recommender.inventory.workloads import WorkloadIndex
from recommender.model import Inventory
from recommender.policy_io.policy_yaml import policy_to_dict
from recommender.semantics import Endpoint, compile_policies, pod_endpoint
from recommender.semantics.validate import check_policy_dict, schema_findings

#: Excluded reasons whose traffic the output is expected to allow (no policy applies).
EXPECTED_ALLOWED: frozenset[str] = frozenset({"out-of-scope"})


@dataclass(frozen=True)
class SelfCheck:
    """Result of the self-check; ``ok`` False means an internal error."""

    findings: tuple[str, ...]
    denied_learned: tuple[str, ...]
    allowed_excluded: tuple[str, ...]
    checked_learned: int
    checked_excluded: int
    #: Traffic that flowed but was not learned (unknown peer, Cilium identity) and that
    #: the output would deny: the loud warning of SUMMARY.md and the terminal.
    denied_unknown: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.findings and not self.denied_learned

    def message(self) -> str:
        """One paragraph for the error line when the check fails."""
        parts = list(self.findings[:5]) + [
            f"learned flow denied: {d}" for d in self.denied_learned[:5]
        ]
        more = len(self.findings) + len(self.denied_learned) - len(parts)
        tail = f" (and {more} more)" if more > 0 else ""
        return "self-check failed: " + "; ".join(parts) + tail


def shape_of(obj: Any) -> Any:
    """Structure of a document with scalar values replaced by their type name.

    >>> shape_of({"a": [1, 2], "b": {"c": "x"}})
    (('a', ('int',)), ('b', (('c', 'str'),)))
    """
    if isinstance(obj, dict):
        return tuple(sorted((k, shape_of(v)) for k, v in obj.items()))
    if isinstance(obj, list):
        return tuple(sorted({shape_of(v) for v in obj}, key=repr))
    return type(obj).__name__


def validation_findings(docs: Iterable[dict[str, Any]]) -> list[str]:
    """Errors from our value checks on every document and the schema once per shape."""
    out: list[str] = []
    shapes: set[Any] = set()
    for doc in docs:
        where = f"{doc['metadata']['namespace']}/{doc['metadata']['name']}"
        found = [f for f in check_policy_dict(doc) if f.severity == "error"]
        shape = shape_of(doc)
        if shape not in shapes:
            shapes.add(shape)
            found += schema_findings(doc)
        out.extend(f"{where}: {f}" for f in found)
    return out


class _Endpoints:
    def __init__(self, index: WorkloadIndex) -> None:
        self.index = index

    def of(self, role: str, key: str) -> list[Endpoint]:
        if role == "workload":
            wl = self.index.workloads[key]
            ns_labels = self.index.namespace_labels(wl.namespace)
            return [
                pod_endpoint(
                    wl.namespace,
                    wl.label_map,
                    ns_labels,
                    ports=ports,
                    name=f"{wl.namespace}/{wl.name}",
                )
                for ports in (wl.port_sets or ((),))
            ]
        kind = {"world": "world", "host": "host", "apiserver": "cluster_infra"}.get(role)
        if kind is None:
            return [Endpoint("unknown", name=key)]
        return [Endpoint(kind, ip=key.split(":", 1)[1])]


def run_self_check(rec: Any, inventory: Inventory) -> SelfCheck:
    """Validate ``rec.policies`` and replay ``rec.table`` through the semantics engine."""
    findings = validation_findings(policy_to_dict(p) for p in rec.policies)
    policy_set = compile_policies(rec.policies, inventory)
    eps = _Endpoints(rec.index)
    denied, allowed, unknown = [], [], []
    table = rec.table
    for r in table.to_dict("records"):
        port = None if _is_missing(r["port"]) else int(r["port"])
        verdicts = [
            policy_set.decide(s, d, port, r["protocol"]).verdict
            for s in eps.of(r["src_role"], r["src_key"])
            for d in eps.of(r["dst_role"], r["dst_key"])
        ]
        text = f"{r['src_key']} -> {r['dst_key']} {r['protocol']}/{port}"
        if _is_missing(r["reason"]):
            if any(v != "allowed" for v in verdicts):
                denied.append(text)
        elif r["reason"] not in EXPECTED_ALLOWED and all(v == "allowed" for v in verdicts):
            allowed.append(f"{text} ({r['reason']})")
        elif _flowed_unlearned(r) and _denied_as_stranger(policy_set, eps, r, port):
            unknown.append(f"{text} ({r['reason']})")
    learned = int(table["reason"].isna().sum())
    return SelfCheck(
        tuple(findings),
        tuple(sorted(set(denied))),
        tuple(sorted(set(allowed))),
        learned,
        len(table) - learned,
        tuple(sorted(set(unknown))),
    )


#: Reasons of traffic that really flowed and that nobody chose to block.
UNLEARNED_TRAFFIC: frozenset[str] = frozenset(
    {"unknown-peer", "apiserver-endpoints-unknown", "cilium-identity"}
)


def _flowed_unlearned(r: dict[str, Any]) -> bool:
    return r["reason"] in UNLEARNED_TRAFFIC and bool(r["src_in"] or r["dst_in"])


def _denied_as_stranger(
    policy_set: Any, eps: _Endpoints, r: dict[str, Any], port: int | None
) -> bool:
    """Would the output deny it, with the unattributed end as an address-less stranger?

    No selector matches such a peer and no ipBlock holds it: only a rule without
    peers (or an unisolated side) lets it through, exactly as in the cluster.
    """
    stranger = [Endpoint("world", name="unattributed peer")]
    srcs = eps.of(r["src_role"], r["src_key"]) if r["src_role"] != "unknown" else stranger
    dsts = eps.of(r["dst_role"], r["dst_key"]) if r["dst_role"] != "unknown" else stranger
    return any(
        policy_set.decide(s, d, port, r["protocol"]).verdict == "denied" for s in srcs for d in dsts
    )


def _is_missing(value: Any) -> bool:
    return value is None or value != value  # NaN is the only value unequal to itself
