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

import numpy as np
import orjson
import pandas as pd

from recommender.model import Inventory
from recommender.semantics import Decision, Endpoint, PolicySet
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
#: Columns of a batch read per record while judging.
_JUDGED_COLUMNS = (
    "dst_port",
    "protocol",
    "is_reply",
    "verdict",
    "is_policy_drop",
    "raw_ref",
    "src_ip",
    "src_port",
    "dst_ip",
)
_Outcome = tuple[Decision, Decision | None, int | None, str]
#: The distinct ends of a batch's sources and destinations, and each record's index into them.
_Ends = tuple[list[ResolvedEnd], list[ResolvedEnd], list[int], list[int]]


@dataclass
class _Judged:
    """One judged batch: each record's ref and line id, and the distinct lines (no ref)."""

    refs: list[Any]
    line_of: list[int]
    rows: list[dict[str, Any]]


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
        # connection key -> outcome id of its last request; outcome id -> (candidate
        # decision, baseline decision, port, protocol) of a distinct judged tuple
        self._connections: dict[tuple[Any, ...], int] = {}
        self._outcomes: list[_Outcome] = []
        self._outcome_ids: dict[_Outcome, int] = {}

    # -- per batch -----------------------------------------------------------

    def evaluate(self, batch: pd.DataFrame) -> pd.DataFrame:
        """Verdicts for one batch, one row per record, in input order."""
        judged = self._judge_batch(batch)
        names = [c for c in VERDICT_COLUMNS if self.baseline is not None or c != "baseline"]
        data: dict[str, list[Any]] = {"ref": judged.refs}
        for c in names[1:]:
            values = [row[c] for row in judged.rows]
            data[c] = [values[g] for g in judged.line_of]
        return pd.DataFrame(data, columns=names)

    def evaluate_lines(self, batch: pd.DataFrame) -> tuple[bytes, int]:
        """The ``--verdicts`` lines of one batch and their number.

        The bytes are those of ``orjson.dumps`` of each row of :meth:`evaluate`,
        but each distinct line is serialized once and its ``ref`` spliced in. As
        in that DataFrame, whose ``port`` column is float when some port of the
        batch is missing, such a batch writes its ports as ``8080.0``.
        """
        judged = self._judge_batch(batch)
        ports = [row["port"] for row in judged.rows]
        as_float = None in ports and any(p is not None for p in ports)
        tails = []
        for row in judged.rows:
            shown = dict(row)
            if self.baseline is None:
                del shown["baseline"]
            if as_float and shown["port"] is not None:
                shown["port"] = float(shown["port"])
            tails.append(b"," + orjson.dumps(shown)[1:] + b"\n")
        dumps = orjson.dumps
        lines = b"".join(
            b'{"ref":' + dumps(ref) + tails[g]
            for ref, g in zip(judged.refs, judged.line_of, strict=True)
        )
        return lines, len(judged.refs)

    def _judge_batch(self, batch: pd.DataFrame) -> _Judged:
        """Judge each distinct tuple once, count the requests, group records by line."""
        n = len(batch)
        src_ends, src_of = self._ends(batch, "src")
        dst_ends, dst_of = self._ends(batch, "dst")
        cols = {c: batch[c].tolist() for c in _JUDGED_COLUMNS}
        protos = [str(p) for p in cols["protocol"]]
        replies = [v is True for v in cols["is_reply"]]
        ends = (src_ends, dst_ends, src_of, dst_of)
        outcome_of = self._outcomes_of(ends, cols, protos, replies)
        self.totals.records += n
        self.totals.replies += sum(replies)
        requests = [i for i, r in enumerate(replies) if not r]
        if requests:
            self._count_requests(batch, requests, ends, outcome_of)
        cni = [
            "policy_denied" if d else v
            for d, v in zip(cols["is_policy_drop"], cols["verdict"], strict=True)
        ]
        line_ids: dict[tuple[Any, ...], int] = {}
        line_of: list[int] = []
        rows: list[dict[str, Any]] = []
        for key in zip(src_of, dst_of, outcome_of, replies, cni, protos, strict=True):
            g = line_ids.get(key)
            if g is None:
                g = line_ids[key] = len(rows)
                rows.append(self._row(src_ends[key[0]], dst_ends[key[1]], *key[2:]))
            line_of.append(g)
        return _Judged(cols["raw_ref"], line_of, rows)

    def _ends(self, batch: pd.DataFrame, side: str) -> tuple[list[ResolvedEnd], list[int]]:
        """The distinct resolved ends of one side, and the index of each record's end."""
        cols = [f"{side}_{c}" for c in _END_COLUMNS]
        frame = batch[cols]
        groups = frame.groupby(cols, dropna=False, sort=False).ngroup().to_numpy()
        values = frame.to_numpy(dtype=object)[_first_positions(groups)]
        ends = [self.resolver.resolve(*_end_key(*v)) for v in values]
        return ends, groups.tolist()

    def _outcomes_of(
        self,
        ends: _Ends,
        cols: dict[str, list[Any]],
        protos: list[str],
        replies: list[bool],
    ) -> list[int]:
        """The outcome of each record: a request's from its distinct tuple, judged
        once; a reply's from the last request of its connection (-1 if never seen)."""
        src_ends, dst_ends, src_of, dst_of = ends
        conns = self._connections
        tuples: dict[tuple[int, int, int | None, str], int] = {}
        out: list[int] = []
        keys = zip(cols["src_ip"], cols["src_port"], cols["dst_ip"], protos, strict=True)
        for i, conn_key in enumerate(keys):
            if replies[i]:
                out.append(conns.get(conn_key, -1))
                continue
            port = _port(cols["dst_port"][i])
            tup = (src_of[i], dst_of[i], port, protos[i])
            o = tuples.get(tup)
            if o is None:
                src, dst = src_ends[tup[0]].endpoint, dst_ends[tup[1]].endpoint
                o = tuples[tup] = self._judge_tuple(src, dst, port, tup[3])
            conns[conn_key] = o
            out.append(o)
        return out

    def _judge_tuple(self, src: Endpoint, dst: Endpoint, port: int | None, proto: str) -> int:
        """The id of the outcome of one (source, destination, port, protocol) tuple."""
        cand = self.candidate.decide(src, dst, port, proto)
        base = self.baseline.decide(src, dst, port, proto) if self.baseline is not None else None
        key = (cand, base, port, proto)
        o = self._outcome_ids.get(key)
        if o is None:
            o = self._outcome_ids[key] = len(self._outcomes)
            self._outcomes.append(key)
        return o

    def _row(
        self, src: ResolvedEnd, dst: ResolvedEnd, o: int, is_reply: bool, cni: Any, proto: str
    ) -> dict[str, Any]:
        """One verdict line but its ``ref``."""
        cand, base, port, _ = self._outcomes[o] if o >= 0 else (_REPLY_UNSEEN, None, None, "")
        return {
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
            "cni_verdict": cni,
            "baseline": base.verdict if base is not None else None,
        }

    def _count_requests(
        self, batch: pd.DataFrame, requests: list[int], ends: _Ends, outcome_of: list[int]
    ) -> None:
        """Totals and edges of the request records, one step per distinct (source,
        destination, outcome, CNI-dropped) group, in the order of its first record."""
        src_ends, dst_ends, src_of, dst_of = ends
        rows = batch.iloc[requests]
        dropped = [bool(v) for v in rows["is_policy_drop"].tolist()]
        keys = list(
            zip(
                [src_of[i] for i in requests],
                [dst_of[i] for i in requests],
                [outcome_of[i] for i in requests],
                dropped,
                strict=True,
            )
        )
        group_ids: dict[tuple[int, int, int, bool], int] = {}
        order = np.fromiter(
            (group_ids.setdefault(k, len(group_ids)) for k in keys), np.int64, len(keys)
        )
        n = len(group_ids)
        sizes = np.bincount(order, minlength=n).tolist()
        conns = np.array([int(v or 0) for v in rows["conn_count"].tolist()], dtype=np.int64)
        sums = np.bincount(order, weights=conns, minlength=n).astype(np.int64).tolist()
        spans = _time_spans(rows["time_start"], order, n)
        refs = _first_refs(rows["raw_ref"].tolist(), order.tolist(), n)
        touched: dict[tuple[Any, ...], list[tuple[int, Any]]] = {}
        t = self.totals
        for (s, d, o, drop), g in group_ids.items():
            records, c = sizes[g], sums[g]
            cand, base, port, proto = self._outcomes[o]
            t.requests += records
            t.connections += c
            t.by_verdict[cand.verdict] = t.by_verdict.get(cand.verdict, 0) + c
            t.cni_dropped += records if drop else 0
            if cand.verdict == "denied" and not drop:
                t.would_deny += c
                if base is None or base.verdict == "allowed":
                    t.gate_denials += records
            outcome = (
                "cni_dropped" if drop else cand.verdict,
                cand.denied_by,
                _policies_of(cand),
                base.verdict if base is not None else None,
            )
            key = (src_ends[s].workload, dst_ends[d].workload, port, proto, *outcome)
            edge = self.edges.get(key)
            if edge is None:
                edge = self.edges[key] = EdgeStats()
            edge.records += records
            edge.connections += c
            first, last = spans[g]
            edge.first_seen = first if edge.first_seen is None else min(edge.first_seen, first)
            edge.last_seen = last if edge.last_seen is None else max(edge.last_seen, last)
            touched.setdefault(key, []).extend(refs[g])
        for key, pending in touched.items():
            edge = self.edges[key]
            room = 3 - len(edge.refs)
            if room > 0:
                edge.refs.extend(str(r) for _, r in sorted(pending, key=lambda p: p[0])[:room])

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


def _first_positions(groups: np.ndarray) -> np.ndarray:
    """The position of the first element of each group id ``0..max``."""
    firsts = np.zeros(int(groups.max()) + 1 if len(groups) else 0, dtype=np.int64)
    firsts[groups[::-1]] = np.arange(len(groups) - 1, -1, -1)
    return firsts


def _time_spans(times: pd.Series, order: np.ndarray, n: int) -> list[tuple[Any, Any]]:
    """(first, last) ``time_start`` of each group, as ``min``/``max`` over its records
    one by one would give them (the engine's aggregate when no time is missing)."""
    if pd.api.types.is_datetime64_any_dtype(times) and not times.isna().any():
        by = times.reset_index(drop=True).groupby(order, sort=True)
        return list(zip(by.min().tolist(), by.max().tolist(), strict=True))
    spans: list[list[Any]] = [[None, None] for _ in range(n)]
    for g, ts in zip(order.tolist(), times.tolist(), strict=True):
        span = spans[g]
        span[0] = ts if span[0] is None else min(span[0], ts)
        span[1] = ts if span[1] is None else max(span[1], ts)
    return [(a, b) for a, b in spans]


def _first_refs(refs: list[Any], order: list[int], n: int) -> list[list[tuple[int, Any]]]:
    """The first three (position, ref) of each group."""
    out: list[list[tuple[int, Any]]] = [[] for _ in range(n)]
    for i, (g, ref) in enumerate(zip(order, refs, strict=True)):
        head = out[g]
        if len(head) < 3:
            head.append((i, ref))
    return out


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
