"""Follow mode: judge a live stream chunk by chunk, with the counts of one batch run.

``netpol shadow --follow`` reads its input in chunks (each spooled and read by
the engine like a file). Each chunk's FlowRecords go through the same
:class:`~recommender.shadow.core.ShadowRun` a batch run uses; this module
makes the chunked run count exactly like a single one over the whole stream:

* The engine marks the first request record of each connection with
  ``conn_count`` 1 *within one read*. A connection whose records straddle two
  chunks would be counted twice, so a request record whose connection key
  was seen in an earlier chunk gets ``conn_count`` 0 (the key is the one of
  :func:`recommender.observe.engines.common.flow_table_sql`).
* ``raw_ref`` names the spool file; it is rebased to the stream's own line
  numbers (``-:120`` for stdin, ``path:120`` for a followed file).

It also tallies each judged batch into plain counters (:class:`Tally`) that
the metrics exporter adds up. No I/O here: the edge reads and serves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from recommender.shadow.core import ShadowRun

#: ``(action, direction, namespace, workload, policy)`` of one verdict series.
VerdictKey = tuple[str, str, str, str, str]
#: ``(policy, direction, rule index)`` of one rule series.
RuleKey = tuple[str, str, str]

_PORTED = ("TCP", "UDP", "SCTP")  # protocols whose server port is part of the key


@dataclass
class Tally:
    """What one batch added: connections per verdict series, records, rule use."""

    verdicts: dict[VerdictKey, int] = field(default_factory=dict)
    records: int = 0
    rule_last_seen: dict[RuleKey, float] = field(default_factory=dict)
    rule_connections: dict[RuleKey, int] = field(default_factory=dict)

    def merge(self, other: Tally) -> None:
        """Add ``other`` into this tally."""
        for key, n in other.verdicts.items():
            self.verdicts[key] = self.verdicts.get(key, 0) + n
        self.records += other.records
        for rule, n in other.rule_connections.items():
            self.rule_connections[rule] = self.rule_connections.get(rule, 0) + n
        for rule, ts in other.rule_last_seen.items():
            self.rule_last_seen[rule] = max(ts, self.rule_last_seen.get(rule, ts))


class FollowedShadow:
    """Judge successive chunks of one stream with ``run``, as if read in one go.

    Parameters
    ----------
    run
        The shadow run (its totals and edges are the report's).
    name
        How the stream is referenced in ``raw_ref`` (``-`` or the followed path).
    """

    def __init__(self, run: ShadowRun, name: str) -> None:
        self.run = run
        self.name = name
        # Every connection key seen so far; a batch run's window function sees them
        # all too, and ShadowRun already keeps one entry per connection.
        self._seen: set[tuple[Any, ...]] = set()

    def judge(self, batch: pd.DataFrame, spool: str, offset: int) -> tuple[pd.DataFrame, Tally]:
        """Verdict rows of one batch read from ``spool``, and its tally.

        ``offset`` is the stream line number of the spool's line 0 (spool line
        ``n`` is stream line ``offset + n``).
        """
        fixed = batch.copy()
        fixed["conn_count"] = list(self._conn_counts(fixed))
        fixed["raw_ref"] = [rebase_ref(r, spool, self.name, offset) for r in fixed["raw_ref"]]
        verdicts = self.run.evaluate(fixed)
        return verdicts, tally(verdicts, fixed)

    def _conn_counts(self, batch: pd.DataFrame) -> Iterator[int]:
        cols = ("conn_count", "src_ip", "src_port", "dst_ip", "dst_port", "protocol")
        for count, *key in zip(*(batch[c].tolist() for c in cols), strict=True):
            if not count or _missing(key[0]) or _missing(key[2]):
                yield int(count or 0)  # no key (an IP is missing): never merged, as in SQL
                continue
            if str(key[4]) not in _PORTED:
                key[3] = None  # flow_table_sql keys on server_port, NULL for these
            k = tuple(None if _missing(v) else v for v in key)
            yield 0 if k in self._seen else 1
            self._seen.add(k)


def rebase_ref(ref: Any, spool: str, name: str, offset: int) -> Any:
    """``<spool>:12`` -> ``<name>:<12 + offset>``; anything else unchanged.

    >>> rebase_ref("/tmp/s/chunk.jsonl:3", "/tmp/s/chunk.jsonl", "-", 10)
    '-:13'
    """
    if not isinstance(ref, str) or not ref.startswith(spool + ":"):
        return ref
    line = ref[len(spool) + 1 :]
    return f"{name}:{int(line) + offset}" if line.isdigit() else ref


def tally(verdicts: pd.DataFrame, batch: pd.DataFrame) -> Tally:
    """Connections per verdict series and rule use of one judged batch.

    One increment per connection (``conn_count``) of each request record, so the
    sums equal the shadow report's totals; see :func:`verdict_key`.
    """
    out = Tally(records=len(batch))
    counts = batch["conn_count"].tolist()
    times = batch["time_start"].tolist()
    for row, conns, ts in zip(verdicts.to_dict(orient="records"), counts, times, strict=True):
        if row["is_reply"]:
            continue
        if conns:
            key = verdict_key(row)
            out.verdicts[key] = out.verdicts.get(key, 0) + int(conns)
        _use_rules(out, row["rules"], int(conns or 0), _seconds(ts))
    return out


def verdict_key(row: Mapping[str, Any]) -> VerdictKey:
    """The series of one judged request: where it was decided, and by which policies.

    ``would_deny`` is attributed to the direction that denies. When both would,
    it is the egress side's: egress is enforced at the source, so the packet
    never reaches the destination's ingress check. An allowed connection is
    attributed to the destination's ingress when an ingress rule admitted it,
    else to the source's egress, else ``none`` (no policy selects either end).
    """
    action = _action(row)
    policies = row["policies"]
    if row["verdict"] == "denied":
        direction = "egress" if row["denied_by"] in ("egress", "both") else "ingress"
        names: Iterable[str] = policies[direction]
    else:
        by_dir = _rule_policies(row["rules"])
        direction = next((d for d in ("ingress", "egress") if by_dir.get(d)), "none")
        names = by_dir.get(direction, ())
    end = row["src_workload"] if direction == "egress" else row["dst_workload"]
    namespace, workload = workload_labels(end)
    return action, direction, namespace, workload, ",".join(sorted(set(names)))


def _action(row: Mapping[str, Any]) -> str:
    if row["cni_verdict"] == "policy_denied":
        return "cni_dropped"  # the report's cni_dropped edges: not would_deny
    return {"allowed": "allow", "denied": "would_deny"}.get(str(row["verdict"]), "unknown")


def workload_labels(workload: Any) -> tuple[str, str]:
    """``(namespace, workload)`` labels of a resolved end, bounded in cardinality.

    A pod's ``ns/kind/name`` gives ``("ns", "kind/name")``; a non-pod end
    (``world:1.2.3.4``, ``host:10.0.0.1``) gives its kind only, never its IP.

    >>> workload_labels("shop/deployment/web"), workload_labels("world:1.2.3.4")
    (('shop', 'deployment/web'), ('', 'world'))
    >>> workload_labels("pod:shop/web-1")
    ('shop', 'pod')
    """
    if not isinstance(workload, str) or not workload:
        return "", "unknown"
    head, sep, rest = workload.partition(":")
    if sep and "/" not in head:
        return (rest.split("/", 1)[0] if head == "pod" and "/" in rest else ""), head
    namespace, _, name = workload.partition("/")
    return namespace, name


def parse_rule_id(rule_id: str) -> RuleKey | None:
    """``ns/name#ingress[0]`` -> ``("ns/name", "ingress", "0")``; None if not that shape.

    >>> parse_rule_id("shop/allow-web#egress[2]")
    ('shop/allow-web', 'egress', '2')
    """
    policy, sep, rest = rule_id.rpartition("#")
    direction, bracket, index = rest.partition("[")
    if not sep or not bracket or not index.endswith("]"):
        return None
    return policy, direction, index[:-1]


def rule_ids(policies: Any) -> list[str]:
    """Ids of every rule that can allow traffic, over the candidate policies of every kind.

    NetworkPolicy rules all allow; of a CiliumNetworkPolicy its allow sections (not
    ``ingressDeny``/``egressDeny``); of a ClusterNetworkPolicy its ``Accept`` rules
    (``Deny`` and ``Pass`` rules never appear among the rules that allowed a flow).
    """
    out: list[str] = []
    for p in getattr(policies, "policies", ()):
        for direction in ("ingress", "egress"):
            if hasattr(p, "rules"):
                rules = p.rules(direction) or ()
            else:  # a CiliumNetworkPolicy
                rules = p.sections.get(direction) or ()
            out.extend(r.rule_id for r in rules if getattr(r, "action", "Accept") == "Accept")
    return out


def _rule_policies(rules: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for rid in rules:
        parsed = parse_rule_id(rid)
        if parsed is not None:
            out.setdefault(parsed[1], []).append(parsed[0])
    return out


def _use_rules(out: Tally, rules: Iterable[str], conns: int, ts: float | None) -> None:
    for rid in rules:
        key = parse_rule_id(rid)
        if key is None:
            continue
        out.rule_connections[key] = out.rule_connections.get(key, 0) + conns
        if ts is not None and ts > out.rule_last_seen.get(key, -math.inf):
            out.rule_last_seen[key] = ts


def _seconds(ts: Any) -> float | None:
    if _missing(ts):
        return None
    return float(pd.Timestamp(ts).timestamp())


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NaT
