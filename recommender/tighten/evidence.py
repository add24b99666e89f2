"""Evidence for tightening: observations turned into concrete (source, destination) cases.

An observation names its ends by identity (namespace plus stable labels for a
pod, an address otherwise). The semantics need concrete endpoints, and two
things about a pod are not in its identity: its IP (an ipBlock peer matches
pod IPs too) and its full labels (a selector may read a non-stable key). So a
pod end expands to every live inventory pod of that identity, and a verdict
holds for the observation only if it holds for every (source pod, destination
pod) pair. A pod end that no live pod matches (a finished CronJob run, a pod
gone since) falls back to :class:`recommender.semantics.flow_endpoints.EndpointResolver`
(the identity itself, with no IP). Nothing is guessed: an end that cannot be
resolved makes the observation ``unknown``, and unknown observations are never
evidence for keeping, narrowing or widening anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recommender.labels import decode_labels, encode_labels, stable_labels
from recommender.model import Inventory, Pod
from recommender.recommend.learning import check_observations, verdict_counts
from recommender.recommend.steps import timestamp_text
from recommender.recommend.suspicious import detect_scans
from recommender.semantics import Decision, Endpoint, PolicySet, endpoint_for_pod
from recommender.semantics.flow_endpoints import EndpointResolver
from recommender.semantics.resolve import is_live
from recommender.vocabulary import PROTOCOLS


@dataclass(frozen=True)
class Observed:
    """One observation with its concrete cases.

    ``flowed`` counts connections that really went through (allowed, forwarded,
    audit); ``audit`` those an audit-mode policy would have dropped;
    ``policy_denied`` those the CNI dropped for policy.
    """

    index: int
    src: str  # readable: namespace/kind/name for pods, kind:ip otherwise
    dst: str
    src_kind: str
    dst_kind: str
    port: int | None
    protocol: str
    connections: int
    flowed: int
    audit: int
    policy_denied: int
    first_seen: str | None
    last_seen: str | None
    refs: tuple[str, ...]
    cases: tuple[tuple[Endpoint, Endpoint], ...]
    suspicious: bool = False
    #: Per case: False for a node paired with a pod on another node while the
    #: identity has pods on that node (see :func:`plausible_cases`).
    plausible: tuple[bool, ...] = ()

    @property
    def is_expressible(self) -> bool:
        """TCP/UDP/SCTP with a port: something a NetworkPolicy port entry can name."""
        return self.protocol in PROTOCOLS and self.port is not None

    def evidence(self) -> dict[str, Any]:
        """Counts and times for reports."""
        return {
            "connections": self.connections,
            "flowed": self.flowed,
            "audit": self.audit,
            "policy_denied": self.policy_denied,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
            "refs": list(self.refs),
        }


@dataclass(frozen=True)
class Judged:
    """An observation judged by one policy set: one decision per case."""

    observed: Observed
    decisions: tuple[Decision, ...]

    @property
    def verdict(self) -> str:
        """``allowed``/``denied`` when every case agrees, ``unknown`` or ``mixed`` otherwise."""
        return _verdict({d.verdict for d in self.decisions})

    @property
    def any_allowed(self) -> bool:
        """True when some case is allowed."""
        return any(d.verdict == "allowed" for d in self.decisions)

    @property
    def plausible_verdict(self) -> str:
        """:attr:`verdict` over the plausible cases only (what widening reads)."""
        return _verdict(
            {d.verdict for d, ok in zip(self.decisions, self._mask(), strict=True) if ok}
        )

    def _mask(self) -> tuple[bool, ...]:
        return self.observed.plausible or (True,) * len(self.decisions)

    def denied_sides(self) -> tuple[str, ...]:
        """Sides (``egress``, ``ingress``) that deny at least one plausible case."""
        sides = set()
        for d, ok in zip(self.decisions, self._mask(), strict=True):
            if not ok:
                continue
            if d.denied_by in ("egress", "both"):
                sides.add("egress")
            if d.denied_by in ("ingress", "both"):
                sides.add("ingress")
        return tuple(s for s in ("egress", "ingress") if s in sides)


def _verdict(verdicts: set[str]) -> str:
    if not verdicts or "unknown" in verdicts:
        return "unknown"
    return verdicts.pop() if len(verdicts) == 1 else "mixed"


def plausible_cases(cases: Sequence[tuple[Endpoint, Endpoint]]) -> tuple[bool, ...]:
    """Which (source, destination) pairs the observation can really stand for.

    Aggregation keeps a node end's address but not which replica it reached.
    Kubelet probes reach the pods of their own node, so when a node end has
    pods of the other identity on its node, the pairs with pods elsewhere are
    marked implausible. They still count for hits and the guarantees (keeping
    more is safe); they are never widening evidence.
    """
    local_nodes = {p.node for s, d in cases for p in (s, d) if p.kind == "pod" and p.node}
    out = []
    for s, d in cases:
        host, pod = (s, d) if s.kind == "host" else (d, s)
        if host.kind == "host" and pod.kind == "pod" and host.node in local_nodes:
            out.append(pod.node == host.node)
        else:
            out.append(True)
    return tuple(out)


class CaseBuilder:
    """Expand observation ends into concrete endpoints (see the module docstring)."""

    def __init__(self, inventory: Inventory) -> None:
        self.inventory = inventory
        self.resolver = EndpointResolver(inventory)
        self._by_identity: dict[tuple[str, str], list[Pod]] = {}
        self._by_workload: dict[tuple[str, str], list[Pod]] = {}
        for pod in sorted(inventory.pods, key=lambda p: (p.namespace, p.name)):
            if not is_live(pod) or pod.host_network:
                continue
            ident = (pod.namespace, encode_labels(stable_labels(pod.labels)))
            self._by_identity.setdefault(ident, []).append(pod)
            self._by_workload.setdefault((pod.namespace, pod.workload), []).append(pod)
        self._cache: dict[tuple[Any, ...], tuple[tuple[Endpoint, ...], str]] = {}

    def ends(
        self, kind: Any, namespace: Any, workload: Any, labels: Any, ip: Any
    ) -> tuple[tuple[Endpoint, ...], str]:
        """Endpoints of one observation end, and its readable name."""
        key = tuple(_text(v) for v in (kind, namespace, workload, labels, ip))
        hit = self._cache.get(key)
        if hit is None:
            hit = self._cache[key] = self._ends(*key)
        return hit

    def _ends(
        self,
        kind: str | None,
        ns: str | None,
        workload: str | None,
        labels: str | None,
        ip: str | None,
    ) -> tuple[tuple[Endpoint, ...], str]:
        if kind == "pod" and ns:
            name = f"{ns}/{workload or '?'}"
            stable = stable_labels(decode_labels(labels))
            pods = (
                self._by_identity.get((ns, encode_labels(stable)), [])
                if stable
                else self._by_workload.get((ns, workload or ""), [])
            )
            if pods:
                return tuple(endpoint_for_pod(p, self.inventory) for p in pods), name
            end = self.resolver.resolve("pod", ns, None, labels, ip, workload)
            return (end.endpoint,), name
        end = self.resolver.resolve(kind, ns, None, labels, ip, workload)
        return (end.endpoint,), f"{kind or 'unknown'}:{ip or workload or '?'}"


def _text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return str(value)


def _port(value: Any) -> int | None:
    text = _text(value)
    return None if text is None or text == "<NA>" else int(float(text))


def build_evidence(observations: pd.DataFrame, inventory: Inventory) -> list[Observed]:
    """One :class:`Observed` per observation row (``OBSERVATION_COLUMNS``), in row order."""
    check_observations(observations)
    builder = CaseBuilder(inventory)
    rows = observations.to_dict(orient="records")
    suspicious = _scan_mask(rows, builder)
    return [_observed(i, r, builder, suspicious[i]) for i, r in enumerate(rows)]


def _observed(i: int, r: Mapping[str, Any], builder: CaseBuilder, suspicious: bool) -> Observed:
    src, src_name = builder.ends(
        r["src_kind"], r["src_namespace"], r["src_workload"], r["src_labels"], r["src_ip"]
    )
    dst, dst_name = builder.ends(
        r["dst_kind"], r["dst_namespace"], r["dst_workload"], r["dst_labels"], r["dst_ip"]
    )
    verdicts = r["verdicts"] if isinstance(r["verdicts"], Mapping) else {}
    flowed, policy, _ = verdict_counts(verdicts)
    return Observed(
        index=i,
        src=src_name,
        dst=dst_name,
        src_kind=_text(r["src_kind"]) or "unknown",
        dst_kind=_text(r["dst_kind"]) or "unknown",
        port=_port(r["port"]),
        protocol=(_text(r["protocol"]) or "").upper(),
        connections=int(r["connections"] or 0),
        flowed=flowed,
        audit=int(verdicts.get("audit") or 0),
        policy_denied=policy,
        first_seen=timestamp_text(r["first_seen"]),
        last_seen=timestamp_text(r["last_seen"]),
        refs=tuple(str(x) for x in (r["refs"] if _is_list(r["refs"]) else ())[:3]),
        cases=(cases := tuple((s, d) for s in src for d in dst)),
        suspicious=suspicious,
        plausible=plausible_cases(cases),
    )


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple) or hasattr(value, "tolist")


def _scan_mask(rows: Sequence[Mapping[str, Any]], builder: CaseBuilder) -> list[bool]:
    """Scan-shaped observations (``recommender.recommend.suspicious``): never widening evidence."""
    if not rows:
        return []
    table = []
    for r in rows:
        dst, dst_name = builder.ends(
            r["dst_kind"], r["dst_namespace"], r["dst_workload"], r["dst_labels"], r["dst_ip"]
        )
        _, src_name = builder.ends(
            r["src_kind"], r["src_namespace"], r["src_workload"], r["src_labels"], r["src_ip"]
        )
        port, proto = _port(r["port"]), (_text(r["protocol"]) or "").upper()
        declared = any(
            cp.port == port and cp.protocol.upper() == proto for ep in dst for cp in ep.ports
        )
        table.append(
            {
                "src_key": src_name,
                "dst_key": dst_name,
                "dst_in_cluster": _text(r["dst_kind"]) == "pod",
                "port": port,
                "protocol": proto,
                "connections": int(r["connections"] or 0),
                "declared": declared,
            }
        )
    mask, _ = detect_scans(pd.DataFrame(table))
    return [bool(v) for v in mask.tolist()]


def judge(evidence: Sequence[Observed], policies: PolicySet) -> list[Judged]:
    """Every case of every observation decided by ``policies``."""
    return [
        Judged(o, tuple(policies.decide(s, d, o.port, o.protocol or "TCP") for s, d in o.cases))
        for o in evidence
    ]
