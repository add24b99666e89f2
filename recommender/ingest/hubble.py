"""Hubble flow logs -> FlowRecord rows, as one streaming SQL query.

Accepted shapes (FORMATS.md 2.1.1): ``hubble observe -o json|jsonpb`` lines
``{"flow":…,"node_name":…,"time":…}``, legacy bare Flow lines, exporter files
(``lost_events``, ``node_status``, ``agent_event``, ``debug_event`` lines are
skipped and counted), each optionally inside a CRI log line or a
``{"log": "…"}`` envelope.

:func:`records_sql` returns one row per input line. Flow lines carry every
FlowRecord column (see :data:`recommender.model.FLOW_COLUMNS`) oriented from
client to server: a reply packet (``is_reply``) has its ends swapped and
``dst_port`` NULL, so it never yields a port. Other lines carry ``line_kind``
and, for rejects, ``reject_detail``. Internal columns (``src_detail``,
``server_port``, ``orientation``, ``vrank`` …) serve resolution and aggregation.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.ingest import hubble_sql as h
from recommender.ingest.hubble_sql import DUCKDB, Dialect, lit

#: Endpoint fields that are swapped together with the ends.
END_FIELDS: tuple[str, ...] = (
    "kind",
    "detail",
    "cluster",
    "namespace",
    "pod",
    "workload_kind",
    "workload_name",
    "labels",
    "service_account",
    "node",
    "ip",
    "port",
    "names",
    "service_namespace",
    "service_name",
    "j",
)


def paths_literal(paths: Sequence[str]) -> str:
    """A SQL list of the input paths, indexed by ``file_id + 1``."""
    return "([" + ", ".join(lit(p) for p in paths) + "]::VARCHAR[])"


def parsed_lines_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Stage 1: unwrap, parse, classify each line."""
    return f"""
SELECT file_id, line_no, raw_ref, line_kind, lost, source_format, f,
       CASE WHEN line_kind = 'reject' THEN
            {h.reject_detail_sql("text", "d", "f", "reject", "payload", "rr")} END AS reject_detail
FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
       {h.line_kind_sql("text", "d", "f", "reject", "rr")} AS line_kind,
       coalesce(d.lost_events.num_events_lost, 0) AS lost,
       CASE WHEN d.flow IS NOT NULL THEN 'hubble_jsonpb' ELSE 'hubble_legacy_json' END
            AS source_format
FROM (SELECT *, CASE WHEN f IS NOT NULL THEN {h.reject_reason_sql("f")} END AS rr
FROM (SELECT *, {h.flow_struct_sql("d")} AS f
      FROM (SELECT *, CASE WHEN reject IS NULL THEN {h.parsed_sql("payload", dialect)} END AS d
            FROM (SELECT *, {h.payload_sql("text")} AS payload FROM {lines})))))"""


def _packet_columns(dialect: Dialect) -> list[str]:
    """Stage 2 columns: both packet ends as observed (``a`` = IP source, ``b`` = destination)."""
    cols = [
        "rep",
        f"{h.orientation_sql('f', 'rep')} AS orientation",
        f"{h.time_sql('f')} AS time_start",
        "f.node_name AS observer",
        f"{h.reporter_sql('f')} AS reporter_raw",
        f"{h.protocol_sql('f')} AS protocol",
        'coalesce(f.l4."ICMPv4".type, f.l4."ICMPv6".type) AS icmp_type',
        "CASE f.\"IP\".\"ipVersion\" WHEN 'IPv4' THEN 4 WHEN 'IPv6' THEN 6 END AS ip_version",
        f"{h.verdict_sql('f')} AS verdict",
        "nullif(f.drop_reason_desc, '') AS drop_reason",
        f"{h.is_policy_drop_sql('f')} AS is_policy_drop",
        f"{h.policies_sql('f', dialect)} AS policies",
        "f.trace_observation_point AS observation_point",
        "f.event_type.type AS event_type",
    ]
    for side, e in (("a", "f.source"), ("b", "f.destination")):
        for name, expr in h.endpoint_columns(e, f"{side}_j", "f.node_name", f"{side}_k").items():
            cols.append(f"{expr} AS {side}_{name}")
    cols += [
        "nullif(f.\"IP\".source, '') AS a_ip",
        "nullif(f.\"IP\".destination, '') AS b_ip",
        f"{h.port_sql('f', 'source_port')} AS a_port",
        f"{h.port_sql('f', 'destination_port')} AS b_port",
        "coalesce(f.source_names, []) AS a_names",
        "coalesce(f.destination_names, []) AS b_names",
        "nullif(f.source_service.namespace, '') AS a_service_namespace",
        "nullif(f.source_service.name, '') AS a_service_name",
        "nullif(f.destination_service.namespace, '') AS b_service_namespace",
        "nullif(f.destination_service.name, '') AS b_service_name",
    ]
    return cols


def _oriented_columns() -> list[str]:
    """Stage 3 columns: client (``src_``) and server (``dst_``) after the reply swap."""
    cols = []
    for name in END_FIELDS:
        cols.append(f"CASE WHEN coalesce(rep, false) THEN b_{name} ELSE a_{name} END AS src_{name}")
        cols.append(f"CASE WHEN coalesce(rep, false) THEN a_{name} ELSE b_{name} END AS dst_{name}")
    cols += [
        "rep AS is_reply",
        # The reporter is about the connection, so it does not flip with the packet.
        "reporter_raw AS reporter",
        "CASE WHEN protocol IN ('TCP', 'UDP', 'SCTP') THEN "
        "CASE WHEN coalesce(rep, false) THEN a_port ELSE b_port END END AS server_port",
        "time_start AS time_end",
    ]
    return cols


def records_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """One row per input line with FlowRecord columns (NULL for non-flow lines).

    Parameters
    ----------
    lines
        A relation with ``file_id, line_no, text, reject`` (see ``sources.LINE_SCHEMA``).
    paths
        Input paths by ``file_id``, as given on the command line (for ``raw_ref``).
    """
    passthrough = (
        "file_id, line_no, raw_ref, line_kind, reject_detail, lost, source_format, rep, "
        "orientation, time_start, observer, protocol, icmp_type, ip_version, verdict, "
        "drop_reason, is_policy_drop, policies, observation_point, event_type"
    )
    return f"""
SELECT {passthrough}, {", ".join(_oriented_columns())}
FROM (SELECT file_id, line_no, raw_ref, line_kind, reject_detail, lost, source_format, a_j, b_j,
             {", ".join(_packet_columns(dialect))}
      FROM (SELECT *, {h.peer_kind_sql("f.source", "a_j")} AS a_k,
                   {h.peer_kind_sql("f.destination", "b_j")} AS b_k
            FROM (SELECT *, {h.reply_sql("f")} AS rep, {h.joined_labels_sql("f.source")} AS a_j,
                         {h.joined_labels_sql("f.destination")} AS b_j
                  FROM ({parsed_lines_sql(lines, paths, dialect)}))))"""
