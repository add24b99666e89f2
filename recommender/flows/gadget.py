"""Inspektor Gadget network events -> oriented packets (FORMATS.md 2.4).

Input: the JSON output of image-based gadgets (``kubectl gadget run trace_tcp
-o json``, ``ig run ... -o json``): one event per line, or one pretty-printed
document or array per file (:mod:`recommender.flows.jsondoc`). An event has
L4 endpoints ``src``/``dst`` (the ``l4endpoint`` template: ``addr``,
``version``, ``port``, ``proto``/``proto_raw``, and with the kubeipresolver
operator ``k8s{kind, name, namespace, labels}``), the event-level ``k8s``
block (kubenameresolver: the pod the event belongs to) and ``timestamp``
(RFC 3339 with offset) or ``timestamp_raw`` (ns).

Orientation comes from the gadget's own evidence, never a guess:

* trace_tcp ``type``: the endpoints are the socket's (``src`` is the local
  end). ``connect``: ``src`` initiated, the server is ``dst`` (often a
  Service ClusterIP: trace_tcp sees the address the application dialled,
  before DNAT). ``accept``: the local end ``src`` is the server, ``dst`` the
  client. ``close`` events end a connection already counted by its connect or
  accept: the non-flow line kind ``ig_close``.
* Without ``type`` (packet gadgets): UDP to a ``dst`` port below 1024 is a
  request, the rule of IG's own ``advise_networkpolicy`` ("UDP dst port < 1024",
  its other rule, TCP SYN without ACK, needs flags these events do not carry).
* Anything else is a reject ``cannot orient ...``: counted, never read.
* ``src`` and ``dst`` naming different protocols is a reject too (no end is trusted).

Ends: ``k8s.kind`` ``pod`` is a pod (``labels`` ``k=v,k2=v2``); ``svc`` is the
Service's address (its labels are the Service's own, never a pod's: not
used), resolved to the Service and its backends by the inventory; ``raw`` or
no ``k8s`` is the address only. For trace_tcp the local end ``src`` without a
pod ``k8s`` block takes the event-level ``k8s`` pod (or the node, for a
``hostnetwork`` pod). A connect with a non-empty ``error`` is ``error``, else
every event is ``allowed``: trace_tcp sees sockets, not policy verdicts.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows import jsondoc
from recommender.flows.hubble_sql import DUCKDB, Dialect, lit
from recommender.flows.vpc import PORT_PROTOCOLS, protocol_name_sql

SOURCE_FORMAT = "inspektor_gadget"
_V = "VARCHAR"
_K8S_END = {"kind": _V, "name": _V, "namespace": _V, "labels": _V}
_L4 = {"addr": _V, "version": _V, "port": _V, "proto": _V, "proto_raw": _V, "k8s": _K8S_END}
EVENT_SCHEMA: dict[str, object] = {
    "timestamp": _V,
    "timestamp_raw": _V,
    "type": _V,
    "error": _V,
    "src": _L4,
    "dst": _L4,
    "k8s": {
        "node": _V,
        "namespace": _V,
        "podName": _V,
        "podLabels": _V,
        "hostnetwork": _V,
    },
}
TCP_TYPES = ("connect", "accept", "close")
#: ``advise_networkpolicy``: a UDP packet to a port below this is a request.
UDP_SERVER_PORT_LIMIT = 1024


def _uint(text: str, top: int) -> str:
    n = f"try_cast({text} AS BIGINT)"
    return f"CASE WHEN {n} BETWEEN 0 AND {top} AND {n}::VARCHAR = {text} THEN {n} END"


def _labels_sql(text: str) -> str:
    """``k8s:k=v`` of IG's comma-joined ``k=v,k2=v2`` (``[]`` for empty). A part
    without ``=`` is kept as is, so the label validation rejects it."""
    parts = f"list_filter(string_split({text}, ','), lambda x: x <> '')"
    return (
        f"CASE WHEN coalesce({text}, '') = '' THEN []::VARCHAR[] "
        f"ELSE list_sort(list_transform({parts}, lambda x: 'k8s:' || x)) END"
    )


def _time_sql() -> str:
    """``timestamp`` (RFC 3339, offset applied) or else ``timestamp_raw`` (ns since epoch)."""
    zoned = "try_cast(r.timestamp AS TIMESTAMPTZ) AT TIME ZONE 'UTC'"
    ns = _uint("r.timestamp_raw", 253402300799 * 10**9)
    return (
        f"CASE WHEN r.timestamp IS NOT NULL THEN try_cast({zoned} AS TIMESTAMP) "
        f"WHEN {ns} IS NOT NULL THEN make_timestamp({ns} // 1000) END"
    )


def _protocol_sql() -> str:
    raw = _uint("coalesce(r.src.proto_raw, r.dst.proto_raw)", 255)
    name = "upper(coalesce(r.src.proto, r.dst.proto))"
    names = "CASE name WHEN 'TCP' THEN 'TCP' WHEN 'UDP' THEN 'UDP' WHEN 'SCTP' THEN 'SCTP' END"
    return (
        f"CASE WHEN {raw} IS NOT NULL THEN {protocol_name_sql(raw)} "
        f"ELSE (SELECT {names} FROM (SELECT {name} AS name)) END"
    )


def reject_sql() -> str:
    """Why a parsed event cannot be used (NULL when it can)."""
    types = ", ".join(lit(t) for t in TCP_TYPES)
    ip = "'^[0-9a-fA-F.:]+$'"
    return (
        "CASE WHEN r IS NULL THEN 'not an Inspektor Gadget event' "
        "WHEN r.src IS NULL AND r.dst IS NULL "
        "THEN 'not a network event (no src/dst endpoints)' "
        "WHEN r.src.addr IS NULL OR r.dst.addr IS NULL THEN 'no src.addr or dst.addr' "
        f"WHEN NOT regexp_matches(r.src.addr, {ip}) OR NOT regexp_matches(r.dst.addr, {ip}) "
        "THEN 'invalid IP address' "
        "WHEN ts IS NULL THEN 'no valid timestamp (timestamp or timestamp_raw)' "
        f"WHEN r.type IS NOT NULL AND r.type NOT IN ({types}) THEN 'unknown type ' || r.type "
        "WHEN upper(r.src.proto) <> upper(r.dst.proto) OR r.src.proto_raw <> r.dst.proto_raw "
        "THEN 'src and dst protocols differ' "
        "WHEN protocol IS NULL THEN 'unknown protocol' "
        "WHEN (r.src.port IS NOT NULL AND sport IS NULL) "
        "OR (r.dst.port IS NOT NULL AND dport IS NULL) THEN 'invalid port' "
        "WHEN r.src.k8s.kind NOT IN ('pod', 'svc', 'raw') "
        "OR r.dst.k8s.kind NOT IN ('pod', 'svc', 'raw') THEN 'unknown k8s.kind' "
        "WHEN side IS NULL THEN 'cannot orient: no trace_tcp type, and not UDP to a port below "
        f"{UDP_SERVER_PORT_LIMIT}' END"
    )


def _local_pod_sql() -> str:
    """The event-level ``k8s`` pod as a Hubble endpoint (the node for a hostNetwork pod)."""
    k = "r.k8s"
    return (
        f"CASE WHEN lower({k}.hostnetwork) = 'true' THEN json_object('labels', ['reserved:host']) "
        f"WHEN nullif({k}.podName, '') IS NOT NULL THEN json_object('namespace', {k}.namespace, "
        f"'pod_name', {k}.podName, 'labels', {_labels_sql(k + '.podLabels')}) END"
    )


def _end_sql(which: str) -> str:
    """The raw end of ``src``/``dst`` (``endpoint_input_sql`` shape)."""
    k = f"r.{which}.k8s"
    pod = (
        f"json_object('namespace', {k}.namespace, 'pod_name', {k}.name, "
        f"'labels', {_labels_sql(k + '.labels')})"
    )
    local = _local_pod_sql() if which == "src" else "NULL"
    e = (
        f"CASE WHEN {k}.kind = 'pod' AND nullif({k}.name, '') IS NOT NULL THEN {pod} "
        f"WHEN r.type IS NOT NULL THEN {local} END"
    )
    svc = f"{k}.kind = 'svc'"
    return (
        f"{{'e': ({e})::JSON, 'ip': r.{which}.addr::VARCHAR, 'node': NULL::VARCHAR, "
        f"'names': []::VARCHAR[], "
        f"'service_namespace': CASE WHEN {svc} THEN nullif({k}.namespace, '') END::VARCHAR, "
        f"'service_name': CASE WHEN {svc} THEN nullif({k}.name, '') END::VARCHAR}}"
    )


def _side_sql() -> str:
    """Which endpoint is the client: ``src``, ``dst``, or NULL (cannot tell)."""
    return (
        "CASE WHEN r.type IN ('connect', 'close') THEN 'src' WHEN r.type = 'accept' THEN 'dst' "
        f"WHEN r.type IS NULL AND protocol = 'UDP' AND dport < {UDP_SERVER_PORT_LIMIT} "
        "THEN 'src' END"
    )


def _parsed_sql(lines: str, paths: Sequence[str]) -> str:
    parse = DUCKDB.parse_json("j", EVENT_SCHEMA)
    return f"""
SELECT *, {_side_sql()} AS side
FROM (SELECT *, {_time_sql()} AS ts, {_protocol_sql()} AS protocol,
             {_uint("r.src.port", 65535)} AS sport, {_uint("r.dst.port", 65535)} AS dport
      FROM (SELECT *, CASE WHEN bad IS NULL THEN {parse} END AS r
            FROM ({jsondoc.records_sql(lines, paths)})))"""


def oriented_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Oriented packets (:data:`recommender.flows.formats.PACKET_COLUMNS`) of IG events.

    Parameters
    ----------
    lines
        A relation with ``file_id, line_no, text, reject`` (``sources.LINE_SCHEMA``).
    paths
        Input paths by ``file_id`` (for ``raw_ref``).
    dialect
        Only DuckDB: the Spark engine does not read this format (``FlowFormat.spark``).
    """
    del dialect
    l4 = "protocol IN (" + ", ".join(lit(p) for p in PORT_PROTOCOLS) + ")"
    kind = (
        "CASE WHEN bad = 'blank' THEN 'blank' WHEN bad IS NOT NULL OR rr IS NOT NULL "
        "THEN 'reject' WHEN r.type = 'close' THEN 'ig_close' ELSE 'flow' END"
    )
    swap = "side = 'dst'"
    error = "coalesce(r.error, '') NOT IN ('', '0')"
    return f"""
SELECT file_id, line_no, raw_ref, line_kind,
       CASE WHEN line_kind = 'reject' THEN coalesce(bad, rr) END AS reject_detail,
       0::BIGINT AS lost, {lit(SOURCE_FORMAT)} AS source_format,
       CASE WHEN fl THEN false END AS rep,
       CASE WHEN NOT fl THEN NULL WHEN r.type IS NOT NULL THEN 'trace_tcp'
            ELSE 'udp_port' END AS orientation,
       CASE WHEN fl THEN ts END AS time_start, CASE WHEN fl THEN r.k8s.node END AS observer,
       CASE WHEN fl THEN protocol END AS protocol, NULL::INTEGER AS icmp_type,
       CASE WHEN NOT fl THEN NULL WHEN r.src.version = '6' OR contains(r.src.addr, ':') THEN 6
            ELSE 4 END AS ip_version,
       CASE WHEN NOT fl THEN NULL WHEN {error} THEN 'error' ELSE 'allowed' END AS verdict,
       NULL::VARCHAR AS drop_reason, false AS is_policy_drop, []::VARCHAR[] AS policies,
       NULL::VARCHAR AS observation_point, NULL::INTEGER AS event_type,
       CASE WHEN fl THEN CASE WHEN {swap} THEN b_ep ELSE a_ep END END AS src_ep,
       CASE WHEN fl THEN CASE WHEN {swap} THEN a_ep ELSE b_ep END END AS dst_ep,
       CASE WHEN fl THEN CASE WHEN {swap} THEN dport ELSE sport END::INTEGER END AS src_port,
       CASE WHEN fl AND {l4} THEN CASE WHEN {swap} THEN sport ELSE dport END::INTEGER END
           AS dst_port,
       CASE WHEN fl THEN false END AS is_reply,
       CASE WHEN NOT fl THEN NULL WHEN r.type = 'connect' THEN 'src'
            WHEN r.type = 'accept' THEN 'dst' ELSE 'unknown' END AS reporter,
       CASE WHEN fl AND {l4} THEN CASE WHEN {swap} THEN sport ELSE dport END::INTEGER END
           AS server_port,
       CASE WHEN fl THEN ts END AS time_end
FROM (SELECT *, line_kind = 'flow' AS fl,
             CASE WHEN line_kind = 'flow' THEN {_end_sql("src")} END AS a_ep,
             CASE WHEN line_kind = 'flow' THEN {_end_sql("dst")} END AS b_ep
      FROM (SELECT *, {kind} AS line_kind
            FROM (SELECT *, CASE WHEN bad IS NULL THEN {reject_sql()} END AS rr
                  FROM ({_parsed_sql(lines, paths)}))))"""
