"""Antrea flow records -> oriented packets (FORMATS.md 2.3).

Two shapes of the Flow Aggregator's records, one reader each, one mapping:

* ``antctl get flowrecords -o json`` (:data:`JSON_FORMAT`): a JSON array of
  records keyed by the IPFIX information element names
  (``sourceIPv4Address``, ``flowStartSeconds`` ...), or one record per line.
  A ClickHouse ``FORMAT JSONEachRow`` export of the ``flows`` table is read
  too: it names the addresses ``sourceIP``/``destinationIP`` and writes times as
  ``YYYY-MM-DD hh:mm:ss`` (UTC).
* The flow-logger CSV (:data:`CSV_FORMAT`, ``flowLogger`` of the aggregator,
  ``pkg/flowaggregator/flowlogger``): no header, the fixed columns of
  :data:`CSV_COLUMNS`; the pretty-print mode writes names (``TCP``, ``Drop``,
  ``K8sNetworkPolicy``), the raw mode numbers. Columns after the 30th are
  ignored. The CSV has no labels and no ``flowType``.

The mapping, for both:

* Orientation: the flow key is the conntrack *original* direction, so
  ``source*`` is the initiator and ``destinationTransportPort`` the listener's
  port. No record is a reply (``orientation`` = ``antrea``).
* Ends: a non-empty ``*PodName`` is a pod (with ``*PodNamespace``). Labels
  (``sourcePodLabels``/``destinationPodLabels``, only when the aggregator's
  ``recordContents.podLabels`` is on) are a JSON-encoded map string: ``"{}"``
  is a pod without labels, ``""`` or absent says nothing (the inventory gives
  the pod's labels by name). Without a pod name, ``flowType`` 3 (to external)
  makes the destination ``world`` and 4 (from external) the source; any other
  end is its address only, attributed by IP and time with an inventory like a
  VPC flow log's end. ``destinationServicePortName`` (``ns/svc:port``) names the
  Service the client addressed; ``destinationIP`` is already the backend.
* Verdict: ``ingress``/``egressNetworkPolicyRuleAction`` 1 allow, 2 drop, 3
  reject (0 or empty: no rule). A drop or reject on either side makes the
  record ``denied`` with ``drop_reason`` ``Drop``/``Reject`` (a policy drop);
  otherwise an action this reader does not know is a reject of the record;
  otherwise ``allowed``. ``policies`` names every policy the record carries as
  ``<type>:<namespace>/<name>`` (type 1 ``K8sNetworkPolicy``, 2
  ``AntreaNetworkPolicy``, 3 ``AntreaClusterNetworkPolicy``, 4
  ``AdminNetworkPolicy``, 5 ``BaselineAdminNetworkPolicy``).
* Counting: the aggregator exports one record per active timeout of a long
  connection; the rows of one connection share the 5-tuple (and
  ``flowStartSeconds``), so the connection key counts them once. Rows are
  never connections.
* ``reporter``: ``both`` when the record names both nodes, else the end whose
  node it names (``unknown`` for none); ``observer``: the source node, else the
  destination node.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows import jsondoc
from recommender.flows.hubble import paths_literal
from recommender.flows.hubble_sql import DUCKDB, Dialect, lit
from recommender.flows.vpc import PORT_PROTOCOLS, protocol_name_sql

JSON_FORMAT = "antrea_antctl"
CSV_FORMAT = "antrea_csv"
#: The flow-logger CSV columns, in order (pkg/flowaggregator/flowlogger).
CSV_COLUMNS: tuple[str, ...] = (
    "flowStartSeconds",
    "flowEndSeconds",
    "sourceIP",
    "destinationIP",
    "sourceTransportPort",
    "destinationTransportPort",
    "protocolIdentifier",
    "sourcePodName",
    "sourcePodNamespace",
    "sourceNodeName",
    "destinationPodName",
    "destinationPodNamespace",
    "destinationNodeName",
    "destinationClusterIP",
    "destinationServiceIP",
    "destinationServicePort",
    "destinationServicePortName",
    "ingressNetworkPolicyName",
    "ingressNetworkPolicyNamespace",
    "ingressNetworkPolicyRuleName",
    "ingressNetworkPolicyRuleAction",
    "ingressNetworkPolicyType",
    "egressNetworkPolicyName",
    "egressNetworkPolicyNamespace",
    "egressNetworkPolicyRuleName",
    "egressNetworkPolicyRuleAction",
    "egressNetworkPolicyType",
    "egressName",
    "egressIP",
    "egressNodeName",
)
#: Fields of a record this reader uses (JSON keys; CSV columns by the same names).
FIELDS: tuple[str, ...] = (
    "flowStartSeconds",
    "flowEndSeconds",
    "sourceIP",
    "destinationIP",
    "sourceTransportPort",
    "destinationTransportPort",
    "protocolIdentifier",
    "sourcePodName",
    "sourcePodNamespace",
    "sourceNodeName",
    "destinationPodName",
    "destinationPodNamespace",
    "destinationNodeName",
    "destinationServicePortName",
    "ingressNetworkPolicyName",
    "ingressNetworkPolicyNamespace",
    "ingressNetworkPolicyRuleAction",
    "ingressNetworkPolicyType",
    "egressNetworkPolicyName",
    "egressNetworkPolicyNamespace",
    "egressNetworkPolicyRuleAction",
    "egressNetworkPolicyType",
    "flowType",
    "sourcePodLabels",
    "destinationPodLabels",
)
#: JSON keys read besides FIELDS: the IPFIX address names (antctl).
_JSON_ADDRESSES = (
    "sourceIPv4Address",
    "sourceIPv6Address",
    "destinationIPv4Address",
    "destinationIPv6Address",
)
#: Rule actions (IPFIX ``ingressNetworkPolicyRuleAction``): number and pretty name.
ACTIONS: dict[str, str] = {"0": "none", "1": "allow", "2": "drop", "3": "reject"}
ACTION_NAMES: dict[str, str] = {"allow": "allow", "drop": "drop", "reject": "reject"}
#: Policy types (``ingressNetworkPolicyType``): number -> the name Antrea prints.
POLICY_TYPES: dict[str, str] = {
    "1": "K8sNetworkPolicy",
    "2": "AntreaNetworkPolicy",
    "3": "AntreaClusterNetworkPolicy",
    "4": "AdminNetworkPolicy",
    "5": "BaselineAdminNetworkPolicy",
}
#: Pretty protocol names of the flow logger (Antrea's IPProtocolNumberToString).
_PROTOCOL_NAMES: dict[str, str] = {
    "TCP": "TCP",
    "UDP": "UDP",
    "SCTP": "SCTP",
    "ICMP": "ICMPv4",
    "IPV6-ICMP": "ICMPv6",
    "ICMPV6": "ICMPv6",
}
_V = "VARCHAR"


def _f(name: str) -> str:
    return f'"a:{name}"'


# ---------------------------------------------------------------------------
# Stage 1: the fields of each record as text (``"a:<name>"``), per shape.
# ---------------------------------------------------------------------------


def _json_fields_sql(lines: str, paths: Sequence[str]) -> str:
    schema: dict[str, object] = {k: _V for k in (*FIELDS, *_JSON_ADDRESSES)}
    parse = DUCKDB.parse_json("j", schema)
    cols = []
    for name in FIELDS:
        value = f"r.{name}"
        if name in ("sourceIP", "destinationIP"):
            side = name[: -len("IP")]
            value = (
                f"coalesce(nullif(r.{side}IPv4Address, ''), nullif(r.{side}IPv6Address, ''), "
                f"r.{name})"
            )
        cols.append(f"nullif(trim({value}), '') AS {_f(name)}")
    return f"""
SELECT file_id, line_no, raw_ref, bad, {", ".join(cols)}
FROM (SELECT *, CASE WHEN bad IS NULL THEN {parse} END AS r
      FROM ({jsondoc.records_sql(lines, paths)}))"""


def _csv_fields_sql(lines: str, paths: Sequence[str]) -> str:
    n = len(CSV_COLUMNS)
    cols = []
    for name in FIELDS:
        if name in CSV_COLUMNS:
            cols.append(f"nullif(trim(v[{CSV_COLUMNS.index(name) + 1}]), '') AS {_f(name)}")
        else:
            cols.append(f"NULL::VARCHAR AS {_f(name)}")
    bad = (
        "CASE WHEN reject IS NOT NULL THEN reject WHEN trim(t) = '' THEN 'blank' "
        f"WHEN len(v) < {n} THEN len(v)::VARCHAR || ' fields, the flow-logger CSV has {n}' END"
    )
    return f"""
SELECT file_id, line_no, raw_ref, {bad} AS bad, {", ".join(cols)}
FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
             string_split(t, ',') AS v
      FROM (SELECT *, regexp_replace(text, '\\r$', '') AS t FROM {lines}))"""


# ---------------------------------------------------------------------------
# Stage 2: values and reject reasons.
# ---------------------------------------------------------------------------


def _uint(name: str, top: int) -> str:
    """A whole number 0..top written in canonical digits, else NULL."""
    v = _f(name)
    n = f"try_cast({v} AS BIGINT)"
    return f"CASE WHEN {n} BETWEEN 0 AND {top} AND {n}::VARCHAR = {v} THEN {n} END"


def _time(name: str) -> str:
    """UNIX seconds (IPFIX dateTimeSeconds), or ClickHouse's ``YYYY-MM-DD hh:mm:ss`` (UTC)."""
    v = _f(name)
    secs = _uint(name, 253402300799)
    text = f"try_cast({v} AS TIMESTAMP)"
    return (
        f"CASE WHEN {secs} IS NOT NULL THEN make_timestamp({secs} * 1000000) "
        f"WHEN regexp_matches({v}, '^[0-9]{{4}}-') THEN {text} END"
    )


def _protocol() -> str:
    v = _f("protocolIdentifier")
    names = " ".join(f"WHEN {lit(k)} THEN {lit(n)}" for k, n in _PROTOCOL_NAMES.items())
    number = _uint("protocolIdentifier", 255)
    return (
        f"CASE WHEN {number} IS NOT NULL THEN {protocol_name_sql(number)} "
        f"ELSE CASE upper({v}) {names} END END"
    )


def _action(side: str) -> str:
    """``none``/``allow``/``drop``/``reject``, ``?`` for a value not known here."""
    v = f"lower({_f(side + 'NetworkPolicyRuleAction')})"
    cases = " ".join(f"WHEN {lit(k)} THEN {lit(a)}" for k, a in {**ACTIONS, **ACTION_NAMES}.items())
    return f"CASE WHEN {v} IS NULL THEN 'none' ELSE CASE {v} {cases} ELSE '?' END END"


def _policy(side: str) -> str:
    """``<type>:<namespace>/<name>`` of one side's policy, NULL when it names none."""
    name, ns = _f(side + "NetworkPolicyName"), _f(side + "NetworkPolicyNamespace")
    t = _f(side + "NetworkPolicyType")
    types = " ".join(f"WHEN {lit(k)} THEN {lit(n)}" for k, n in POLICY_TYPES.items())
    known = ", ".join(lit(n) for n in POLICY_TYPES.values())
    kind = f"CASE {t} {types} ELSE CASE WHEN {t} IN ({known}) THEN {t} ELSE 'unknown' END END"
    return (
        f"CASE WHEN {name} IS NOT NULL THEN {kind} || ':' || "
        f"CASE WHEN {ns} IS NOT NULL THEN {ns} || '/' ELSE '' END || {name} END"
    )


def _labels(name: str) -> str:
    """``k8s:key=value`` of a JSON map string; ``[]`` for ``{}``/empty; NULL: not a map
    of strings (a reject)."""
    v = _f(name)
    m = f"try_cast(try(json({v})) AS MAP(VARCHAR, JSON))"
    strings = f"list_bool_and(list_transform(map_values({m}), lambda x: json_type(x) = 'VARCHAR'))"
    each = "lambda e: 'k8s:' || e.key || '=' || (e.value->>'$')"
    return (
        f"CASE WHEN {v} IS NULL OR trim({v}) IN ('', '{{}}') THEN []::VARCHAR[] "
        f"WHEN coalesce({strings}, false) THEN list_sort(list_transform(map_entries({m}), {each}))"
        " END"
    )


def _values_sql(fields: str) -> str:
    values = [
        f"{_time('flowStartSeconds')} AS ts",
        f"{_time('flowEndSeconds')} AS te",
        f"{_protocol()} AS protocol",
        f"{_uint('sourceTransportPort', 65535)} AS sport",
        f"{_uint('destinationTransportPort', 65535)} AS dport",
        f"{_uint('flowType', 255)} AS ftype",
        f"{_action('ingress')} AS ing",
        f"{_action('egress')} AS eg",
        f"{_labels('sourcePodLabels')} AS slab",
        f"{_labels('destinationPodLabels')} AS dlab",
        f"{_policy('ingress')} AS ing_pol",
        f"{_policy('egress')} AS eg_pol",
    ]
    return f"SELECT *, {', '.join(values)} FROM ({fields})"


def _shown(name: str) -> str:
    return f"substr(regexp_replace({_f(name)}, '[\\x00-\\x1f\\x7f]', '?', 'g'), 1, 80)"


def _invalid(name: str, ok: str) -> str:
    """``WHEN`` the present field is not ``ok``: a reject naming it and its value."""
    return f"WHEN {_f(name)} IS NOT NULL AND NOT coalesce({ok}, false) " + (
        f"THEN 'invalid {name}: ' || {_shown(name)} "
    )


def reject_sql() -> str:
    """Why a parsed record cannot be used (NULL when it can), most basic reason first."""
    ip = "'^[0-9a-fA-F.:]+$'"
    denied = "(ing IN ('drop', 'reject') OR eg IN ('drop', 'reject'))"
    return (
        f"CASE WHEN {_f('flowStartSeconds')} IS NULL THEN 'no flowStartSeconds' "
        + _invalid("flowStartSeconds", "ts IS NOT NULL")
        + _invalid("flowEndSeconds", "te IS NOT NULL")
        + f"WHEN {_f('sourceIP')} IS NULL THEN 'no source IP address' "
        f"WHEN {_f('destinationIP')} IS NULL THEN 'no destination IP address' "
        + _invalid("sourceIP", f"regexp_matches({_f('sourceIP')}, {ip})")
        + _invalid("destinationIP", f"regexp_matches({_f('destinationIP')}, {ip})")
        + f"WHEN {_f('protocolIdentifier')} IS NULL THEN 'no protocolIdentifier' "
        + _invalid("protocolIdentifier", "protocol IS NOT NULL")
        + _invalid("sourceTransportPort", "sport IS NOT NULL")
        + _invalid("destinationTransportPort", "dport IS NOT NULL")
        + _invalid("flowType", "ftype IS NOT NULL")
        + f"WHEN {_f('sourcePodName')} IS NOT NULL AND {_f('sourcePodNamespace')} IS NULL "
        "THEN 'sourcePodName without sourcePodNamespace' "
        f"WHEN {_f('destinationPodName')} IS NOT NULL AND {_f('destinationPodNamespace')} IS NULL "
        "THEN 'destinationPodName without destinationPodNamespace' "
        + _invalid("sourcePodLabels", "slab IS NOT NULL")
        + _invalid("destinationPodLabels", "dlab IS NOT NULL")
        + f"WHEN NOT {denied} AND ing = '?' THEN 'unknown ingressNetworkPolicyRuleAction ' || "
        f"{_shown('ingressNetworkPolicyRuleAction')} "
        f"WHEN NOT {denied} AND eg = '?' THEN 'unknown egressNetworkPolicyRuleAction ' || "
        f"{_shown('egressNetworkPolicyRuleAction')} END"
    )


# ---------------------------------------------------------------------------
# Stage 3: ends and the oriented-packets columns.
# ---------------------------------------------------------------------------


def _end(side: str) -> str:
    """The raw end (``endpoint_input_sql`` shape) of ``source`` or ``destination``."""
    pod, ns = _f(side + "PodName"), _f(side + "PodNamespace")
    labels = "slab" if side == "source" else "dlab"
    external = 4 if side == "source" else 3
    e = (
        f"CASE WHEN {pod} IS NOT NULL THEN json_object('namespace', {ns}, 'pod_name', {pod}, "
        f"'labels', {labels}) WHEN ftype = {external} THEN json_object('labels', "
        "['reserved:world']) END"
    )
    svc = _f("destinationServicePortName")
    # ``namespace/name:port`` (the port name may be empty: ``ns/svc:``).
    svc_re = "'^([^/:]+)/([^/:]+)(:.*)?$'"
    svc_ns = f"regexp_extract({svc}, {svc_re}, 1)" if side == "destination" else "NULL"
    svc_name = f"regexp_extract({svc}, {svc_re}, 2)" if side == "destination" else "NULL"
    ip = _f("sourceIP" if side == "source" else "destinationIP")
    return (
        f"{{'e': ({e})::JSON, 'ip': {ip}::VARCHAR, 'node': NULL::VARCHAR, "
        f"'names': []::VARCHAR[], 'service_namespace': nullif({svc_ns}, '')::VARCHAR, "
        f"'service_name': nullif({svc_name}, '')::VARCHAR}}"
    )


def _packets_sql(fields: str, source_format: str) -> str:
    """The oriented-packets relation of stage-1 ``fields`` of one shape."""
    l4 = "protocol IN (" + ", ".join(lit(p) for p in PORT_PROTOCOLS) + ")"
    snode, dnode = _f("sourceNodeName"), _f("destinationNodeName")
    drop = "CASE WHEN 'drop' IN (ing, eg) THEN 'Drop' WHEN 'reject' IN (ing, eg) THEN 'Reject' END"
    kind = (
        "CASE WHEN bad = 'blank' THEN 'blank' WHEN bad IS NOT NULL OR rr IS NOT NULL "
        "THEN 'reject' ELSE 'flow' END"
    )
    return f"""
SELECT file_id, line_no, raw_ref, line_kind,
       CASE WHEN line_kind = 'reject' THEN coalesce(bad, rr) END AS reject_detail,
       0::BIGINT AS lost, {lit(source_format)} AS source_format,
       CASE WHEN fl THEN false END AS rep, CASE WHEN fl THEN 'antrea' END AS orientation,
       CASE WHEN fl THEN ts END AS time_start,
       CASE WHEN fl THEN coalesce({snode}, {dnode}) END AS observer,
       CASE WHEN fl THEN protocol END AS protocol, NULL::INTEGER AS icmp_type,
       CASE WHEN NOT fl THEN NULL WHEN contains({_f("destinationIP")}, ':') THEN 6 ELSE 4 END
           AS ip_version,
       CASE WHEN NOT fl THEN NULL WHEN dr IS NOT NULL THEN 'denied' ELSE 'allowed' END
           AS verdict,
       CASE WHEN fl THEN dr END AS drop_reason, fl AND dr IS NOT NULL AS is_policy_drop,
       CASE WHEN fl THEN list_filter([ing_pol, eg_pol], lambda x: x IS NOT NULL)
            ELSE []::VARCHAR[] END AS policies,
       NULL::VARCHAR AS observation_point, NULL::INTEGER AS event_type,
       CASE WHEN fl THEN {_end("source")} END AS src_ep,
       CASE WHEN fl THEN {_end("destination")} END AS dst_ep,
       CASE WHEN fl THEN sport::INTEGER END AS src_port,
       CASE WHEN fl AND {l4} THEN dport::INTEGER END AS dst_port,
       CASE WHEN fl THEN false END AS is_reply,
       CASE WHEN NOT fl THEN NULL WHEN {snode} IS NOT NULL AND {dnode} IS NOT NULL THEN 'both'
            WHEN {snode} IS NOT NULL THEN 'src' WHEN {dnode} IS NOT NULL THEN 'dst'
            ELSE 'unknown' END AS reporter,
       CASE WHEN fl AND {l4} THEN dport::INTEGER END AS server_port,
       CASE WHEN fl THEN CASE WHEN te >= ts THEN te ELSE ts END END AS time_end
FROM (SELECT *, line_kind = 'flow' AS fl, {drop} AS dr
      FROM (SELECT *, {kind} AS line_kind
            FROM (SELECT *, CASE WHEN bad IS NULL THEN {reject_sql()} END AS rr
                  FROM ({_values_sql(fields)}))))"""


def json_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Oriented packets (:data:`recommender.flows.formats.PACKET_COLUMNS`) of
    ``antctl get flowrecords -o json`` (or ClickHouse JSONEachRow) files.

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
    return _packets_sql(_json_fields_sql(lines, paths), JSON_FORMAT)


def csv_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Oriented packets of flow-logger CSV files (see :func:`json_packets_sql`)."""
    del dialect
    return _packets_sql(_csv_fields_sql(lines, paths), CSV_FORMAT)
