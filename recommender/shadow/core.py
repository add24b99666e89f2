"""Shadow mode: replay flow records against candidate policies, offline.

The core judges batches of FlowRecords (``FLOW_COLUMNS``) with the exact
semantics engine and keeps a small edge table for the report. It never reads
files: the command streams batches in and writes verdict lines out.

How records are judged:

* Each request record (not a reply) is one (source, destination, port,
  protocol) tuple. Tuples are evaluated once, however many records share them.
* A reply packet is judged as part of its connection: it takes the decision of
  the request with the same (client IP, client port, server IP, protocol). A
  reply whose request was never seen is ``unknown``, never guessed.
* Records the CNI already dropped for policy are judged too, but reported
  apart: they are evidence of what today's policies deny, not traffic the app
  depends on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recommender.model import Inventory
from recommender.semantics import Decision, PolicySet
from recommender.semantics.flow_endpoints import EndpointResolver, ResolvedEnd

#: Columns of the per-record verdict table, in the order of a ``--verdicts`` line.
VERDICT_COLUMNS: tuple[str, ...] = (
    "ref",
    "src",
    "dst",
    "src_workload",
    "dst_workload",
    "port",
    "protocol",
    "verdict",
    "denied_by",
    "rules",
    "policies",
    "reason",
    "is_reply",
    "cni_verdict",
    "baseline",
)

_END_COLUMNS = ("kind", "namespace", "pod", "labels", "ip", "workload_kind", "workload_name")
_REPLY_UNSEEN = Decision("unknown", reason="reply packet whose request was not seen")


@dataclass
class EdgeStats:
    """Counts of one (source workload, destination workload, port, protocol, outcome)."""

    records: int = 0
    connections: int = 0
    first_seen: Any = None
    last_seen: Any = None
    refs: list[str] = field(default_factory=list)


@dataclass
class ShadowTotals:
    records: int = 0
    requests: int = 0
    replies: int = 0
    connections: int = 0
    by_verdict: dict[str, int] = field(default_factory=dict)  # connections by verdict
    cni_dropped: int = 0  # records the CNI dropped for policy
    would_deny: int = 0  # observed (not CNI-dropped) connections the candidate denies
    gate_denials: int = 0  # request records of those that the baseline allows (all, without one)


def _end_key(
    kind: Any, ns: Any, pod: Any, labels: Any, ip: Any, wk: Any, wn: Any
) -> tuple[str | None, str | None, str | None, str | None, str | None, str | None]:
    def s(v: Any) -> str | None:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)

    workload = f"{s(wk).lower()}/{s(wn)}" if s(wk) and s(wn) else None  # type: ignore[union-attr]
    return s(kind), s(ns), s(pod), s(labels), s(ip), workload


class ShadowRun:
    """Judge batches of flow records; accumulate what the report needs.

    Parameters
    ----------
    candidate
        The policies under test, compiled.
    inventory
        The inventory the flows are resolved against.
    baseline
        Optionally, the policies enforced today; edges whose verdict changes
        between the two are reported, and the gate counts only flows the
        baseline allows.
    """

    def __init__(
        self, candidate: PolicySet, inventory: Inventory, baseline: PolicySet | None = None
    ) -> None:
        self.candidate = candidate
        self.baseline = baseline
        self.resolver = EndpointResolver(inventory)
        self.totals = ShadowTotals()
        self.edges: dict[tuple[Any, ...], EdgeStats] = {}
        self._connections: dict[tuple[Any, ...], tuple[Decision, Decision | None, int | None]] = {}

    # -- per batch -----------------------------------------------------------

    def evaluate(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Verdicts for one batch, one row per record, in input order."""
        n = len(batch)
        src = self._ends(batch, "src")
        dst = self._ends(batch, "dst")
        rows: list[dict[str, Any]] = []
        cols = {
            c: batch[c].tolist()
            for c in (
                "dst_port",
                "protocol",
                "is_reply",
                "verdict",
                "is_policy_drop",
                "conn_count",
                "raw_ref",
                "src_ip",
                "src_port",
                "dst_ip",
                "time_start",
            )
        }
        for i in range(n):
            rows.append(self._judge(i, cols, src[i], dst[i]))
        self.totals.records += n
        out = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
        if self.baseline is None:
            out = out.drop(columns=["baseline"])
        return out

    def _ends(self, batch: pd.DataFrame, side: str) -> list[ResolvedEnd]:
        cols = [f"{side}_{c}" for c in _END_COLUMNS]
        frame = batch[cols]
        groups = frame.groupby(cols, dropna=False, sort=False).ngroup().to_numpy()
        firsts: dict[int, ResolvedEnd] = {}
        values = frame.to_numpy(dtype=object)
        out: list[ResolvedEnd] = []
        for i, g in enumerate(groups):
            hit = firsts.get(int(g))
            if hit is None:
                kind, ns, pod, labels, ip, workload = _end_key(*values[i])
                hit = self.resolver.resolve(kind, ns, pod, labels, ip, workload)
                firsts[int(g)] = hit
            out.append(hit)
        return out

    def _judge(
        self, i: int, cols: dict[str, list[Any]], src: ResolvedEnd, dst: ResolvedEnd
    ) -> dict[str, Any]:
        proto = str(cols["protocol"][i])
        conn_key = (cols["src_ip"][i], cols["src_port"][i], cols["dst_ip"][i], proto)
        is_reply = cols["is_reply"][i] is True
        if is_reply:
            cand, base, port = self._connections.get(conn_key, (_REPLY_UNSEEN, None, None))
            self.totals.replies += 1
        else:
            port = _port(cols["dst_port"][i])
            cand = self.candidate.decide(src.endpoint, dst.endpoint, port, proto)
            base = (
                self.baseline.decide(src.endpoint, dst.endpoint, port, proto)
                if self.baseline is not None
                else None
            )
            self._connections[conn_key] = (cand, base, port)
            self._count(i, cols, src, dst, port, proto, cand, base)
        return {
            "ref": cols["raw_ref"][i],
            "src": src.name,
            "dst": dst.name,
            "src_workload": src.workload,
            "dst_workload": dst.workload,
            "port": port,
            "protocol": proto,
            "verdict": cand.verdict,
            "denied_by": cand.denied_by,
            "rules": sorted(cand.egress_rules + cand.ingress_rules),
            "policies": {
                "egress": list(cand.egress_policies),
                "ingress": list(cand.ingress_policies),
            },
            "reason": cand.reason,
            "is_reply": is_reply,
            "cni_verdict": "policy_denied" if cols["is_policy_drop"][i] else cols["verdict"][i],
            "baseline": base.verdict if base is not None else None,
        }

    def _count(
        self,
        i: int,
        cols: dict[str, list[Any]],
        src: ResolvedEnd,
        dst: ResolvedEnd,
        port: int | None,
        proto: str,
        cand: Decision,
        base: Decision | None,
    ) -> None:
        t = self.totals
        conns = int(cols["conn_count"][i] or 0)
        dropped = bool(cols["is_policy_drop"][i])
        t.requests += 1
        t.connections += conns
        t.by_verdict[cand.verdict] = t.by_verdict.get(cand.verdict, 0) + conns
        t.cni_dropped += int(dropped)
        if cand.verdict == "denied" and not dropped:
            t.would_deny += conns
            if base is None or base.verdict == "allowed":
                t.gate_denials += 1
        outcome = (
            "cni_dropped" if dropped else cand.verdict,
            cand.denied_by,
            _policies_of(cand),
            base.verdict if base is not None else None,
        )
        key = (src.workload, dst.workload, port, proto, *outcome)
        edge = self.edges.get(key)
        if edge is None:
            edge = self.edges[key] = EdgeStats()
        edge.records += 1
        edge.connections += conns
        ts = cols["time_start"][i]
        edge.first_seen = ts if edge.first_seen is None else min(edge.first_seen, ts)
        edge.last_seen = ts if edge.last_seen is None else max(edge.last_seen, ts)
        if len(edge.refs) < 3:
            edge.refs.append(str(cols["raw_ref"][i]))

    # -- results -------------------------------------------------------------

    def edge_table(self) -> pd.DataFrame:
        """One row per (edge, outcome), sorted; the report's raw material."""
        rows = []
        for key, e in self.edges.items():
            src, dst, port, proto, outcome, denied_by, policies, base = key
            rows.append(
                {
                    "src_workload": src,
                    "dst_workload": dst,
                    "port": port,
                    "protocol": proto,
                    "outcome": outcome,
                    "denied_by": denied_by,
                    "policies": list(policies),
                    "baseline": base,
                    "records": e.records,
                    "connections": e.connections,
                    "first_seen": _iso(e.first_seen),
                    "last_seen": _iso(e.last_seen),
                    "refs": list(e.refs),
                }
            )
        cols = [
            "src_workload",
            "dst_workload",
            "port",
            "protocol",
            "outcome",
            "denied_by",
            "policies",
            "baseline",
            "records",
            "connections",
            "first_seen",
            "last_seen",
            "refs",
        ]
        frame = pd.DataFrame(rows, columns=cols)
        if frame.empty:
            return frame
        frame["_port"] = frame["port"].fillna(-1)
        frame = frame.sort_values(
            ["src_workload", "dst_workload", "_port", "protocol", "outcome"], kind="stable"
        ).drop(columns="_port")
        return frame.reset_index(drop=True)


def _policies_of(d: Decision) -> tuple[str, ...]:
    if d.denied_by == "egress":
        return d.egress_policies
    if d.denied_by == "ingress":
        return d.ingress_policies
    if d.denied_by == "both":
        return tuple(sorted(set(d.egress_policies) | set(d.ingress_policies)))
    return ()


def _port(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return int(value)


def _iso(ts: Any) -> str | None:
    if ts is None or (isinstance(ts, float) and math.isnan(ts)):
        return None
    return str(pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


def run_shadow(
    batches: Iterable[pd.DataFrame],
    candidate: PolicySet,
    inventory: Inventory,
    baseline: PolicySet | None = None,
) -> tuple[ShadowRun, pd.DataFrame]:
    """Judge every batch; return the run and all verdict rows (for small inputs and tests)."""
    run = ShadowRun(candidate, inventory, baseline)
    frames = [run.evaluate(b) for b in batches]
    verdicts = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=list(VERDICT_COLUMNS))
    )
    return run, verdicts


def uncovered(policies: PolicySet) -> dict[str, Sequence[str]]:
    """Pods that no policy selects, per direction."""
    return {d: policies.uncovered_pods(d) for d in ("ingress", "egress")}
