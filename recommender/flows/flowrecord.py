"""Plain tables of FlowRecords (CSV, Parquet) -> oriented packets.

For any source netpol has no reader for: export the flows as a table whose
columns are :data:`recommender.model.FLOW_COLUMNS` (FORMATS.md 1.1; the table
``netpol`` itself produces), a subset of them in any order. ``docs/formats.md``
documents each column. The rules:

* **CSV**: RFC 4180 fields (``,``-separated, ``"``-quoted, ``""`` inside a
  quoted field), the first line names the columns, one record per line (a
  quoted field cannot hold a line break). Empty = no value. **Parquet**: the
  same columns; label maps may be ``MAP(VARCHAR, VARCHAR)`` or JSON text.
* Required: ``time_start``, ``protocol``, and for each end an identity
  (``*_namespace``) or an address (``*_ip``). A header naming a column that is
  not a FlowRecord column is refused, line by line, with that name.
* Ends are oriented as in netpol's own table: ``src`` is the connection's
  initiator and ``dst_port`` the listener's port. ``is_reply`` true marks a
  reply packet of that connection (ends already oriented, no rule comes of
  it); ``is_reply`` empty means the exporter could not tell: then, as for
  Hubble, exactly one ephemeral port names the client (the ends are swapped
  when it is the destination), else the record is unoriented. Without an
  ``is_reply`` column every record is a request.
* ``*_kind``: ``pod`` (needs ``*_namespace``), ``host``, ``world``,
  ``service`` and ``unknown``; empty: ``pod`` when a namespace is given, else
  an address only. ``cluster_infra`` and ``unknown`` ends keep only their
  address, which the inventory resolves (the API server through the
  ``default/kubernetes`` endpoints) and attributes by IP and time like a VPC
  flow log's; without an inventory they stay unknown.
* ``*_labels`` and ``*_ns_labels`` (namespace labels, not a FlowRecord column
  of netpol's output but accepted): a JSON object of strings, validated as
  Kubernetes labels like every reader's. ``dst_names`` and ``policies``: a
  JSON array of strings, or names separated by ``;``.
* ``time_start``/``time_end``: RFC 3339 (``2024-05-01T10:00:00Z``, an offset, or
  no zone = UTC) or UNIX seconds; years 1-9999.
* ``verdict``: ``allowed``, ``denied``, ``audit``, ``error``, ``unknown``;
  ``is_policy_drop`` true/false. ``conn_count``, ``event_count``, ``packets``,
  ``bytes``, ``observation_point``, ``event_type``, ``raw_ref`` and
  ``source_format`` are accepted and not used: connections are counted by
  their key (FORMATS.md 1.4) like every format's, and references point at this
  table's own ``file:line``.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows.hubble import paths_literal
from recommender.flows.hubble_sql import DUCKDB, Dialect, lit
from recommender.flows.vpc import PORT_PROTOCOLS, ports_reply_sql
from recommender.model import FLOW_COLUMNS
from recommender.vocabulary import VERDICTS

SOURCE_FORMAT = "flowrecord"
#: Accepted beyond FLOW_COLUMNS (FORMATS.md 1.1 columns netpol does not write).
EXTRA_COLUMNS: tuple[str, ...] = (
    "src_ns_labels",
    "dst_ns_labels",
    "icmp_code",
    "event_count",
    "packets",
    "bytes",
    "packets_rev",
    "bytes_rev",
    "l7_protocol",
    "l7_detail",
)
KNOWN_COLUMNS: tuple[str, ...] = FLOW_COLUMNS + EXTRA_COLUMNS
KINDS = ("pod", "host", "world", "service", "cluster_infra", "unknown")
#: One CSV field after a ``,`` (the line gets a leading ``,``): quoted or bare.
_FIELD_RE = ',("(?:[^"]|"")*"|[^,"]*)'


def _protocol_sql(v: str) -> str:
    """FlowRecord protocol names from names (any case), IANA numbers or ``IP:<n>``."""
    names = {"TCP": "TCP", "6": "TCP", "UDP": "UDP", "17": "UDP", "SCTP": "SCTP",
             "132": "SCTP", "ICMP": "ICMPv4", "ICMPV4": "ICMPv4", "1": "ICMPv4",
             "ICMPV6": "ICMPv6", "58": "ICMPv6"}  # fmt: skip
    whens = " ".join(f"WHEN {lit(k)} THEN {lit(n)}" for k, n in names.items())
    ip_n = "'^IP:([0-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5])$'"
    return f"CASE upper({v}) {whens} ELSE CASE WHEN regexp_matches({v}, {ip_n}) THEN {v} END END"


def c(name: str) -> str:
    """The column holding field ``name`` (NULL when the table has no such column)."""
    return f'"c:{name}"'


def _time(name: str) -> str:
    """A time field: RFC 3339 text (UTC when no zone) or UNIX seconds, years 1-9999."""
    v = c(name)
    seconds = f"try_cast({v} AS DOUBLE)"
    # A zone-less text is UTC (never the session's zone); an offset is applied.
    zoned = f"regexp_matches({v}, '(Z|z|[+-][0-9][0-9](:?[0-9][0-9])?)$')"
    text = (
        f"CASE WHEN {zoned} THEN try_cast(try_cast({v} AS TIMESTAMPTZ) AT TIME ZONE 'UTC' "
        f"AS TIMESTAMP) ELSE try_cast({v} AS TIMESTAMP) END"
    )
    # 253402300799 = 9999-12-31T23:59:59Z; -62135596800 = 0001-01-01T00:00:00Z.
    unix = (
        f"CASE WHEN {seconds} BETWEEN -62135596800 AND 253402300799 "
        f"THEN make_timestamp(({seconds} * 1000000)::BIGINT) END"
    )
    t = f"CASE WHEN {seconds} IS NOT NULL THEN {unix} ELSE {text} END"
    return f"(SELECT CASE WHEN year(x) BETWEEN 1 AND 9999 THEN x END FROM (SELECT {t} AS x))"


def _uint(name: str, top: int) -> str:
    """A whole number 0..top (``N.0`` too: a float column's way of writing it)."""
    v = c(name)
    return (
        f"CASE WHEN regexp_matches({v}, '^[0-9]{{1,10}}(\\.0+)?$') "
        f"AND {v}::DOUBLE <= {top} THEN {v}::DOUBLE::BIGINT END"
    )


def _bool(name: str) -> str:
    return (
        f"CASE lower({c(name)}) WHEN 'true' THEN true WHEN '1' THEN true "
        f"WHEN 'false' THEN false WHEN '0' THEN false END"
    )


def _strings(name: str) -> str:
    """A JSON array of strings, or ``;``-separated names (``[]`` when empty; NULL: invalid)."""
    v = c(name)
    arr = f"try_cast(try(json({v})) AS JSON[])"
    as_json = (
        f"CASE WHEN list_bool_and(list_transform({arr}, lambda x: json_type(x) = 'VARCHAR')) "
        f"OR len({arr}) = 0 THEN list_transform({arr}, lambda x: x->>'$') END"
    )
    split = (
        f"list_filter(list_transform(string_split({v}, ';'), lambda x: trim(x)), lambda x: x <> '')"
    )
    return (
        f"CASE WHEN {v} IS NULL THEN []::VARCHAR[] "
        f"WHEN starts_with(ltrim({v}), '[') THEN {as_json} ELSE {split} END"
    )


def _label_map(name: str) -> str:
    """A JSON object of strings as a ``MAP``; NULL when it is not one (a duplicate key,
    a number, a nested object: a reject, never a coerced label)."""
    v = c(name)
    m = f"try_cast(try(json({v})) AS MAP(VARCHAR, JSON))"
    is_text = "lambda x: json_type(x) = 'VARCHAR'"
    strings = f"coalesce(list_bool_and(list_transform(map_values({m}), {is_text})), true)"
    entries = (
        f"list_transform(map_entries({m}), lambda e: {{'key': e.key, 'value': e.value->>'$'}})"
    )
    return (
        f"CASE WHEN {v} IS NULL THEN MAP()::MAP(VARCHAR, VARCHAR) "
        f"WHEN {strings} THEN map_from_entries({entries}) END"
    )


def _prefixed(m: str, prefix: str) -> str:
    """``prefix || key=value`` per entry of the map ``m``, sorted."""
    each = f"lambda e: {lit(prefix)} || e.key || '=' || e.value"
    return f"list_sort(list_transform(map_entries({m}), {each}))"


# ---------------------------------------------------------------------------
# Stage 1 (CSV only): fields of each line, the file's header.
# ---------------------------------------------------------------------------


def _unquote(x: str) -> str:
    return (
        f"nullif(CASE WHEN starts_with({x}, '\"') THEN replace({x}[2:-2], '\"\"', '\"') "
        f"ELSE trim({x}) END, '')"
    )


def _text_sql() -> str:
    """The line without a trailing CR (CRLF files) or a leading byte order mark."""
    return "regexp_replace(regexp_replace(text, '\\r$', ''), '^\ufeff', '')"


def csv_split_sql(lines: str) -> str:
    """``lines`` with ``v`` (unquoted fields), ``csv_ok``, ``is_header`` and ``hdr``."""
    raw = "regexp_extract_all(',' || t, " + lit(_FIELD_RE) + ", 1)"
    return f"""
SELECT *, max(CASE WHEN is_header THEN list_transform(v, lambda x: lower(x)) END)
              OVER (PARTITION BY file_id) AS hdr
FROM (SELECT *, reject IS NULL AND line_no = 1 AS is_header,
             list_transform(f, lambda x: {_unquote("x")}) AS v,
             array_to_string(f, ',') = t AS csv_ok
      FROM (SELECT *, {raw} AS f
            FROM (SELECT *, {_text_sql()} AS t FROM {lines})))"""


def columns_sql(split: str) -> str:
    """Each known column of a CSV line as ``"c:<name>"`` (VARCHAR, NULL when absent)."""
    cols = ", ".join(f"v[list_position(hdr, {lit(n)})] AS {c(n)}" for n in KNOWN_COLUMNS)
    return f"SELECT *, {cols} FROM ({split})"


def header_error_sql() -> str:
    """Why the file's header cannot be read (NULL when it can)."""
    known = "[" + ", ".join(lit(n) for n in KNOWN_COLUMNS) + "]"
    unknown = f"list_filter(hdr, lambda x: NOT list_contains({known}, coalesce(x, '')))"
    return (
        "CASE WHEN hdr IS NULL THEN 'no header line naming the FlowRecord columns' "
        f"WHEN len({unknown}) > 0 THEN 'the header names ' || "
        f"coalesce({unknown}[1], '(an empty name)') || ', not a FlowRecord column' "
        "WHEN len(list_distinct(hdr)) < len(hdr) THEN 'the header names a column twice' "
        "WHEN NOT list_contains(hdr, 'time_start') THEN 'the header has no time_start column' "
        "WHEN NOT list_contains(hdr, 'protocol') THEN 'the header has no protocol column' "
        "WHEN NOT (list_contains(hdr, 'src_ip') OR list_contains(hdr, 'src_namespace')) "
        "THEN 'the header has neither src_ip nor src_namespace' "
        "WHEN NOT (list_contains(hdr, 'dst_ip') OR list_contains(hdr, 'dst_namespace')) "
        "THEN 'the header has neither dst_ip nor dst_namespace' END"
    )


# ---------------------------------------------------------------------------
# Stage 2 (CSV and Parquet): values, reject reasons, ends, orientation.
# ---------------------------------------------------------------------------


def _side_values(s: str) -> list[str]:
    kind = f"lower({c(s + '_kind')})"
    resolved = (
        f"CASE WHEN {kind} IS NOT NULL THEN {kind} "
        f"WHEN {c(s + '_namespace')} IS NOT NULL THEN 'pod' ELSE 'unknown' END"
    )
    return [
        f"{resolved} AS {s}_k",
        f"{_label_map(s + '_labels')} AS {s}_lm",
        f"{_label_map(s + '_ns_labels')} AS {s}_nm",
        f"{_uint(s + '_port', 65535)} AS {s}_pt",
    ]


def _values_sql(cols: str) -> str:
    values = [
        f"{_time('time_start')} AS ts",
        f"{_time('time_end')} AS te",
        f"{c('protocol')} AS p",
        f"{_protocol_sql(c('protocol'))} AS protocol",
        f"{_uint('icmp_type', 255)} AS icmp",
        f"lower(coalesce({c('verdict')}, 'unknown')) AS verdict_v",
        f"lower(coalesce({c('reporter')}, 'unknown')) AS reporter_v",
        f"{_bool('is_reply')} AS reply_flag",
        f"{_bool('is_policy_drop')} AS policy_drop_flag",
        f"{_strings('dst_names')} AS names_v",
        f"{_strings('policies')} AS policies_v",
        *_side_values("src"),
        *_side_values("dst"),
    ]
    return f"SELECT *, {', '.join(values)} FROM ({cols})"


def _invalid(name: str, ok: str) -> str:
    """``WHEN`` the present field ``name`` is not ``ok``: a reject naming it and its value."""
    shown = f"substr(regexp_replace({c(name)}, '[\\x00-\\x1f\\x7f]', '?', 'g'), 1, 80)"
    bad = f"{c(name)} IS NOT NULL AND NOT coalesce({ok}, false)"
    return f"WHEN {bad} THEN 'invalid {name}: ' || {shown} "


def _side_errors(s: str) -> str:
    kinds = ", ".join(lit(k) for k in KINDS)
    return (
        f"WHEN {s}_k NOT IN ({kinds}) THEN 'unknown {s}_kind ' || {s}_k "
        f"WHEN {s}_k = 'pod' AND {c(s + '_namespace')} IS NULL "
        f"THEN '{s}_kind pod without {s}_namespace' "
        f"WHEN {s}_k IN ('service', 'cluster_infra', 'unknown') AND {c(s + '_ip')} IS NULL "
        f"THEN '{s} has neither a namespace nor an ip' "
        + _invalid(s + "_labels", f"{s}_lm IS NOT NULL")
        + _invalid(s + "_ns_labels", f"{s}_nm IS NOT NULL")
        + _invalid(s + "_port", f"{s}_pt IS NOT NULL")
        + f"WHEN ({c(s + '_workload_kind')} IS NULL) <> ({c(s + '_workload_name')} IS NULL) "
        f"THEN '{s}_workload_kind and {s}_workload_name go together' "
    )


def record_error_sql() -> str:
    """Why a parsed record cannot be used (NULL when it can), most basic reason first."""
    verdicts = ", ".join(lit(v) for v in VERDICTS)
    ip = "'^[0-9a-fA-F.:]+$'"
    return (
        "CASE WHEN ts IS NULL THEN 'no valid time_start (RFC 3339 or UNIX seconds, years "
        "1-9999)' "
        + _invalid("time_end", "te IS NOT NULL AND te >= ts")
        + "WHEN protocol IS NULL THEN 'unknown protocol ' || coalesce(p, '(none)') "
        + _side_errors("src")
        + _side_errors("dst")
        + _invalid("src_ip", f"regexp_matches({c('src_ip')}, {ip})")
        + _invalid("dst_ip", f"regexp_matches({c('dst_ip')}, {ip})")
        + _invalid("icmp_type", "icmp IS NOT NULL")
        + f"WHEN verdict_v NOT IN ({verdicts}) THEN 'unknown verdict ' || verdict_v "
        "WHEN reporter_v NOT IN ('src', 'dst', 'both', 'unknown') "
        "THEN 'unknown reporter ' || reporter_v "
        + _invalid("is_reply", "reply_flag IS NOT NULL")
        + _invalid("is_policy_drop", "policy_drop_flag IS NOT NULL")
        + _invalid("dst_names", "names_v IS NOT NULL")
        + _invalid("policies", "policies_v IS NOT NULL")
        + "END"
    )


def _identity_e(s: str) -> str:
    """Hubble-endpoint JSON of a ``pod``/``host``/``world`` end; NULL: the address only."""
    ns = c(s + "_namespace")
    labels = (
        f"list_concat(['k8s:io.kubernetes.pod.namespace=' || {ns}], "
        f"{_prefixed(s + '_lm', 'k8s:')}, "
        f"{_prefixed(s + '_nm', 'k8s:io.cilium.k8s.namespace.labels.')}, "
        f"CASE WHEN {c(s + '_service_account')} IS NOT NULL THEN "
        f"['k8s:io.cilium.k8s.policy.serviceaccount=' || {c(s + '_service_account')}] "
        "ELSE []::VARCHAR[] END)"
    )
    wl = (
        f"CASE WHEN {c(s + '_workload_name')} IS NOT NULL THEN [{{'name': "
        f"{c(s + '_workload_name')}, 'kind': {c(s + '_workload_kind')}}}] ELSE [] END"
    )
    pod = (
        f"json_object('namespace', {ns}, 'pod_name', {c(s + '_pod')}, 'labels', {labels}, "
        f"'workloads', {wl}, 'cluster_name', {c(s + '_cluster')})"
    )
    return (
        f"CASE {s}_k WHEN 'pod' THEN {pod} "
        f"WHEN 'host' THEN json_object('labels', ['reserved:host'], "
        f"'cluster_name', {c(s + '_cluster')}) "
        "WHEN 'world' THEN json_object('labels', ['reserved:world']) END"
    )


def _end(s: str) -> str:
    dst = s == "dst"
    svc_ns = c("dst_service_namespace") if dst else "NULL"
    svc = c("dst_service_name") if dst else "NULL"
    names = "names_v" if dst else "[]::VARCHAR[]"
    return (
        f"{{'e': ({_identity_e(s)})::JSON, 'ip': {c(s + '_ip')}::VARCHAR, 'node': NULL::VARCHAR, "
        f"'names': {names}::VARCHAR[], 'service_namespace': ({svc_ns})::VARCHAR, "
        f"'service_name': ({svc})::VARCHAR}}"
    )


def _oriented_sql(rows: str, has_reply: str) -> str:
    """The oriented-packets columns of parsed ``rows`` (``line_kind`` and
    ``reject_detail`` decided). ``has_reply``: does the table have ``is_reply``?

    The table's ends are oriented (``src`` initiated) unless ``is_reply`` is
    empty in a table that has the column: then the port rule decides, and swaps
    the ends when the destination's port is the ephemeral one.
    """
    l4 = "protocol IN (" + ", ".join(lit(x) for x in PORT_PROTOCOLS) + ")"
    heur = ports_reply_sql("src_pt", "dst_pt")
    swap = f"coalesce({has_reply} AND reply_flag IS NULL AND {l4} AND {heur}, false)"

    ports = [f"CASE WHEN fl THEN {s}_pt::INTEGER END" for s in ("src", "dst")]

    def pick(name: str, a: str, b: str) -> list[str]:
        return [
            f"CASE WHEN sw THEN {b} ELSE {a} END AS src_{name}",
            f"CASE WHEN sw THEN {a} ELSE {b} END AS dst_{name}",
        ]

    return f"""
SELECT file_id, line_no, raw_ref, line_kind, reject_detail, 0::BIGINT AS lost,
       {lit(SOURCE_FORMAT)} AS source_format, rep, orientation,
       CASE WHEN fl THEN ts END AS time_start, CASE WHEN fl THEN {c("observer")} END AS observer,
       CASE WHEN fl THEN protocol END AS protocol, CASE WHEN fl THEN icmp::INTEGER END AS icmp_type,
       CASE WHEN NOT fl THEN NULL WHEN contains(coalesce({c("dst_ip")}, {c("src_ip")}), ':')
            THEN 6 WHEN coalesce({c("dst_ip")}, {c("src_ip")}) IS NOT NULL THEN 4 END AS ip_version,
       CASE WHEN fl THEN verdict_v END AS verdict, CASE WHEN fl THEN {c("drop_reason")} END
           AS drop_reason,
       fl AND coalesce(policy_drop_flag, {c("drop_reason")} IN ('POLICY_DENIED', 'POLICY_DENY'),
                       false) AS is_policy_drop,
       CASE WHEN fl THEN policies_v ELSE []::VARCHAR[] END AS policies,
       CASE WHEN fl THEN {c("observation_point")} END AS observation_point,
       NULL::INTEGER AS event_type,
       {", ".join(pick("ep", "a_ep", "b_ep") + pick("port", ports[0], ports[1]))},
       rep AS is_reply,
       CASE WHEN NOT fl THEN NULL WHEN sw AND reporter_v = 'src' THEN 'dst'
            WHEN sw AND reporter_v = 'dst' THEN 'src' ELSE reporter_v END AS reporter,
       CASE WHEN fl AND {l4} THEN CASE WHEN sw THEN src_pt ELSE dst_pt END::INTEGER END
           AS server_port,
       CASE WHEN fl THEN coalesce(te, ts) END AS time_end
FROM (SELECT *,
             CASE WHEN NOT fl THEN NULL WHEN NOT {has_reply} THEN false
                  WHEN reply_flag IS NOT NULL THEN reply_flag WHEN {l4} THEN {heur} END AS rep,
             CASE WHEN NOT fl THEN NULL
                  WHEN NOT {has_reply} OR reply_flag IS NOT NULL THEN 'record'
                  WHEN {l4} AND {heur} IS NOT NULL THEN 'inferred' ELSE 'unknown' END
                 AS orientation,
             {swap} AS sw,
             CASE WHEN fl THEN {_end("src")} END AS a_ep,
             CASE WHEN fl THEN {_end("dst")} END AS b_ep
      FROM (SELECT *, line_kind = 'flow' AS fl FROM {rows}))"""


def oriented_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """Oriented packets (:data:`recommender.flows.formats.PACKET_COLUMNS`) of FlowRecord CSV.

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
    parsed = _values_sql(columns_sql(csv_split_sql(lines)))
    problems = (
        f"coalesce({header_error_sql()}, CASE WHEN NOT csv_ok THEN 'not a CSV record (a quote "
        "opened and not closed, or text after a closing quote)' WHEN len(v) <> len(hdr) "
        "THEN len(v)::VARCHAR || ' fields, the header names ' || len(hdr)::VARCHAR END, "
        f"{record_error_sql()})"
    )
    rows = f"""
(SELECT *, CASE WHEN reject IS NOT NULL THEN 'reject' WHEN is_header THEN 'header'
                WHEN trim(t) = '' THEN 'blank' WHEN rr IS NOT NULL THEN 'reject' ELSE 'flow' END
               AS line_kind,
        coalesce(reject, rr) AS reject_detail
 FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
              CASE WHEN reject IS NULL AND NOT is_header AND trim(t) <> '' THEN {problems} END
                  AS rr
       FROM ({parsed})))"""
    return _oriented_sql(rows, "coalesce(list_contains(hdr, 'is_reply'), false)")


# ---------------------------------------------------------------------------
# Parquet: the same columns, typed.
# ---------------------------------------------------------------------------

#: Columns a table must have (and at least one of each pair).
REQUIRED: tuple[str, ...] = ("time_start", "protocol")
REQUIRED_ONE_OF: tuple[tuple[str, str], ...] = (
    ("src_ip", "src_namespace"),
    ("dst_ip", "dst_namespace"),
)


def table_error(columns: Sequence[str]) -> str | None:
    """Why ``columns`` (a Parquet file's) are not a FlowRecord table, or None.

    >>> table_error(["time_start", "protocol", "src_ip", "dst_ip"]) is None
    True
    >>> table_error(["time_start", "protocol", "src_ip", "dst_ip", "colour"])
    'column colour is not a FlowRecord column'
    """
    names = [n.lower() for n in columns]
    unknown = [n for n in names if n not in KNOWN_COLUMNS]
    if unknown:
        return f"column {unknown[0]} is not a FlowRecord column"
    missing = [n for n in REQUIRED if n not in names]
    missing += [f"{a} or {b}" for a, b in REQUIRED_ONE_OF if a not in names and b not in names]
    return f"no {missing[0]} column" if missing else None


def _as_text(col: str, type_name: str) -> str:
    """A typed Parquet column as the text the CSV path reads."""
    t = type_name.upper()
    if t.startswith(("MAP", "STRUCT")) or t.endswith("]"):
        return f"to_json({col})::VARCHAR"
    if t.startswith("TIMESTAMP WITH TIME ZONE"):
        return f"strftime({col} AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%S.%fZ')"
    if t.startswith("TIMESTAMP"):
        return f"strftime({col}::TIMESTAMP, '%Y-%m-%dT%H:%M:%S.%fZ')"
    if t in ("DOUBLE", "FLOAT", "REAL") or t.startswith("DECIMAL"):
        return (
            f"CASE WHEN {col} = trunc({col}) THEN {col}::HUGEINT::VARCHAR ELSE {col}::VARCHAR END"
        )
    return f"{col}::VARCHAR"


def parquet_rows_sql(rel: str, file_id: int, types: Sequence[tuple[str, str]]) -> str:
    """One row per record of one Parquet table ``rel`` (read with
    ``file_row_number``): ``file_id, line_no`` (the row, from 1), every known column
    as text. ``types``: ``(column, DuckDB type)`` of the file."""
    have = {n.lower(): (n, t) for n, t in types}
    cols = []
    for name in KNOWN_COLUMNS:
        if name in have:
            raw, t = have[name]
            cols.append(f"nullif({_as_text(chr(34) + raw + chr(34), t)}, '') AS {c(name)}")
        else:
            cols.append(f"NULL::VARCHAR AS {c(name)}")
    return (
        f"SELECT {file_id} AS file_id, file_row_number + 1 AS line_no, "
        f"NULL::VARCHAR AS reject, {', '.join(cols)} FROM {rel}"
    )


def parquet_packets_sql(rows: str, paths: Sequence[str], has_reply: Sequence[int]) -> str:
    """Oriented packets of :func:`parquet_rows_sql` rows (``UNION ALL`` of the files).

    ``has_reply``: the ``file_id`` of each table that has an ``is_reply`` column.
    """
    ids = ", ".join(map(str, has_reply)) or "NULL"
    parsed = f"""
(SELECT *, CASE WHEN rr IS NOT NULL THEN 'reject' ELSE 'flow' END AS line_kind,
        rr AS reject_detail
 FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
              {record_error_sql()} AS rr
       FROM ({_values_sql(rows)})))"""
    return _oriented_sql(parsed, f"file_id IN ({ids})")
