"""Calico Enterprise / Calico Cloud flow logs -> oriented packets (FORMATS.md 2.2.1).

Input: the flow-log documents (``flows.log`` JSON lines on the node, or an
Elasticsearch ``tigera_secure_ee_flows*`` export), one per line or one
pretty-printed document per file (see :mod:`recommender.flows.jsondoc`).

Orientation is the record's own: Calico flow logs are connection-oriented,
``source_*`` is the initiator and ``dest_port`` the listener's port, so no
record is a reply. ``reporter`` (``src``: logged on the initiator's node,
``dst``: on the receiver's) is kept; one connection between two workloads is
logged by both nodes. With IPs present the two reports share the connection
key and count once. With IPs aggregated away (allowed flows at the default
level 2) nothing tells two reports apart, so an allowed ``src`` report of a
flow to a workload (``dest_type`` ``wep``), which its ``dst`` twin repeats, is
the non-flow line kind ``calico_src_report`` (counted, not a connection). A
denied flow is kept from either reporter: a flow denied on egress never reaches
the destination node.

Aggregated names (``nginx-86c57db685-*``, FORMATS.md 3.10) are never pod names:
the pod is NULL and the workload is the Deployment when the prefix ends with
the record's ``pod-template-hash`` label; identity comes from the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows import jsondoc
from recommender.flows.hubble_sql import DUCKDB, Dialect

_PROTOCOLS = (
    "CASE lower(p) WHEN 'tcp' THEN 'TCP' WHEN '6' THEN 'TCP' WHEN 'udp' THEN 'UDP' "
    "WHEN '17' THEN 'UDP' WHEN 'sctp' THEN 'SCTP' WHEN '132' THEN 'SCTP' "
    "WHEN 'icmp' THEN 'ICMPv4' WHEN '1' THEN 'ICMPv4' WHEN 'icmp6' THEN 'ICMPv6' "
    "WHEN 'icmpv6' THEN 'ICMPv6' WHEN '58' THEN 'ICMPv6' END"
)
#: Calico endpoint types -> the Hubble reserved label that classifies the peer.
_TYPE_LABEL = {"hep": "reserved:host", "net": "reserved:world", "ns": "reserved:world"}
#: The top-level fields read, extracted from each record in one call (column ``js``):
#: DuckDB's JSON functions parse the whole document on every call, and one call per
#: field (about 40) needed ~0.5 MB per record of a chunk: a valid 1,000-line
#: flows.log ran out of the default 512 MB (found by ``bench/fuzz.py --target calico``).
_FIELDS: tuple[str, ...] = (
    "source_namespace",
    "source_name",
    "source_name_aggr",
    "source_type",
    "source_ip",
    "source_port",
    "dest_namespace",
    "dest_name",
    "dest_name_aggr",
    "dest_type",
    "dest_ip",
    "dest_port",
    "dest_service_namespace",
    "dest_service_name",
    "proto",
    "reporter",
    "action",
    "start_time",
    "end_time",
    "host",
)
#: The nested values read (column ``jd``, JSON): small documents parsed on their own.
_NESTED: tuple[str, ...] = ("source_labels", "dest_labels", "policies", "dest_domains")


def _raw(field: str) -> str:
    """``json_extract_string(j, '$.<field>')`` of a field of :data:`_FIELDS`."""
    return f"js[{_FIELDS.index(field) + 1}]"


def _nested(field: str) -> str:
    """``json_extract(j, '$.<field>')`` of a field of :data:`_NESTED`."""
    return f"jd[{_NESTED.index(field) + 1}]"


def _extract_sql() -> str:
    """The columns ``js`` and ``jd`` of a record ``j`` (one parse each)."""
    fields = ", ".join(f"'$.{f}'" for f in _FIELDS)
    nested = ", ".join(f"'$.{f}'" for f in _NESTED)
    return f"json_extract_string(j, [{fields}]) AS js, json_extract(j, [{nested}]) AS jd"


def _s(field: str) -> str:
    """A string field, NULL for absent, empty or Calico's ``-`` (not applicable)."""
    return f"nullif(nullif({_raw(field)}, '-'), '')"


def _port(field: str) -> str:
    return f"try_cast({_raw(field)} AS INTEGER)"


def _labels(side: str) -> str:
    """``k8s:k=v`` strings of ``{"labels": ["k=v", ...]}`` (``-`` = aggregated away)."""
    labels = _nested(f"{side}_labels")
    raw = f"json_extract_string({labels}, '$.labels[*]')"
    return (
        f"CASE WHEN json_type({labels}) = 'OBJECT' THEN "
        f"list_transform(coalesce({raw}, []), lambda x: 'k8s:' || x) ELSE [] END"
    )


def _workload(side: str) -> str:
    """``[{kind, name}]``: the Deployment of an aggregated ``<name>-<hash>-*`` prefix."""
    raw = f"coalesce(json_extract_string({_nested(side + '_labels')}, '$.labels[*]'), [])"
    hashes = f"list_filter({raw}, lambda x: starts_with(x, 'pod-template-hash='))"
    h = f"substr({hashes}[1], 19)"
    name = f"regexp_extract({_s(side + '_name_aggr')}, '^(.+)-([a-z0-9]+)-\\*$', 1)"
    tail = f"regexp_extract({_s(side + '_name_aggr')}, '^(.+)-([a-z0-9]+)-\\*$', 2)"
    return (
        f"CASE WHEN {h} <> '' AND {tail} = {h} AND {name} <> '' "
        f"THEN [{{'name': {name}, 'kind': 'Deployment'}}] ELSE [] END"
    )


def _endpoint(side: str, ip: str) -> str:
    """The raw end (``endpoint_input_sql`` shape) with a Hubble-endpoint JSON ``e``."""
    kind = _raw(f"{side}_type")
    cases = " ".join(f"WHEN '{t}' THEN ['{lab}']" for t, lab in _TYPE_LABEL.items())
    labels = f"CASE {kind} WHEN 'wep' THEN {_labels(side)} {cases} ELSE [] END"
    name = _s(side + "_name")
    pod = f"CASE WHEN {kind} = 'wep' AND NOT contains({name}, '*') THEN {name} END"
    e = (
        f"json_object('namespace', {_s(side + '_namespace')}, 'pod_name', {pod}, "
        f"'labels', {labels}, 'workloads', {_workload(side)})"
    )
    svc_ns = _s("dest_service_namespace") if side == "dest" else "NULL"
    svc = _s("dest_service_name") if side == "dest" else "NULL"
    domains = f"json_extract_string({_nested('dest_domains')}, '$[*]')"
    names = f"coalesce({domains}, [])" if side == "dest" else "[]"
    return (
        f"{{'e': {e}::JSON, 'ip': {ip}, 'node': NULL::VARCHAR, 'names': {names}::VARCHAR[], "
        f"'service_namespace': {svc_ns}::VARCHAR, 'service_name': {svc}::VARCHAR}}"
    )


def _reject_sql() -> str:
    """Why a parsed record cannot be used (NULL when it can)."""
    types = "('wep', 'hep', 'ns', 'net')"
    return (
        "CASE WHEN bad IS NOT NULL THEN bad "
        "WHEN ts IS NULL THEN 'no valid start_time (UNIX seconds)' "
        "WHEN reporter NOT IN ('src', 'dst') "
        "THEN 'unknown reporter ' || coalesce(reporter, '(none)') "
        "WHEN verdict IS NULL THEN 'unknown action ' || coalesce(action, '(none)') "
        "WHEN protocol IS NULL THEN 'unknown proto ' || coalesce(p, '(none)') "
        f"WHEN coalesce({_raw('source_type')}, '?') NOT IN {types} "
        f"THEN 'unknown source_type ' || coalesce({_raw('source_type')}, '(none)') "
        f"WHEN coalesce({_raw('dest_type')}, '?') NOT IN {types} "
        f"THEN 'unknown dest_type ' || coalesce({_raw('dest_type')}, '(none)') "
        "WHEN NOT (coalesce(dport, 0) BETWEEN 0 AND 65535 "
        "AND coalesce(sport, 0) BETWEEN 0 AND 65535) "
        f"OR (dport IS NULL AND {_raw('dest_port')} IS NOT NULL) "
        "THEN 'invalid port' "
        "WHEN (sip IS NOT NULL AND NOT regexp_matches(sip, '^[0-9a-fA-F.:]+$')) "
        "OR (dip IS NOT NULL AND NOT regexp_matches(dip, '^[0-9a-fA-F.:]+$')) "
        "THEN 'invalid IP address' END"
    )


def _fields_sql(lines: str, paths: Sequence[str]) -> str:
    def t(field: str) -> str:
        return f"try_cast({_raw(field)} AS DOUBLE)"

    return f"""
SELECT *, {_PROTOCOLS} AS protocol
FROM (SELECT *, {_s("proto")} AS p, {_s("reporter")} AS reporter, {_s("action")} AS action,
             CASE {_s("action")} WHEN 'allow' THEN 'allowed' WHEN 'deny' THEN 'denied' END
                 AS verdict,
             try(to_timestamp({t("start_time")})::TIMESTAMP) AS ts,
             try(to_timestamp({t("end_time")})::TIMESTAMP) AS te,
             {_s("source_ip")} AS sip, {_s("dest_ip")} AS dip,
             {_port("source_port")} AS sport, {_port("dest_port")} AS dport
      FROM (SELECT *, {_extract_sql()} FROM ({jsondoc.records_sql(lines, paths)})))"""


def _duplicate_sql() -> str:
    """An allowed, IP-aggregated ``src`` report that the destination node repeats."""
    return (
        f"reporter = 'src' AND verdict = 'allowed' AND sip IS NULL AND {_raw('dest_type')} = 'wep'"
    )


def oriented_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Oriented packets (:data:`recommender.flows.formats.PACKET_COLUMNS`) of Calico lines."""
    del dialect  # DuckDB only (the Spark engine refuses this format)
    l4 = "protocol IN ('TCP', 'UDP', 'SCTP')"
    enforced = f"json_extract_string({_nested('policies')}, '$.enforced_policies[*]')"
    return f"""
SELECT file_id, line_no, raw_ref,
       CASE WHEN bad = 'blank' THEN 'blank' WHEN rr IS NOT NULL THEN 'reject'
            WHEN {_duplicate_sql()} THEN 'calico_src_report' ELSE 'flow' END AS line_kind,
       CASE WHEN bad IS DISTINCT FROM 'blank' THEN rr END AS reject_detail, 0::BIGINT AS lost,
       'calico_ee' AS source_format, false AS rep, 'calico' AS orientation, ts AS time_start,
       {_s("host")} AS observer, protocol, NULL::INTEGER AS icmp_type,
       CASE WHEN contains(coalesce(dip, sip), ':') THEN 6
            WHEN coalesce(dip, sip) IS NOT NULL THEN 4 END AS ip_version,
       verdict, CASE WHEN verdict = 'denied' THEN 'POLICY_DENY' END AS drop_reason,
       verdict = 'denied' AS is_policy_drop,
       list_transform(coalesce({enforced}, []),
                      lambda x: 'calico:' || split_part(x, '|', 3)) AS policies,
       NULL::VARCHAR AS observation_point, NULL::INTEGER AS event_type,
       {_endpoint("source", "sip")} AS src_ep, {_endpoint("dest", "dip")} AS dst_ep,
       sport AS src_port, CASE WHEN {l4} THEN dport END AS dst_port, false AS is_reply,
       reporter, CASE WHEN {l4} THEN dport END AS server_port, coalesce(te, ts) AS time_end
FROM (SELECT *, {_reject_sql()} AS rr FROM ({_fields_sql(lines, paths)}))"""
