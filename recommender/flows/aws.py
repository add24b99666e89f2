"""AWS VPC Flow Logs (space-separated text) -> oriented packets, as one SQL query.

FORMATS.md 2.5. A file either starts with a header line naming its fields
(S3 text delivery; a ``${field}`` format string works too) or has none: then a
line of 14 fields is the default v2 format and a line of 29 fields all v2-v5
fields in the AWS field-table order (the order of :data:`ALL_FIELDS`); any
other count is a reject that asks for the header line. ``-`` means no value.

* ``pkt-srcaddr``/``pkt-dstaddr`` win over ``srcaddr``/``dstaddr``: on EKS
  with the VPC CNI the latter are the node's primary IP, the former the pod's.
* ``NODATA``/``SKIPDATA`` records are counted as such (line kinds ``nodata``,
  ``skipdata``), never read as flows.
* ``action`` is the security group / NACL decision, not a NetworkPolicy one:
  ``REJECT`` is ``denied`` with drop reason ``REJECT``, never a policy drop.
* ``flow-direction`` (v5) says which end's ENI logged the record (``reporter``).
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.flows.hubble import paths_literal
from recommender.flows.hubble_sql import DUCKDB, Dialect, lit
from recommender.flows.vpc import endpoint_sql, flags_reply_sql, oriented_sql, protocol_name_sql

SOURCE_FORMAT = "aws_vpc"
#: The default format (version 2).
V2_FIELDS: tuple[str, ...] = tuple(
    [
        "version",
        "account-id",
        "interface-id",
        "srcaddr",
        "dstaddr",
        "srcport",
        "dstport",
        "protocol",
        "packets",
        "bytes",
        "start",
        "end",
        "action",
        "log-status",
    ]
)
#: Every v2-v5 field, in the AWS field-table order (elastic's all-fields fixture).
ALL_FIELDS: tuple[str, ...] = V2_FIELDS + tuple(
    [
        "vpc-id",
        "subnet-id",
        "instance-id",
        "tcp-flags",
        "type",
        "pkt-srcaddr",
        "pkt-dstaddr",
        "region",
        "az-id",
        "sublocation-type",
        "sublocation-id",
        "pkt-src-aws-service",
        "pkt-dst-aws-service",
        "flow-direction",
        "traffic-path",
    ]
)
LOG_STATUSES = ("OK", "NODATA", "SKIPDATA")
ACTIONS = ("ACCEPT", "REJECT")
#: Numbers checked per line: (field, largest value). 253402300799 = 9999-12-31T23:59:59Z.
_NUMBERS: tuple[tuple[str, int], ...] = (
    ("srcport", 65535),
    ("dstport", 65535),
    ("protocol", 255),
    ("packets", 2**62),
    ("bytes", 2**62),
    ("start", 253402300799),
    ("end", 253402300799),
    ("tcp-flags", 255),
)


def _list(fields: Sequence[str]) -> str:
    return "[" + ", ".join(lit(f) for f in fields) + "]::VARCHAR[]"


#: The fields the reader uses, each extracted once per line into a column.
USED_FIELDS: tuple[str, ...] = (
    "interface-id",
    "srcaddr",
    "dstaddr",
    "pkt-srcaddr",
    "pkt-dstaddr",
    "srcport",
    "dstport",
    "protocol",
    "packets",
    "bytes",
    "start",
    "end",
    "action",
    "log-status",
    "tcp-flags",
    "type",
    "flow-direction",
)


def field_sql(name: str) -> str:
    """The column holding field ``name`` of the line (NULL when absent or ``-``)."""
    return f'"f:{name}"'


def _uint(name: str) -> str:
    return f'"n:{name}"'


def _fields_sql(split: str) -> str:
    """Each used field as a column, and each number field cast once."""
    fields = ", ".join(
        f"nullif(v[list_position(hdr, {lit(n)})], '-') AS {field_sql(n)}" for n in USED_FIELDS
    )
    numbers = ", ".join(f"try_cast({field_sql(n)} AS BIGINT) AS {_uint(n)}" for n, _ in _NUMBERS)
    return f"SELECT *, {numbers} FROM (SELECT *, {fields} FROM ({split}))"


def _split_sql() -> str:
    """Stage 1: tokens ``v``, header detection and the file's field list ``hdr``."""
    header = (
        "reject IS NULL AND line_no = 1 AND NOT regexp_matches(text, '^\\s*[0-9-]') "
        "AND contains(text, 'addr')"
    )
    return f"""
SELECT *, CASE WHEN hdr_text IS NOT NULL THEN string_split_regex(hdr_text, '\\s+')
               WHEN len(v) = {len(V2_FIELDS)} THEN {_list(V2_FIELDS)}
               WHEN len(v) = {len(ALL_FIELDS)} THEN {_list(ALL_FIELDS)} END AS hdr
FROM (SELECT *, max(CASE WHEN is_header THEN trim(regexp_replace(text, '\\$\\{{|\\}}', '', 'g'))
                    END) OVER (PARTITION BY file_id) AS hdr_text
      FROM (SELECT *, {header} AS is_header, string_split_regex(trim(text), '\\s+') AS v
            FROM {{lines}}))"""


def _number_errors() -> str:
    checks = []
    for name, top in _NUMBERS:
        value = field_sql(name)
        n = _uint(name)
        ok = f"coalesce({n} BETWEEN 0 AND {top} AND {n}::VARCHAR = {value}, false)"
        checks.append(f"WHEN {value} IS NOT NULL AND NOT {ok} THEN 'invalid {name}: ' || {value}")
    return " ".join(checks)


def reject_sql() -> str:
    """Why a data line cannot be read (NULL when it can), most basic reason first."""
    src, dst = _addr("src"), _addr("dst")
    status, action = field_sql("log-status"), field_sql("action")
    return (
        f"CASE WHEN hdr IS NULL THEN len(v)::VARCHAR || ' fields and no header line: not the "
        f"default format ({len(V2_FIELDS)} fields) nor all v2-v5 fields ({len(ALL_FIELDS)}); "
        "put the format''s field list on the first line' "
        "WHEN len(v) <> len(hdr) THEN len(v)::VARCHAR || ' fields, the header names ' "
        "|| len(hdr)::VARCHAR "
        f"WHEN {status} IS NOT NULL AND {status} NOT IN ({_in(LOG_STATUSES)}) "
        f"THEN 'unknown log-status ' || {status} "
        f"WHEN {status} IN ('NODATA', 'SKIPDATA') THEN NULL "
        f"WHEN {action} IS NOT NULL AND {action} NOT IN ({_in(ACTIONS)}) "
        f"THEN 'unknown action ' || {action} "
        f"WHEN {src} IS NULL THEN 'no srcaddr' WHEN {dst} IS NULL THEN 'no dstaddr' "
        f"WHEN {field_sql('protocol')} IS NULL THEN 'no protocol' "
        # A custom format may leave the times out (records without time); a named but empty
        # start is damage.
        f"WHEN list_position(hdr, 'start') IS NOT NULL AND {field_sql('start')} IS NULL "
        "THEN 'no start time' "
        f"{_number_errors()} END"
    )


def _in(values: Sequence[str]) -> str:
    return ", ".join(lit(v) for v in values)


def _addr(side: str) -> str:
    """The packet's own address: ``pkt-*`` when logged, else the interface's."""
    return f"coalesce({field_sql(f'pkt-{side}addr')}, {field_sql(f'{side}addr')})"


def _kind_sql() -> str:
    status = field_sql("log-status")
    return (
        "CASE WHEN reject IS NOT NULL THEN 'reject' WHEN is_header THEN 'header' "
        "WHEN trim(text) = '' THEN 'blank' WHEN rr IS NOT NULL THEN 'reject' "
        f"WHEN {status} = 'NODATA' THEN 'nodata' WHEN {status} = 'SKIPDATA' THEN 'skipdata' "
        "ELSE 'flow' END"
    )


def _time(name: str) -> str:
    return f"make_timestamp({_uint(name)} * 1000000)"


def _columns() -> list[str]:
    flow = "line_kind = 'flow'"
    src, dst, kind = _addr("src"), _addr("dst"), field_sql("type")
    direction = field_sql("flow-direction")
    return [
        "file_id",
        "line_no",
        "raw_ref",
        "line_kind",
        "CASE WHEN line_kind = 'reject' THEN coalesce(reject, rr) END AS reject_detail",
        f"{lit(SOURCE_FORMAT)} AS source_format",
        f"CASE WHEN {flow} THEN {_time('start')} END AS time_start",
        f"CASE WHEN {flow} THEN coalesce({_time('end')}, {_time('start')}) END AS time_end",
        f"CASE WHEN {flow} THEN {field_sql('interface-id')} END AS observer",
        f"CASE WHEN {flow} THEN {protocol_name_sql(_uint('protocol'))} END AS protocol",
        f"CASE WHEN NOT {flow} THEN NULL WHEN {kind} = 'IPv6' OR contains({src}, ':') THEN 6 "
        "ELSE 4 END AS ip_version",
        f"CASE WHEN NOT {flow} THEN NULL WHEN {field_sql('action')} = 'REJECT' THEN 'denied' "
        f"WHEN {field_sql('action')} = 'ACCEPT' THEN 'allowed' ELSE 'unknown' END AS verdict",
        f"CASE WHEN {flow} AND {field_sql('action')} = 'REJECT' THEN 'REJECT' END AS drop_reason",
        f"CASE WHEN {flow} THEN {endpoint_sql('NULL', src)} END AS a_ep",
        f"CASE WHEN {flow} THEN {endpoint_sql('NULL', dst)} END AS b_ep",
        f"CASE WHEN {flow} THEN {_uint('srcport')}::INTEGER END AS a_port",
        f"CASE WHEN {flow} THEN {_uint('dstport')}::INTEGER END AS b_port",
        f"CASE WHEN {flow} AND {_uint('protocol')} = 6 THEN "
        f"{flags_reply_sql(_uint('tcp-flags'))} END AS flag_rep",
        f"CASE {direction} WHEN 'egress' THEN 'a' WHEN 'ingress' THEN 'b' END AS logged_at",
    ]


def rows_sql(lines: str, paths: Sequence[str]) -> str:
    """Stage 2: one row per line, the columns :func:`recommender.flows.vpc.oriented_sql` reads."""
    split = _split_sql().replace("{lines}", lines)
    return f"""
SELECT {", ".join(_columns())}
FROM (SELECT *, {_kind_sql()} AS line_kind
      FROM (SELECT *, {paths_literal(paths)}[file_id + 1] || ':' || line_no AS raw_ref,
                   CASE WHEN reject IS NULL AND NOT is_header AND trim(text) <> ''
                        THEN {reject_sql()} END AS rr
            FROM ({_fields_sql(split)})))"""


def oriented_packets_sql(lines: str, paths: Sequence[str], dialect: Dialect = DUCKDB) -> str:
    """One row per line of AWS VPC flow logs, oriented client -> server, ends IP-only.

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
