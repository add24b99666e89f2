"""FlowRecords -> observations: the aggregation SQL and its (pure) finishing.

Two levels, both plain ``GROUP BY`` so any engine streams them and spills:

1. **Connections** (FORMATS.md 1.4). Records are grouped by the oriented
   connection key ``(client ip, client port, server ip, server port, protocol)``
   (per time bucket when asked), so the egress and ingress observations, the
   trace points, the policy-verdict event and the replies of one connection
   count once. Each end takes the best identity any of its records gave
   (labelled pod > pod > cluster_infra > service > host > world > unknown): a
   proxied or ``remote-node`` record does not split the connection. The
   connection's verdict is its most telling record's (policy drop > audit >
   allowed > other drop > error > unknown). The port is the server port seen
   on a non-reply record: a connection seen only through replies yields no port.
2. **Observations**: connections grouped by (source identity, destination
   identity, port, protocol). Identity = (cluster, namespace, stable labels)
   for pods, kind + IP for other peers.

Non-flow and rejected lines ride along as their own groups, so a single pass
over the input (stdin included) gives both observations and statistics.

Readable workload names (``src_workload``): Hubble ``workloads[0]`` or the
inventory owner (``deployment/frontend``); failing that, a pod name shaped
``<name>-<replicaset hash>-<suffix>`` gives ``deployment/<name>``; else
``pod/<pod name>``; a pod known only by labels gives ``app/<app label>``.
Other peers: ``node/<name>`` or ``host``, ``world``, the cluster_infra peer's
name (``kube-apiserver``), ``service/<name>``, ``unknown/<reason>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

from recommender.engines.base import MAX_REJECT_SAMPLES, IngestStats
from recommender.ingest.hubble_sql import (
    DEPLOYMENT_POD_RE,
    VERDICT_RANK,
    lit,
    reject_class_sql,
    stable_labels_json_sql,
)
from recommender.model import OBSERVATION_COLUMNS, VERDICTS

MAX_REFS = 3
_KIND_RANK = {"cluster_infra": 4, "service": 3, "host": 2, "world": 1, "unknown": 0}
_BUCKET_RE = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def bucket_interval(bucket: str) -> str:
    """SQL interval for ``30m``, ``1h``, ``1d``.

    >>> bucket_interval("1h")
    "INTERVAL '1 hours'"
    """
    match = _BUCKET_RE.match(bucket.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"bucket must look like 30m, 1h or 1d, got {bucket!r}")
    return f"INTERVAL '{int(match.group(1))} {_UNITS[match.group(2)]}'"


def workload_sql(s: str) -> str:
    """Readable workload of one end ``s`` (``src``/``dst``) of a record."""
    app = (
        f"coalesce(json_extract_string({s}_labels, '$.\"app.kubernetes.io/name\"'), "
        f"json_extract_string({s}_labels, '$.app'), "
        f"json_extract_string({s}_labels, '$.\"k8s-app\"'))"
    )
    pod = (
        f"coalesce(lower({s}_workload_kind) || '/' || {s}_workload_name, "
        f"'deployment/' || nullif(regexp_extract({s}_pod, {lit(DEPLOYMENT_POD_RE)}, 1), ''), "
        f"'pod/' || {s}_pod, 'app/' || {app}, 'pod/?')"
    )
    return (
        f"CASE {s}_kind WHEN 'pod' THEN {pod} "
        f"WHEN 'host' THEN coalesce('node/' || {s}_node, 'host') WHEN 'world' THEN 'world' "
        f"WHEN 'cluster_infra' THEN coalesce({s}_detail, 'cluster_infra') "
        f"WHEN 'service' THEN 'service/' || coalesce({s}_service_name, '?') "
        f"ELSE 'unknown/' || coalesce({s}_detail, '?') END"
    )


def _workload_rank_sql(s: str) -> str:
    return (
        f"CASE WHEN {s}_workload_name IS NOT NULL THEN 3 WHEN regexp_matches(coalesce({s}_pod, "
        f"''), {lit(DEPLOYMENT_POD_RE)}) THEN 2 WHEN {s}_pod IS NOT NULL THEN 1 ELSE 0 END"
    )


#: Field separator inside the identity string (never in names, labels or IPs; the raw
#: Hubble label string uses \x1f and \x01).
ID_SEP = "\x1e"
_ID_FIELDS = ("kind", "cluster", "namespace", "labels", "ip", "extra", "wlr", "wl")


def _has_labels_sql(s: str) -> str:
    """Cheap test for "a pod with labels": any ``k8s:`` label in the raw string, or
    non-empty resolved labels."""
    return (
        f"(CASE WHEN {s}_j IS NOT NULL THEN contains({s}_j, chr(31) || 'k8s:') "
        f"ELSE coalesce({s}_labels, '{{}}') <> '{{}}' END)"
    )


def identity_sql(s: str) -> str:
    """One string whose ``max`` is the best identity of an end.

    Fields (:data:`_ID_FIELDS`) after a rank digit, joined by :data:`ID_SEP`. Pod
    labels travel as the raw Hubble string (``R…``) or resolved JSON (``J…``):
    the costly stable-label rendering then runs once per connection, not per
    record. A string max is much cheaper than a struct max. Needs ``{s}_wl``.
    """
    ranks = " ".join(f"WHEN {lit(k)} THEN '{v}'" for k, v in _KIND_RANK.items())
    has = _has_labels_sql(s)
    rank = (
        f"CASE WHEN {s}_kind = 'pod' THEN CASE WHEN {has} THEN '6' ELSE '5' END "
        f"ELSE CASE {s}_kind {ranks} ELSE '0' END END"
    )
    labels = (
        f"CASE WHEN {s}_kind = 'pod' THEN CASE WHEN {s}_j IS NOT NULL THEN 'R' || {s}_j "
        f"ELSE 'J' || coalesce({s}_labels, '{{}}') END END"
    )
    extra = (
        f"CASE WHEN ({s}_kind = 'pod' AND NOT {has}) OR "
        f"{s}_kind IN ('unknown', 'cluster_infra', 'service') THEN {s}_wl END"
    )
    parts = [
        rank,
        f"{s}_kind",
        f"{s}_cluster",
        f"{s}_namespace",
        labels,
        f"CASE WHEN {s}_kind <> 'pod' THEN {s}_ip END",
        extra,
        _workload_rank_sql(s),
        f"{s}_wl",
    ]
    return "concat_ws(chr(30), " + ", ".join(f"coalesce(({p})::VARCHAR, '')" for p in parts) + ")"


def identity_field_sql(col: str, field: str) -> str:
    """Field ``field`` back out of an identity string (NULL for '')."""
    index = _ID_FIELDS.index(field) + 2  # 1-based, after the rank
    return f"nullif(split_part({col}, chr(30), {index}), '')"


def _labels_json_sql(col: str) -> str:
    raw = identity_field_sql(col, "labels")
    return (
        f"CASE WHEN starts_with({raw}, 'R') THEN {stable_labels_json_sql(f'substr({raw}, 2)')} "
        f"ELSE substr({raw}, 2) END"
    )


def _vrank_sql() -> str:
    r = VERDICT_RANK
    return (
        f"CASE WHEN is_policy_drop THEN {r['policy_denied']} WHEN verdict = 'audit' THEN "
        f"{r['audit']} WHEN verdict = 'allowed' THEN {r['allowed']} WHEN verdict = 'denied' "
        f"THEN {r['denied']} WHEN verdict = 'error' THEN {r['error']} ELSE {r['unknown']} END"
    )


def connections_sql(records: str, bucket: str | None = None) -> str:
    """Level 1: one row per connection (or per non-flow kind / reject reason)."""
    bucket_expr = (
        f"CASE WHEN line_kind = 'flow' THEN time_bucket({bucket_interval(bucket)}, time_start) END"
        if bucket
        else "NULL::TIMESTAMP"
    )
    req = "NOT coalesce(is_reply, false)"
    return f"""
SELECT bucket, line_kind, reject_class, max(src_id) AS src_id, max(dst_id) AS dst_id, protocol,
       max(CASE WHEN {req} THEN server_port END) AS port, bool_or({req}) AS requested,
       min(time_start) AS first_seen, max(time_end) AS last_seen, min(vrank) AS vrank,
       count(*) AS records, count_if(coalesce(is_reply, false)) AS replies,
       count_if(orientation = 'inferred') AS inferred,
       count_if(orientation = 'unknown') AS unoriented,
       min(ord) AS ord, arg_min(raw_ref, ord) AS ref, max(names) AS names, sum(lost) AS lost,
       CASE WHEN line_kind = 'reject' THEN min({{'o': ord, 's': raw_ref || ': ' || reject_detail}},
            {MAX_REJECT_SAMPLES}) END AS samples
FROM (SELECT *, {bucket_expr} AS bucket,
             CASE WHEN line_kind = 'flow' THEN {identity_sql("src")} END AS src_id,
             CASE WHEN line_kind = 'flow' THEN {identity_sql("dst")} END AS dst_id,
             {_vrank_sql()} AS vrank, file_id * 1099511627776 + line_no AS ord,
             CASE WHEN len(dst_names) > 0 THEN
                  array_to_string(list_sort(list_distinct(dst_names)), ',') END AS names,
             CASE WHEN line_kind = 'reject' THEN {reject_class_sql("reject_detail")} END
                 AS reject_class,
             CASE WHEN line_kind = 'flow' AND (src_ip IS NULL OR dst_ip IS NULL)
                  THEN file_id * 1099511627776 + line_no END AS ukey
      FROM (SELECT *, {workload_sql("src")} AS src_wl, {workload_sql("dst")} AS dst_wl
            FROM {records}))
GROUP BY bucket, line_kind, reject_class, src_ip, src_port, dst_ip, server_port, protocol, ukey"""


def _workload_pick_sql(col: str) -> str:
    """The best-ranked readable workload over a group of identity strings."""
    wl = f"{identity_field_sql(col, 'wlr')} || chr(30) || {identity_field_sql(col, 'wl')}"
    return f"split_part(max({wl}), chr(30), 2)"


_KEY_FIELDS = ("kind", "cluster", "namespace", "labels", "ip", "extra")


def observations_sql(connections: str) -> str:
    """Level 2: observations, plus one row per non-flow kind and reject reason."""
    fields = []
    for side in ("src", "dst"):
        for f in _KEY_FIELDS:
            expr = (
                _labels_json_sql(f"{side}_id")
                if f == "labels"
                else identity_field_sql(f"{side}_id", f)
            )
            fields.append(f"{expr} AS {side}_{f}")
    keys = ", ".join(f"{side}_{f}" for side in ("src", "dst") for f in _KEY_FIELDS)
    counts = ", ".join(
        f"count_if(vrank = {VERDICT_RANK[v]}) AS v_{v}"
        for v in ("audit", "allowed", "error", "unknown")
    )
    return f"""
SELECT bucket, line_kind, reject_class, requested, {keys}, port, protocol,
       count(*) AS connections, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
       count_if(vrank IN ({VERDICT_RANK["policy_denied"]}, {VERDICT_RANK["denied"]})) AS v_denied,
       count_if(vrank = {VERDICT_RANK["policy_denied"]}) AS v_policy_denied, {counts},
       arg_min(ref, ord, {MAX_REFS}) AS refs, list(DISTINCT names) AS names,
       {_workload_pick_sql("src_id")} AS src_workload,
       {_workload_pick_sql("dst_id")} AS dst_workload,
       sum(records) AS records, sum(replies) AS replies, sum(inferred) AS inferred,
       sum(unoriented) AS unoriented, sum(lost) AS lost, max(samples) AS samples, min(ord) AS ord
FROM (SELECT *, {", ".join(fields)} FROM {connections})
GROUP BY bucket, line_kind, reject_class, requested, {keys}, port, protocol"""


# ---------------------------------------------------------------------------
# Finishing (pure pandas on the small level-2 table).
# ---------------------------------------------------------------------------

SORT_COLUMNS = (
    "src_kind",
    "src_cluster",
    "src_namespace",
    "src_workload",
    "src_labels",
    "src_ip",
    "dst_kind",
    "dst_cluster",
    "dst_namespace",
    "dst_workload",
    "dst_labels",
    "dst_ip",
    "port",
    "protocol",
)


def finish(groups: pd.DataFrame, with_bucket: bool) -> tuple[pd.DataFrame, IngestStats]:
    """Split level-2 rows into the observation table and the statistics."""
    flows = groups[groups["line_kind"] == "flow"]
    obs = flows[flows["requested"].astype(bool)]
    observations = _observation_frame(obs, with_bucket)
    stats = _stats(groups, flows, observations)
    return observations, stats


def _observation_frame(obs: pd.DataFrame, with_bucket: bool) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            **{
                c: obs[c]
                for c in (
                    "src_kind",
                    "src_cluster",
                    "src_namespace",
                    "src_workload",
                    "src_labels",
                    "src_ip",
                    "dst_kind",
                    "dst_cluster",
                    "dst_namespace",
                    "dst_workload",
                    "dst_labels",
                    "dst_ip",
                )
            },
            "dst_names": [_names(v) for v in obs["names"]],
            "port": obs["port"].astype("Int64"),
            "protocol": obs["protocol"],
            "connections": obs["connections"].astype("int64"),
            "first_seen": obs["first_seen"],
            "last_seen": obs["last_seen"],
            "verdicts": [_verdicts(r) for r in obs.to_dict("records")],
            "refs": [list(v) for v in obs["refs"]],
        }
    )
    columns = list(OBSERVATION_COLUMNS)
    if with_bucket:
        out.insert(0, "bucket", obs["bucket"])
        columns = ["bucket", *columns]
    out = out[columns]
    order = (["bucket"] if with_bucket else []) + list(SORT_COLUMNS)
    out = out.sort_values(order, na_position="first", kind="mergesort", ignore_index=True)
    return out


def _names(values: Any) -> list[str]:
    found: set[str] = set()
    for v in values if values is not None else []:
        if v:
            found.update(n for n in str(v).split(",") if n)
    return sorted(found)


def _verdicts(row: Mapping[str, Any]) -> dict[str, int]:
    counts = {v: int(row[f"v_{v}"]) for v in VERDICTS}
    counts["policy_denied"] = int(row["v_policy_denied"])
    return counts


def _stats(groups: pd.DataFrame, flows: pd.DataFrame, obs: pd.DataFrame) -> IngestStats:
    non_flow = groups[~groups["line_kind"].isin(["flow", "reject"])]
    rejects = groups[groups["line_kind"] == "reject"]
    samples = sorted((s["o"], s["s"]) for lst in rejects["samples"] if lst is not None for s in lst)
    unknown = flows[
        flows["requested"].astype(bool)
        & ((flows["src_kind"] == "unknown") | (flows["dst_kind"] == "unknown"))
    ]
    reasons: dict[str, int] = {}
    for _, row in unknown.iterrows():
        for side in ("src", "dst"):
            if row[f"{side}_kind"] == "unknown":
                key = str(row[f"{side}_extra"]).removeprefix("unknown/")
                reasons[key] = reasons.get(key, 0) + int(row["connections"])
    return IngestStats(
        lines=int(groups["records"].sum()),
        flow_records=int(flows["records"].sum()),
        connections=int(obs["connections"].sum()),
        replies=int(flows["replies"].sum()),
        reply_only=int(flows.loc[~flows["requested"].astype(bool), "connections"].sum()),
        non_flow={
            str(k): int(v) for k, v in non_flow.groupby("line_kind")["records"].sum().items()
        },
        lost_events=int(groups["lost"].sum()),
        rejects={
            str(k): int(v) for k, v in rejects.groupby("reject_class")["records"].sum().items()
        },
        reject_samples=tuple(s for _, s in samples[:MAX_REJECT_SAMPLES]),
        unknown_peers=int(unknown["connections"].sum()),
        unknown_reasons=reasons,
        policy_drops=int(flows["v_policy_denied"].sum()),
        inferred_orientation=int(flows["inferred"].sum()),
        unknown_orientation=int(flows["unoriented"].sum()),
    )
