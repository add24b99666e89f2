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

Every engine runs the same stages, :func:`aggregation_stages`: each one a
plain SELECT into a table, each keeping only fixed-size state per group (or a
sort), so an engine can spill all of them. Per-observation picks that would be
lists (the first ``MAX_REFS`` refs, the first reject samples) are window ranks
turned into columns; destination names get their own small stage.

Readable workload names (``src_workload``): Hubble ``workloads[0]`` or the
inventory owner (``deployment/frontend``); failing that, a pod name shaped
``<name>-<replicaset hash>-<suffix>`` gives ``deployment/<name>``; else
``pod/<pod name>``; a pod known only by labels gives ``app/<app label>``.
Other peers: ``node/<name>`` or ``host``, ``world``, the cluster_infra peer's
name (``kube-apiserver``), ``service/<name>``, ``unknown/<reason>``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from recommender.flows.hubble import normalized_endpoints_sql
from recommender.flows.hubble_sql import (
    DEPLOYMENT_POD_RE,
    VERDICT_RANK,
    lit,
    reject_class_sql,
    stable_hash_sql,
    stable_labels_json_sql,
)
from recommender.model import OBSERVATION_COLUMNS
from recommender.observe.engines.base import MAX_REJECT_SAMPLES, IngestStats
from recommender.semantics.policy_fields import printable
from recommender.vocabulary import ID_SEP, ID_SEP_SQL, IDENTITY_COLUMNS, POLICY_DENIED, VERDICTS

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


_ID_FIELDS = ("kind", "cluster", "namespace", "labels", "ip", "extra", "wlr", "wl", "names")
_KEY_FIELDS = ("kind", "cluster", "namespace", "labels", "ip", "extra")
ORD_SHIFT = 40  # ord = file_id << 40 | line_no
#: The identity string of an endpoint whose records are rejected.
BAD_ID = ID_SEP.join(["0", "unknown", "", "", "", "", "invalid", "0", "unknown/invalid", ""])


def _has_labels_sql(s: str) -> str:
    """Cheap test for "a pod with labels": any ``k8s:`` label in the raw string, or
    non-empty resolved labels."""
    return (
        f"(CASE WHEN {s}_j IS NOT NULL THEN contains({s}_j, chr(31) || 'k8s:') "
        f"ELSE coalesce({s}_labels, '{{}}') <> '{{}}' END)"
    )


def identity_sql(s: str, names: str = "NULL") -> str:
    """The identity of one end of a record as one string: a rank digit, then
    :data:`_ID_FIELDS` joined by :data:`ID_SEP`.

    Pod labels travel as the raw Hubble string (``R…``) or resolved JSON
    (``J…``); stable labels are rendered once per distinct identity, not per
    record. Needs the column ``{s}_wl``; ``names`` is the destination's FQDN string
    (:func:`names_sql`), NULL for a source.
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
        names,
    ]
    return (
        f"concat_ws({ID_SEP_SQL}, "
        + ", ".join(f"coalesce(({p})::VARCHAR, '')" for p in parts)
        + ")"
    )


def identity_field_sql(col: str, field: str) -> str:
    """Field ``field`` back out of an identity string (NULL for '')."""
    index = _ID_FIELDS.index(field) + 2  # 1-based, after the rank
    return f"nullif(split_part({col}, {ID_SEP_SQL}, {index}), '')"


def identity_code_sql(col: str) -> str:
    """A BIGINT that orders identities by rank, then workload rank, then a hash.

    Connections keep ``max(code)`` (fixed-size state, spillable); the strings are
    looked up once per distinct identity.
    """
    rank = (
        f"split_part({col}, {ID_SEP_SQL}, 1)::BIGINT * 4 + coalesce(try_cast("
        f"{identity_field_sql(col, 'wlr')} AS BIGINT), 0)"
    )
    # rank <= 27 fits 5 bits above the 56-bit hash: a signed BIGINT in every engine.
    # The hash must be the same in every engine: it breaks ties between identities.
    return f"(({rank}) << 58) | {stable_hash_sql(col)}"


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


def names_sql(names: str) -> str:
    """A destination's FQDNs as one sorted ``,``-joined string (NULL when none)."""
    return (
        f"CASE WHEN len({names}) > 0 THEN "
        f"array_to_string(list_sort(list_distinct({names})), ',') END"
    )


def _prepared_sql(packets: str, bucket: str | None) -> str:
    """Per record: bucket, raw-endpoint hashes, verdict rank, input order.

    ``packets`` is :func:`recommender.flows.hubble.oriented_packets_sql`; nothing
    here looks inside an endpoint (that happens once per distinct endpoint).
    """
    bucket_expr = (
        f"CASE WHEN line_kind = 'flow' THEN time_bucket({bucket_interval(bucket)}, time_start) END"
        if bucket
        else "NULL::TIMESTAMP"
    )
    ord_expr = f"(file_id::BIGINT << {ORD_SHIFT}) + line_no"
    return f"""
SELECT *, hash(src_e) AS src_h, hash(dst_e) AS dst_h
FROM (SELECT *, {bucket_expr} AS bucket, src_ep.ip AS src_ip, dst_ep.ip AS dst_ip,
             CASE WHEN line_kind = 'flow' THEN src_ep END AS src_e,
             CASE WHEN line_kind = 'flow' THEN dst_ep END AS dst_e,
             {_vrank_sql()} AS vrank, {ord_expr} AS ord,
             CASE WHEN line_kind = 'reject' THEN {ord_expr} END AS reject_ord,
             CASE WHEN line_kind = 'reject' THEN {reject_class_sql("reject_detail")} END
                 AS reject_class,
             CASE WHEN line_kind = 'flow' AND (src_ep.ip IS NULL OR dst_ep.ip IS NULL)
                  THEN {ord_expr} END AS ukey
      FROM {packets})"""


_CONN_KEY = (
    "bucket, line_kind, reject_class, reject_detail, reject_ord, src_ip, src_port, "
    "dst_ip, server_port, protocol, ukey"
)


def _level1_sql(prepared: str) -> str:
    """Connections split by raw endpoints (grouping set 3) plus the distinct raw
    endpoints (sets 1 and 2), in one pass over the records.

    Connection rows hold only fixed-size aggregate states, so DuckDB can spill them.
    """
    req = "NOT coalesce(is_reply, false)"
    return f"""
SELECT GROUPING(src_e, dst_e) AS g, src_e, dst_e, src_h, dst_h, {_CONN_KEY},
       max(CASE WHEN {req} THEN server_port END) AS port, bool_or({req}) AS requested,
       min(time_start) AS first_seen, max(time_end) AS last_seen, min(vrank) AS vrank,
       count(*) AS records, count_if(coalesce(is_reply, false)) AS replies,
       count_if(orientation = 'inferred') AS inferred,
       count_if(orientation = 'unknown') AS unoriented, min(ord) AS ord, sum(lost) AS lost,
       min(observer) AS obs_lo, max(observer) AS obs_hi
FROM ({prepared})
GROUP BY GROUPING SETS (({_CONN_KEY}, src_h, dst_h), (src_e), (dst_e))"""


def _endpoints_sql(level1: str, side: str, resolve: Callable[[str], str] | None) -> str:
    """Each distinct raw endpoint of one end: its hash, identity string and code.

    ``resolve`` wraps a relation with inventory resolution of the ``x_`` end
    (or None without an inventory).
    """
    g = 1 if side == "src" else 2
    # One row per hash, not per value: records join on the hash alone, and hash() maps
    # distinct values together (DuckDB: a NULL struct and one of NULL fields, [] and
    # [NULL]), which would duplicate those records (issue 18). min(): deterministic.
    distinct = (
        f"(SELECT hash({side}_e) AS h, min({side}_e) AS ep FROM {level1} WHERE g = {g} GROUP BY 1)"
    )
    norm = normalized_endpoints_sql(distinct, "ep", "x")
    if resolve is not None:
        norm = resolve(norm)
    names = names_sql("x_names") if side == "dst" else "NULL"
    # An invalid endpoint (x_bad) rejects its records: its identity never shows, and is
    # a constant, so no text of it reaches the identity strings.
    ident = f"CASE WHEN x_bad IS NULL THEN {identity_sql('x', names)} ELSE {lit(BAD_ID)} END"
    wl = f"CASE WHEN x_bad IS NULL THEN {workload_sql('x')} END"
    return f"""
SELECT h, id, {identity_code_sql("id")} AS code, bad
FROM (SELECT h, {ident} AS id, x_bad AS bad
      FROM (SELECT *, {wl} AS x_wl FROM ({norm})))"""


def endpoints_sql(level1: str, resolve: Any = None) -> str:
    """Each distinct raw endpoint of either end (``side``): hash, identity string, code.

    ``resolve`` is None, or a function wrapping a relation of normalized ``x_``
    endpoints with inventory resolution (see :func:`recommender.semantics.resolve.resolved_sql`).
    """
    return (
        f"SELECT 'src' AS side, * FROM ({_endpoints_sql(level1, 'src', resolve)}) "
        f"UNION ALL SELECT 'dst' AS side, * FROM ({_endpoints_sql(level1, 'dst', resolve)})"
    )


def connections_sql(level1: str, endpoints: str) -> str:
    """Connections: the raw-endpoint split of set 3 merged, each end's best identity code.

    Only fixed-size aggregate states, so the engine can spill them.
    """
    keys = [k.strip() for k in _CONN_KEY.split(",")]
    values = (
        "port, requested, first_seen, last_seen, vrank, records, replies, inferred, "
        "unoriented, ord, lost, obs_lo, obs_hi"
    )
    # A record with an invalid endpoint is a reject, the endpoint's reason its detail.
    bad = "CASE WHEN c.line_kind = 'flow' THEN coalesce(s.bad, d.bad) END"
    joined = f"""
SELECT {", ".join(f"c.{k.strip()}" for k in [*keys, *values.split(",")])},
       s.code AS src_code, d.code AS dst_code, {bad} AS bad
FROM (SELECT * FROM {level1} WHERE g = 3) c
LEFT JOIN (SELECT * FROM {endpoints} WHERE side = 'src') s ON s.h = c.src_h
LEFT JOIN (SELECT * FROM {endpoints} WHERE side = 'dst') d ON d.h = c.dst_h"""
    relabelled = ("line_kind", "reject_class", "reject_detail")
    relabel = f"""
SELECT {", ".join(k for k in keys if k not in relabelled)}, {values}, src_code, dst_code,
       CASE WHEN bad IS NOT NULL THEN 'reject' ELSE line_kind END AS line_kind,
       CASE WHEN bad IS NOT NULL THEN {reject_class_sql("bad")} ELSE reject_class END
           AS reject_class,
       coalesce(bad, reject_detail) AS reject_detail
FROM ({joined})"""
    return f"""
SELECT bucket, line_kind, reject_class, reject_detail, protocol,
       max(src_code) AS src_code, max(dst_code) AS dst_code, max(port) AS port,
       bool_or(requested) AS requested, min(first_seen) AS first_seen,
       max(last_seen) AS last_seen, min(vrank) AS vrank, sum(records) AS records,
       sum(replies) AS replies, sum(inferred) AS inferred, sum(unoriented) AS unoriented,
       min(ord) AS ord, sum(lost) AS lost, min(obs_lo) AS obs_lo, max(obs_hi) AS obs_hi
FROM ({relabel})
GROUP BY {", ".join(keys)}"""


def observers_sql(connections: str) -> str:
    """Connections per observer node (Hubble's ``node_name``), for evidence coverage.

    A connection is seen by at most two nodes (the client's and the server's), so the
    smallest and largest observer of each connection name all of them.
    """
    flows = f"SELECT obs_lo, obs_hi FROM {connections} WHERE line_kind = 'flow'"
    return f"""
SELECT o AS observer, count(*) AS connections
FROM (SELECT obs_lo AS o FROM ({flows}) WHERE obs_lo IS NOT NULL
      UNION ALL SELECT obs_hi AS o FROM ({flows}) WHERE obs_hi <> obs_lo)
GROUP BY o"""


def level1_sql(packets: str, bucket: str | None = None) -> str:
    """The one pass over the input: connections split by raw endpoint, and the distinct
    raw endpoints. Engines store it in a (spillable) table, see :func:`aggregate_sql`.

    Parameters
    ----------
    packets
        :func:`recommender.flows.hubble.oriented_packets_sql` (a relation).
    bucket
        Time bucket (``1h``) or None.
    """
    return _level1_sql(_prepared_sql(packets, bucket))


def identities_sql(endpoints: str) -> str:
    """One row per identity code: its observation key as a dense ``key_id``, the key
    fields (labels rendered as JSON), the workload ``wls`` (``wlr`` + ``wl``) with its
    rank ``wl_rank`` (NULL when there is no workload) and the destination names.

    Two distinct identity strings could share a code only on a hash collision; the
    smallest string wins then, deterministically.
    """
    fields = ", ".join(
        f"{_labels_json_sql('id') if f == 'labels' else identity_field_sql('id', f)} AS {f}"
        for f in (*_KEY_FIELDS, "wlr", "wl", "names")
    )
    key = ", ".join(f"{f} NULLS FIRST" for f in _KEY_FIELDS)
    return f"""
SELECT code, dense_rank() OVER (ORDER BY {key}) AS key_id, {", ".join(_KEY_FIELDS)}, wls,
       CASE WHEN wls IS NOT NULL THEN dense_rank() OVER (ORDER BY wls NULLS FIRST) END
           AS wl_rank, names
FROM (SELECT *, wlr || {ID_SEP_SQL} || wl AS wls
      FROM (SELECT code, {fields}
            FROM (SELECT code, min(id) AS id FROM {endpoints} GROUP BY code)))"""


#: An observation (level-2 row): these columns of a keyed connection.
_GROUP_KEY = (
    "bucket",
    "line_kind",
    "reject_class",
    "requested",
    "src_key",
    "dst_key",
    "port",
    "protocol",
)


def keyed_sql(connections: str, identities: str) -> str:
    """Connections with each end's ``key_id`` and workload rank, the destination's
    names, and per observation: ``gid`` (its first connection's ``ord``, unique) and
    ``rn`` (the connection's rank in input order).

    Only sorting and fixed-size values: the engine can spill it.
    """
    window = f"PARTITION BY {', '.join(_GROUP_KEY)} ORDER BY ord"
    return f"""
SELECT *, min(ord) OVER ({window}) AS gid, row_number() OVER ({window}) AS rn
FROM (SELECT c.bucket, c.line_kind, c.reject_class, c.reject_detail, c.requested,
             s.key_id AS src_key, d.key_id AS dst_key, s.wl_rank AS src_wl_rank,
             d.wl_rank AS dst_wl_rank, d.names AS dst_names, c.port, c.protocol,
             c.first_seen, c.last_seen, c.vrank, c.records, c.replies, c.inferred,
             c.unoriented, c.lost, c.ord
      FROM {connections} c
      LEFT JOIN {identities} s ON s.code = c.src_code
      LEFT JOIN {identities} d ON d.code = c.dst_code)"""


def groups_sql(keyed: str) -> str:
    """Keyed connections -> level-2 rows with fixed-size state only (spillable).

    The first :data:`MAX_REFS` connections in input order give ``ref_1``…; the first
    :data:`MAX_REJECT_SAMPLES` rejects give ``sample_ord_1``/``sample_1``….
    """
    counts = ", ".join(
        f"count_if(vrank = {VERDICT_RANK[v]}) AS v_{v}"
        for v in ("audit", "allowed", "error", "unknown")
    )
    refs = ", ".join(
        f"min(CASE WHEN rn = {i} THEN ord END) AS ref_{i}" for i in range(1, MAX_REFS + 1)
    )
    samples = ", ".join(
        f"min(CASE WHEN rn = {i} AND line_kind = 'reject' THEN ord END) AS sample_ord_{i}, "
        f"min(CASE WHEN rn = {i} AND line_kind = 'reject' THEN reject_detail END) AS sample_{i}"
        for i in range(1, MAX_REJECT_SAMPLES + 1)
    )
    return f"""
SELECT gid, {", ".join(_GROUP_KEY)}, count(*) AS connections, min(first_seen) AS first_seen,
       max(last_seen) AS last_seen,
       count_if(vrank IN ({VERDICT_RANK["policy_denied"]}, {VERDICT_RANK["denied"]})) AS v_denied,
       count_if(vrank = {VERDICT_RANK["policy_denied"]}) AS v_policy_denied, {counts},
       max(src_wl_rank) AS src_wl_rank, max(dst_wl_rank) AS dst_wl_rank,
       sum(records) AS records, sum(replies) AS replies, sum(inferred) AS inferred,
       sum(unoriented) AS unoriented, sum(lost) AS lost, {refs}, {samples}
FROM {keyed}
GROUP BY gid, {", ".join(_GROUP_KEY)}"""


def names_of_groups_sql(keyed: str) -> str:
    """The distinct destination-name strings of each level-2 row (``gid``)."""
    return f"""
SELECT gid, dst_names AS names FROM {keyed} WHERE dst_names IS NOT NULL
GROUP BY gid, dst_names"""


def aggregate_sql(groups: str, identities: str, names: str) -> str:
    """Level-2 rows with their identity fields, workloads and names spelled out.

    Observations, non-flow kinds and reject reasons; see :func:`aggregation_stages`.
    Observations come first, in output order (:func:`finish` then needs no copy).
    """
    keys = f"SELECT DISTINCT key_id, {', '.join(_KEY_FIELDS)} FROM {identities}"
    wls = f"SELECT DISTINCT wl_rank, wls FROM {identities} WHERE wl_rank IS NOT NULL"
    ends = ", ".join(
        f"{t}.{f} AS {side}_{f}" for side, t in (("src", "s"), ("dst", "d")) for f in _KEY_FIELDS
    )
    counts = ", ".join(
        f"CAST(g.v_{v} AS BIGINT) AS v_{v}"
        for v in ("denied", "policy_denied", "audit", "allowed", "error", "unknown")
    )
    sums = ", ".join(
        f"CAST(g.{c} AS BIGINT) AS {c}"
        for c in ("records", "replies", "inferred", "unoriented", "lost")
    )
    extra = ", ".join(
        [f"g.ref_{i}" for i in range(1, MAX_REFS + 1)]
        + [f"g.sample_ord_{i}, g.sample_{i}" for i in range(1, MAX_REJECT_SAMPLES + 1)]
    )
    order = ", ".join(f"{c} NULLS FIRST" for c in ("bucket", *SORT_COLUMNS))
    return f"""
SELECT * FROM (
SELECT g.bucket, g.line_kind, g.reject_class, g.requested, {ends}, g.port, g.protocol,
       g.connections, g.first_seen, g.last_seen, {counts},
       split_part(sw.wls, {ID_SEP_SQL}, 2) AS src_workload,
       split_part(dw.wls, {ID_SEP_SQL}, 2) AS dst_workload, n.names, {sums}, g.gid AS ord, {extra}
FROM {groups} g
LEFT JOIN ({keys}) s ON s.key_id = g.src_key LEFT JOIN ({keys}) d ON d.key_id = g.dst_key
LEFT JOIN ({wls}) sw ON sw.wl_rank = g.src_wl_rank
LEFT JOIN ({wls}) dw ON dw.wl_rank = g.dst_wl_rank
LEFT JOIN (SELECT gid, list(names) AS names FROM {names} GROUP BY gid) n ON n.gid = g.gid)
ORDER BY coalesce(line_kind = 'flow' AND requested, false) DESC, {order}, ord"""


#: Temp-table names of the stages, in order (engines may key settings on them).
STAGE_LEVEL1 = "netpol_l1"
STAGE_ENDPOINTS = "netpol_eps"
STAGE_CONNECTIONS = "netpol_conn"
STAGE_IDENTITIES = "netpol_ids"
#: Connections per observer node: a small table engines fetch besides the final SELECT.
STAGE_OBSERVERS = "netpol_observers"
STAGE_KEYED = "netpol_keyed"
STAGE_GROUPS = "netpol_groups"
STAGE_NAMES = "netpol_names"


def aggregation_stages(
    packets: str, resolve: Callable[[str], str] | None, bucket: str | None
) -> tuple[list[tuple[str, str]], str]:
    """The whole aggregation as SQL stages, the contract every engine runs.

    Parameters
    ----------
    packets
        A relation (parenthesized query or table name) of
        :func:`recommender.flows.hubble.oriented_packets_sql`.
    resolve
        None, or a function wrapping a relation of normalized ``x_`` endpoints with
        inventory resolution (see :func:`recommender.semantics.resolve.resolved_sql`).
    bucket
        Time bucket (``1h``) or None.

    Returns
    -------
    tuple
        ``([(temp_table_name, SELECT sql), ...], final SELECT sql)``: each stage reads
        only the input and earlier stages' tables; the final SELECT gives the level-2
        rows that :func:`finish` turns into observations and statistics. The SQL holds
        no settings or pragmas (engines put those between stages). Every stage keeps
        only fixed-size state per group (or sorts), so an engine can spill all of them;
        the lists (names) are built in the final SELECT over a small table.
    """
    stages = [
        (STAGE_LEVEL1, level1_sql(packets, bucket)),
        (STAGE_ENDPOINTS, endpoints_sql(STAGE_LEVEL1, resolve)),
        (STAGE_CONNECTIONS, connections_sql(STAGE_LEVEL1, STAGE_ENDPOINTS)),
        (STAGE_OBSERVERS, observers_sql(STAGE_CONNECTIONS)),
        (STAGE_IDENTITIES, identities_sql(STAGE_ENDPOINTS)),
        (STAGE_KEYED, keyed_sql(STAGE_CONNECTIONS, STAGE_IDENTITIES)),
        (STAGE_GROUPS, groups_sql(STAGE_KEYED)),
        (STAGE_NAMES, names_of_groups_sql(STAGE_KEYED)),
    ]
    return stages, aggregate_sql(STAGE_GROUPS, STAGE_IDENTITIES, STAGE_NAMES)


# ---------------------------------------------------------------------------
# Finishing (pure pandas on the small level-2 table).
# ---------------------------------------------------------------------------

#: The finished observations are sorted by their identity.
SORT_COLUMNS = IDENTITY_COLUMNS


def ref_of(ord_value: int, paths: Sequence[str]) -> str:
    """``path:line`` of an input-order number (see ``ORD_SHIFT``).

    >>> ref_of((1 << 40) + 7, ["a.json", "b.json"])
    'b.json:7'
    """
    file_id, line = divmod(int(ord_value), 1 << ORD_SHIFT)
    return f"{paths[file_id]}:{line}"


def finish(
    groups: pd.DataFrame,
    with_bucket: bool,
    paths: Sequence[str],
    observers: dict[str, int] | None = None,
) -> tuple[pd.DataFrame, IngestStats]:
    """Split level-2 rows into the observation table and the statistics.

    Works on row masks and single columns, no copy of the whole level-2 frame (the
    biggest object of a run); when the rows come in output order (as
    :func:`aggregate_sql` gives them) the text columns are shared, not copied.
    """
    is_flow = (groups["line_kind"] == "flow").to_numpy()
    requested = groups["requested"].astype(bool).to_numpy()
    observations = _observation_frame(groups, is_flow & requested, with_bucket, paths)
    stats = _stats(groups, is_flow, requested, observations, paths)
    if observers is not None:
        stats = replace(stats, observers=dict(sorted(observers.items())))
    return observations, stats


def _observation_frame(
    groups: pd.DataFrame, mask: Any, with_bucket: bool, paths: Sequence[str]
) -> pd.DataFrame:
    """The observation rows of ``groups`` (``mask``), sorted by :data:`SORT_COLUMNS`."""
    by = (["bucket"] if with_bucket else []) + list(SORT_COLUMNS)
    rows = np.flatnonzero(mask)
    first = np.array_equal(rows, np.arange(len(rows)))  # observations first: slices, no copy
    keys = groups[by].iloc[: len(rows)] if first else groups[by].take(rows)
    rows = rows[
        keys.reset_index(drop=True)
        .sort_values(by, na_position="first", kind="mergesort")
        .index.to_numpy()
    ]
    del keys
    if np.array_equal(rows, np.arange(len(rows))):
        obs = groups.iloc[: len(rows)]  # already in order
    else:
        obs = groups.take(rows)
    obs = obs.reset_index(drop=True)
    out = {
        **{c: obs[c] for c in OBSERVATION_COLUMNS if c in obs.columns and c != "refs"},
        "bucket": obs["bucket"],
        "dst_names": [_names(v) for v in obs["names"]],
        "port": obs["port"].astype("Int64"),
        "connections": obs["connections"].astype("int64"),
        "verdicts": _verdicts(obs),
        "refs": _refs(obs, paths),
    }
    columns = (["bucket"] if with_bucket else []) + list(OBSERVATION_COLUMNS)
    return pd.DataFrame({c: out[c] for c in columns})


def _names(values: Any) -> list[str]:
    found: set[str] = set()
    if values is None or values is pd.NA:
        return []
    for v in values:
        if v:
            found.update(n for n in str(v).split(",") if n)
    return sorted(found)


def _verdicts(obs: pd.DataFrame) -> list[dict[str, int]]:
    """Per row ``{verdict: connections, ..., "policy_denied": n}`` (column-wise, no row dicts)."""
    keys = [*VERDICTS, POLICY_DENIED]
    columns = [obs[f"v_{k}"].astype("int64").tolist() for k in keys]
    return [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]


def _refs(obs: pd.DataFrame, paths: Sequence[str]) -> list[list[str]]:
    """``path:line`` lists from the input-order numbers ``ref_1``… (see :func:`ref_of`).

    Column by column through numpy (no Python float per value: lower peak memory).
    """
    mask = (1 << ORD_SHIFT) - 1
    texts = []
    for i in range(1, MAX_REFS + 1):
        values = obs[f"ref_{i}"].to_numpy(dtype="float64", na_value=np.nan)
        present = ~np.isnan(values)
        ords = np.where(present, values, 0).astype(np.int64)
        files, lines = (ords >> ORD_SHIFT).tolist(), (ords & mask).tolist()
        texts.append(
            [
                f"{paths[f]}:{n}" if p else None
                for f, n, p in zip(files, lines, present.tolist(), strict=True)
            ]
        )
        del files, lines
    return [[t for t in row if t is not None] for row in zip(*texts, strict=True)]


def _printable_keys(counts: Any) -> dict[str, int]:
    """Reject reasons as one-line keys: a reason may quote a value holding a newline
    (a JSON string ``"a\\nb"``), and every sample and reason is printed on one line."""
    out: dict[str, int] = {}
    for key, n in counts:
        out[printable(str(key))] = out.get(printable(str(key)), 0) + int(n)
    return out


def _stats(
    groups: pd.DataFrame, is_flow: Any, requested: Any, obs: pd.DataFrame, paths: Sequence[str]
) -> IngestStats:
    kind = groups["line_kind"]
    non_flow = groups.loc[~kind.isin(["flow", "reject"]).to_numpy(), ["line_kind", "records"]]
    sample_columns = [
        c for i in range(1, MAX_REJECT_SAMPLES + 1) for c in (f"sample_ord_{i}", f"sample_{i}")
    ]
    rejects = groups.loc[
        (kind == "reject").to_numpy(), ["reject_class", "records", *sample_columns]
    ]
    samples = sorted(
        (int(o), f"{ref_of(o, paths)}: {printable(s)}")
        for i in range(1, MAX_REJECT_SAMPLES + 1)
        for o, s in zip(rejects[f"sample_ord_{i}"], rejects[f"sample_{i}"], strict=True)
        if not pd.isna(o)
    )
    unknown_kind = (groups["src_kind"] == "unknown") | (groups["dst_kind"] == "unknown")
    unknown = groups.loc[
        is_flow & requested & unknown_kind.to_numpy(),
        ["src_kind", "dst_kind", "src_extra", "dst_extra", "connections"],
    ]
    reasons: dict[str, int] = {}
    for _, row in unknown.iterrows():
        for side in ("src", "dst"):
            if row[f"{side}_kind"] == "unknown":
                key = str(row[f"{side}_extra"]).removeprefix("unknown/")
                reasons[key] = reasons.get(key, 0) + int(row["connections"])

    def flow_sum(column: str, mask: Any = is_flow) -> int:
        return int(groups[column].to_numpy()[mask].sum())

    return IngestStats(
        lines=int(groups["records"].sum()),
        flow_records=flow_sum("records"),
        connections=int(obs["connections"].sum()),
        replies=flow_sum("replies"),
        reply_only=flow_sum("connections", is_flow & ~requested),
        non_flow={
            str(k): int(v) for k, v in non_flow.groupby("line_kind")["records"].sum().items()
        },
        lost_events=int(groups["lost"].sum()),
        rejects=_printable_keys(rejects.groupby("reject_class")["records"].sum().items()),
        reject_samples=tuple(s for _, s in samples[:MAX_REJECT_SAMPLES]),
        unknown_peers=int(unknown["connections"].sum()),
        unknown_reasons=reasons,
        policy_drops=flow_sum("v_policy_denied"),
        inferred_orientation=flow_sum("inferred"),
        unknown_orientation=flow_sum("unoriented"),
    )
