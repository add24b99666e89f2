"""GCP / GKE VPC Flow Logs (Cloud Logging LogEntry JSON lines) -> oriented packets.

FORMATS.md 2.6. One JSON object per line: a LogEntry with ``jsonPayload`` (a
bare payload, as some exports write it, is read too). The 5-tuple is
``jsonPayload.connection``; int64 fields arrive as JSON strings.

* A record describes one direction of packets as seen by ``reporter`` (``SRC``:
  the packet source's VM, ``DEST``: the destination's); the elastic sample's
  ``kibana:5601 -> client:33478`` shows that a server's replies are logged as
  their own records. So the 5-tuple is not the initiator's: orientation uses the
  same port heuristic as Hubble (:mod:`recommender.flows.vpc`), else ``unknown``.
* ``src_gke_details``/``dest_gke_details`` name the pod (namespace, pod,
  workload) but carry no labels: the end becomes a named pod that the inventory
  gives labels to. A VM end (``*_instance``) stays IP-only: the inventory decides
  whether it is a node.
* Gateway reporters (``SRC_GATEWAY``/``DEST_GATEWAY``) are no end of the
  connection: ``reporter`` is ``unknown``.
* Flows are sampled: counts are estimates; records are delivered traffic
  (``allowed``); firewall denials are in Firewall Rules Logging, not here.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows.hubble import paths_literal
from recommender.flows.hubble_sql import DUCKDB, Dialect, in_time_range_sql, lit
from recommender.flows.vpc import endpoint_sql, oriented_sql, protocol_name_sql

SOURCE_FORMAT = "gcp_vpc"
_V = "VARCHAR"
_GKE: dict[str, object] = {
    "cluster": {"cluster_name": _V},
    "pod": {
        "pod_name": _V,
        "pod_namespace": _V,
        "pod_workload": {"workload_name": _V, "workload_type": _V},
    },
    "service": [{"service_name": _V, "service_namespace": _V}],
}
PAYLOAD_SCHEMA: dict[str, object] = {
    "connection": {
        "src_ip": _V,
        "src_port": _V,
        "dest_ip": _V,
        "dest_port": _V,
        "protocol": _V,
    },
    "reporter": _V,
    "start_time": _V,
    "end_time": _V,
    "src_instance": {"vm_name": _V},
    "dest_instance": {"vm_name": _V},
    "src_gke_details": _GKE,
    "dest_gke_details": _GKE,
}
TOP_SCHEMA: dict[str, object] = {"jsonPayload": PAYLOAD_SCHEMA, "timestamp": _V, **PAYLOAD_SCHEMA}
REPORTERS = ("SRC", "DEST", "SRC_GATEWAY", "DEST_GATEWAY")
#: GKE ``workload_type`` -> Kubernetes owner kind.
WORKLOAD_KINDS: dict[str, str] = {
    "DEPLOYMENT": "Deployment",
    "STATEFULSET": "StatefulSet",
    "DAEMONSET": "DaemonSet",
    "REPLICASET": "ReplicaSet",
    "JOB": "Job",
    "CRONJOB": "CronJob",
}


def _uint_ok(text: str, top: int) -> str:
    n = f"try_cast({text} AS BIGINT)"
    return f"({text} IS NULL OR coalesce({n} BETWEEN 0 AND {top} AND {n}::VARCHAR = {text}, false))"


def reject_sql() -> str:
    """Why a parsed line ``p`` (the payload) cannot be read; NULL when it can."""
    c = "p.connection"
    return (
        "CASE WHEN d IS NULL AND NOT json_valid(text) THEN 'not valid JSON' "
        "WHEN d IS NULL OR json_type(text) <> 'OBJECT' THEN 'not a JSON object' "
        f"WHEN {c} IS NULL THEN 'JSON object is not a GCP VPC flow log entry (no connection)' "
        f"WHEN {c}.src_ip IS NULL THEN 'no connection.src_ip' "
        f"WHEN {c}.dest_ip IS NULL THEN 'no connection.dest_ip' "
        f"WHEN {c}.protocol IS NULL THEN 'no connection.protocol' "
        f"WHEN NOT {_uint_ok(c + '.protocol', 255)} THEN 'invalid protocol: ' || {c}.protocol "
        f"WHEN NOT {_uint_ok(c + '.src_port', 65535)} THEN 'invalid src_port: ' || {c}.src_port "
        f"WHEN NOT {_uint_ok(c + '.dest_port', 65535)} "
        f"THEN 'invalid dest_port: ' || {c}.dest_port "
        "WHEN p.reporter IS NOT NULL AND p.reporter NOT IN "
        f"({', '.join(lit(r) for r in REPORTERS)}) THEN 'unknown reporter ' || p.reporter "
        "WHEN ts IS NULL THEN 'missing or invalid start_time' END"
    )


def pod_endpoint_sql(g: str) -> str:
    """Hubble-endpoint JSON for a GKE pod end (``g``: its ``*_gke_details``), else NULL."""
    pod, wl = f"{g}.pod", f"{g}.pod.pod_workload"
    kinds = " ".join(f"WHEN {lit(k)} THEN {lit(v)}" for k, v in WORKLOAD_KINDS.items())
    kind = f"CASE upper({wl}.workload_type) {kinds} ELSE {wl}.workload_type END"
    workloads = (
        f"CASE WHEN {wl}.workload_name IS NOT NULL THEN "
        f"json_array(json_object('name', {wl}.workload_name, 'kind', {kind})) ELSE json_array() END"
    )
    return (
        f"CASE WHEN nullif({pod}.pod_name, '') IS NOT NULL THEN json_object('namespace', "
        f"{pod}.pod_namespace, 'pod_name', {pod}.pod_name, 'cluster_name', "
        f"{g}.cluster.cluster_name, 'workloads', {workloads}) END"
    )


def _end(side: str) -> str:
    g = f"p.{side}_gke_details"
    ip = f"p.connection.{side}_ip"
    return endpoint_sql(
        pod_endpoint_sql(g), ip, f"{g}.service[1].service_namespace", f"{g}.service[1].service_name"
    )


def _columns() -> list[str]:
    flow = "line_kind = 'flow'"
    c = "p.connection"
    end = in_time_range_sql("try_cast(p.end_time AS TIMESTAMP)")
    return [
        "file_id",
        "line_no",
        "raw_ref",
        "line_kind",
        "CASE WHEN line_kind = 'reject' THEN coalesce(reject, rr) END AS reject_detail",
        f"{lit(SOURCE_FORMAT)} AS source_format",
        f"CASE WHEN {flow} THEN ts END AS time_start",
        f"CASE WHEN {flow} THEN coalesce({end}, ts) END AS time_end",
        f"CASE WHEN {flow} THEN CASE p.reporter WHEN 'SRC' THEN p.src_instance.vm_name "
        "WHEN 'DEST' THEN p.dest_instance.vm_name END END AS observer",
        f"CASE WHEN {flow} THEN {protocol_name_sql(f'{c}.protocol::INTEGER')} END AS protocol",
        f"CASE WHEN {flow} THEN CASE WHEN contains({c}.src_ip, ':') THEN 6 ELSE 4 END END "
        "AS ip_version",
        f"CASE WHEN {flow} THEN 'allowed' END AS verdict",
        "NULL::VARCHAR AS drop_reason",
        f"CASE WHEN {flow} THEN {_end('src')} END AS a_ep",
        f"CASE WHEN {flow} THEN {_end('dest')} END AS b_ep",
        f"CASE WHEN {flow} THEN try_cast({c}.src_port AS INTEGER) END AS a_port",
        f"CASE WHEN {flow} THEN try_cast({c}.dest_port AS INTEGER) END AS b_port",
        "NULL::BOOLEAN AS flag_rep",
        "CASE p.reporter WHEN 'SRC' THEN 'a' WHEN 'DEST' THEN 'b' END AS logged_at",
    ]


def rows_sql(lines: str, paths: Sequence[str]) -> str:
    """One row per line, the columns :func:`recommender.flows.vpc.oriented_sql` reads."""
    parse = DUCKDB.parse_json("text", TOP_SCHEMA)
    bare = ", ".join(f"{lit(k)}: d.{k}" for k in PAYLOAD_SCHEMA)
    payload = f"CASE WHEN d.jsonPayload IS NOT NULL THEN d.jsonPayload ELSE {{{bare}}} END"
    ts = in_time_range_sql("ts_raw")
    kind = (
        "CASE WHEN reject IS NOT NULL THEN 'reject' WHEN blank THEN 'blank' "
        "WHEN rr IS NOT NULL THEN 'reject' ELSE 'flow' END"
    )
    return f"""
SELECT {", ".join(_columns())}
FROM (SELECT *, {kind} AS line_kind
FROM (SELECT *, CASE WHEN reject IS NULL AND NOT blank THEN {reject_sql()} END AS rr
FROM (SELECT *, {ts} AS ts
FROM (SELECT *, try_cast(coalesce(p.start_time, d.timestamp) AS TIMESTAMP) AS ts_raw
FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
             {payload} AS p
FROM (SELECT *, trim(text) = '' AS blank,
             CASE WHEN reject IS NULL AND trim(text) <> '' THEN {parse} END AS d
      FROM {lines}))))))"""


def oriented_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """One row per line of GCP VPC flow logs, oriented client -> server.

    Parameters
    ----------
    lines
        A relation with ``file_id, line_no, text, reject`` (``sources.LINE_SCHEMA``).
    paths
        Input paths by ``file_id`` (for ``raw_ref``).
    dialect
        Only DuckDB: the Spark engine does not read this format (``FlowFormat.spark``).
    """
    return oriented_sql(f"({rows_sql(lines, paths)})")
