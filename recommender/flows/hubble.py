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
``server_port``, ``orientation`` …) serve resolution and aggregation.

The aggregation path (:func:`oriented_packets_sql`) leaves each end raw
(``src_ep``/``dst_ep``, see :func:`endpoint_input_sql`) so the endpoint
normalization runs once per distinct endpoint; :func:`records_sql` applies the
same :func:`endpoint_fields` to every record.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows import hubble_sql as h
from recommender.flows.hubble_checks import endpoint_error_sql, lost_ok_sql
from recommender.flows.hubble_sql import DUCKDB, Dialect, lit


def paths_literal(paths: Sequence[str]) -> str:
    """A SQL list of the input paths, indexed by ``file_id + 1``."""
    return "([" + ", ".join(lit(p) for p in paths) + "]::VARCHAR[])"


def parsed_lines_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Stage 1: unwrap, parse, classify each line (``ts``: its time, parsed once)."""
    return f"""
SELECT file_id, line_no, raw_ref, line_kind, lost, source_format, f, ts,
       CASE WHEN line_kind = 'reject' THEN
            {h.reject_detail_sql("text", "d", "f", "reject", "payload", "rr")} END AS reject_detail
FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
       {h.line_kind_sql("text", "d", "f", "reject", "rr")} AS line_kind,
       CASE WHEN {lost_ok_sql("d")} THEN
            coalesce(try_cast(d.lost_events.num_events_lost AS BIGINT), 0) ELSE 0 END AS lost,
       CASE WHEN d.flow IS NOT NULL THEN 'hubble_jsonpb' ELSE 'hubble_legacy_json' END
            AS source_format
FROM (SELECT *, CASE WHEN f IS NOT NULL THEN {h.reject_reason_sql("f", "ts")} END AS rr
FROM (SELECT * EXCLUDE (ts_raw), {h.in_time_range_sql("ts_raw")} AS ts
FROM (SELECT *, try_cast(f.time AS TIMESTAMP) AS ts_raw
FROM (SELECT *, {h.flow_struct_sql("d")} AS f
      FROM (SELECT *, CASE WHEN reject IS NULL THEN {h.parsed_sql("payload", dialect)} END AS d
            FROM (SELECT *, {h.payload_sql("text")} AS payload FROM {lines})))))))"""


def endpoint_input_sql(f: str, side: str) -> str:
    """The raw input of one packet end (``a`` = IP source, ``b`` = destination) as a struct.

    Everything the endpoint normalization (:func:`endpoint_fields`) reads, and
    nothing else, so equal structs normalize equally: the aggregation path
    normalizes each distinct struct once instead of every record. The
    observer's node name only matters for a ``reserved:host`` endpoint.
    """
    which = "source" if side == "a" else "destination"
    e = f"{f}.{which}"  # JSON text
    # The node is needed only for a reserved:host label; any text that could hold
    # one (also \\u-escaped) keeps it, the normalization decides.
    host = f"(contains({e}, 'host') OR contains({e}, '\\'))"
    return (
        f"{{'e': {e}, 'ip': nullif({f}.\"IP\".{which}, ''), "
        f"'node': CASE WHEN {host} THEN {f}.node_name END, "
        f"'names': coalesce({f}.{which}_names, []), "
        f"'service_namespace': nullif({f}.{which}_service.namespace, ''), "
        f"'service_name': nullif({f}.{which}_service.name, '')}}"
    )


def endpoint_fields(ep: str, e: str, j: str, kind: str) -> dict[str, str]:
    """Per-endpoint FlowRecord fields (:data:`END_FIELDS` but ``port``) of a raw endpoint.

    ``ep`` is an :func:`endpoint_input_sql` struct, ``e`` its parsed endpoint
    (:func:`~recommender.flows.hubble_sql.endpoint_struct_sql`), ``j`` its
    :func:`~recommender.flows.hubble_sql.joined_labels_sql` and ``kind`` its
    :func:`~recommender.flows.hubble_sql.peer_kind_sql`.
    """
    cols = h.endpoint_columns(e, j, f"{ep}.node", kind)
    cols.update(
        ip=f"{ep}.ip",
        names=f"{ep}.names",
        service_namespace=f"{ep}.service_namespace",
        service_name=f"{ep}.service_name",
        j=j,
        bad=endpoint_error_sql(ep, e),
    )
    return cols


def normalized_endpoints_sql(relation: str, ep: str, prefix: str) -> str:
    """``relation`` plus the normalized fields of its endpoint column ``ep`` as ``<prefix>_*``."""
    e, j, k = f"{prefix}_e", f"{prefix}_j", f"{prefix}_kind"
    fields = endpoint_fields(ep, e, j, k)
    cols = ", ".join(
        f"{expr} AS {prefix}_{name}" for name, expr in fields.items() if name not in ("kind", "j")
    )
    return f"""
SELECT * EXCLUDE ({e}), {cols}
FROM (SELECT *, {h.peer_kind_sql(e, j)} AS {k}
      FROM (SELECT *, {h.joined_labels_sql(e)} AS {j}
            FROM (SELECT *, {h.endpoint_struct_sql(f"{ep}.e")} AS {e} FROM {relation})))"""


def _packet_columns(dialect: Dialect) -> list[str]:
    """Stage 2 columns: everything about the packet but its ends' normalization."""
    return [
        "rep",
        f"{h.orientation_sql('f', 'rep')} AS orientation",
        "ts AS time_start",
        "f.node_name AS observer",
        f"{h.reporter_sql('f')} AS reporter_raw",
        f"{h.protocol_sql('f')} AS protocol",
        f"{h.icmp_sql('f')} AS icmp_type",
        "CASE f.\"IP\".\"ipVersion\" WHEN 'IPv4' THEN 4 WHEN 'IPv6' THEN 6 END AS ip_version",
        f"{h.verdict_sql('f')} AS verdict",
        "nullif(f.drop_reason_desc, '') AS drop_reason",
        f"{h.is_policy_drop_sql('f')} AS is_policy_drop",
        f"{h.policies_sql('f', dialect)} AS policies",
        "f.trace_observation_point AS observation_point",
        "try_cast(f.event_type.type AS INTEGER) AS event_type",
        f"{endpoint_input_sql('f', 'a')} AS a_ep",
        f"{endpoint_input_sql('f', 'b')} AS b_ep",
        "a_port",
        "b_port",
    ]


def packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """One row per input line: line kind, packet fields, both raw ends ``a_ep``/``b_ep``."""
    return f"""
SELECT file_id, line_no, raw_ref, line_kind, reject_detail, lost, source_format,
       {", ".join(_packet_columns(dialect))}
FROM (SELECT *, {h.reply_sql("f", "a_port", "b_port")} AS rep
      FROM (SELECT *, {h.port_sql("f", "source_port")} AS a_port,
                   {h.port_sql("f", "destination_port")} AS b_port
            FROM ({parsed_lines_sql(lines, paths, dialect)})))"""


def _swap(a: str, b: str, name: str) -> list[str]:
    """``src_<name>``/``dst_<name>``: the client and server ends after the reply swap."""
    return [
        f"CASE WHEN coalesce(rep, false) THEN {b} ELSE {a} END AS src_{name}",
        f"CASE WHEN coalesce(rep, false) THEN {a} ELSE {b} END AS dst_{name}",
    ]


_CONNECTION_PASSTHROUGH = (
    "file_id, line_no, raw_ref, line_kind, reject_detail, lost, source_format, rep, "
    "orientation, time_start, observer, protocol, icmp_type, ip_version, verdict, "
    "drop_reason, is_policy_drop, policies, observation_point, event_type"
)


def _connection_columns() -> list[str]:
    """Orientation of everything but the endpoint normalization."""
    return [
        *_swap("a_ep", "b_ep", "ep"),
        *_swap("a_port", "b_port", "port"),
        "rep AS is_reply",
        # The reporter is about the connection, so it does not flip with the packet.
        "reporter_raw AS reporter",
        "CASE WHEN protocol IN ('TCP', 'UDP', 'SCTP') THEN "
        "CASE WHEN coalesce(rep, false) THEN a_port ELSE b_port END END AS server_port",
        "time_start AS time_end",
    ]


def oriented_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """One row per line, oriented client -> server, ends still raw (``src_ep``/``dst_ep``).

    The aggregation path: endpoints are normalized once per distinct ``src_ep``/``dst_ep``
    with :func:`normalized_endpoints_sql`; :func:`records_sql` does it per record.
    """
    return f"""
SELECT {_CONNECTION_PASSTHROUGH}, {", ".join(_connection_columns())}
FROM ({packets_sql(lines, paths, dialect)})"""


def records_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """One row per input line with FlowRecord columns (NULL for non-flow lines).

    Parameters
    ----------
    lines
        A relation with ``file_id, line_no, text, reject`` (see ``sources.LINE_SCHEMA``).
    paths
        Input paths by ``file_id``, as given on the command line (for ``raw_ref``).
    """
    return records_of_packets_sql(f"({oriented_packets_sql(lines, paths, dialect)})")


def records_of_packets_sql(packets: str) -> str:
    """FlowRecord rows of a relation of :func:`oriented_packets_sql` rows (for example
    read back from Parquet written by ``netpol convert``).

    A flow line with an invalid endpoint (``src_bad``/``dst_bad``) is a reject.
    """
    src = normalized_endpoints_sql(packets, "src_ep", "src")
    both = normalized_endpoints_sql(f"({src})", "dst_ep", "dst")
    bad = "CASE WHEN line_kind = 'flow' THEN coalesce(src_bad, dst_bad) END"
    return f"""
SELECT * EXCLUDE (src_ep, dst_ep, line_kind, reject_detail, src_bad, dst_bad, bad),
       CASE WHEN bad IS NOT NULL THEN 'reject' ELSE line_kind END AS line_kind,
       coalesce(bad, reject_detail) AS reject_detail
FROM (SELECT *, {bad} AS bad FROM ({both}))"""


def distinct_ends_sql(packets: str) -> str:
    """Each distinct raw end (``src_ep`` or ``dst_ep``) of ``packets`` as ``ep``, with its
    normalized fields as ``x_*`` (the fields :func:`records_of_packets_sql` computes per
    record; they read the raw struct alone, so per distinct value is the same)."""
    distinct = (
        f"(SELECT DISTINCT ep FROM (SELECT src_ep AS ep FROM {packets} "
        f"UNION ALL SELECT dst_ep AS ep FROM {packets}))"
    )
    return normalized_endpoints_sql(distinct, "ep", "x")


def records_of_ends_sql(packets: str, ends: str, fields: Sequence[str]) -> str:
    """The rows of :func:`records_of_packets_sql` from ``packets`` and their ends
    normalized once (a :func:`distinct_ends_sql` relation, ``fields`` its ``x_*`` columns).

    The join is on the raw struct's value (``IS NOT DISTINCT FROM``: NULL ends too), not
    on a hash, so two ends never share a normalization by collision.
    """
    cols = []
    for side, alias in (("src", "s"), ("dst", "d")):
        cols += [f"{alias}.{f} AS {side}_{f.removeprefix('x_')}" for f in fields]
    both = f"""
SELECT p.* EXCLUDE (src_ep, dst_ep), {", ".join(cols)}
FROM {packets} p
LEFT JOIN {ends} s ON s.ep IS NOT DISTINCT FROM p.src_ep
LEFT JOIN {ends} d ON d.ep IS NOT DISTINCT FROM p.dst_ep"""
    bad = "CASE WHEN line_kind = 'flow' THEN coalesce(src_bad, dst_bad) END"
    return f"""
SELECT * EXCLUDE (line_kind, reject_detail, src_bad, dst_bad, bad),
       CASE WHEN bad IS NOT NULL THEN 'reject' ELSE line_kind END AS line_kind,
       coalesce(bad, reject_detail) AS reject_detail
FROM (SELECT *, {bad} AS bad FROM ({both}))"""
