"""Parquet written by ``netpol convert``: Hubble lines parsed once, aggregated many times.

A converted file holds one row per input line, exactly as the aggregation reads
it: the oriented packet of :func:`recommender.flows.hubble.oriented_packets_sql`
(line kind, reject reason, verdict, ports, both raw ends …) with the JSON file it
came from (``path``, dictionary-encoded) and the line number, so ``file:line``
references and every statistic (rejects, non-flow lines, lost events) survive the
conversion. Reading it back skips the JSON parsing, which is most of the cost of
an aggregation. Both engines write and read the same layout.

The layout follows the SQL of this version; a file whose columns differ is
refused with one clear line rather than misread.
"""

from __future__ import annotations

from collections.abc import Sequence

from recommender.errors import InputError
from recommender.flows.hubble import paths_literal

#: Columns of a converted file, in order (the packet columns, then where it came from).
PACKET_COLUMNS: tuple[str, ...] = (
    "line_kind",
    "reject_detail",
    "lost",
    "source_format",
    "rep",
    "orientation",
    "time_start",
    "observer",
    "protocol",
    "icmp_type",
    "ip_version",
    "verdict",
    "drop_reason",
    "is_policy_drop",
    "policies",
    "observation_point",
    "event_type",
    "src_ep",
    "dst_ep",
    "src_port",
    "dst_port",
    "is_reply",
    "reporter",
    "server_port",
    "time_end",
)
FILE_COLUMNS: tuple[str, ...] = (*PACKET_COLUMNS, "file_id", "line_no", "path")
PARQUET_SUFFIXES = (".parquet", ".parq")


def is_parquet_input(path: str) -> bool:
    """A converted file (``*.parquet``) or a directory of them (Spark's output)."""
    return path.rstrip("/").lower().endswith(PARQUET_SUFFIXES)


def split_inputs(paths: Sequence[str]) -> bool:
    """True when every input is Parquet, False when none is.

    Raises
    ------
    InputError
        Parquet and JSON inputs mixed in one run.
    """
    kinds = {is_parquet_input(p) for p in paths}
    if len(kinds) > 1:
        raise InputError(
            None,
            "Parquet and JSON flow inputs cannot be mixed in one run",
            hint="convert the JSON files too (netpol convert --to parquet)",
        )
    return kinds == {True}


def to_parquet_sql(packets: str, paths: Sequence[str]) -> str:
    """The rows to write: ``packets`` (oriented packets over ``paths``) in input order."""
    cols = ", ".join(PACKET_COLUMNS)
    return (
        f"SELECT {cols}, file_id, line_no, {paths_literal(paths)}[file_id + 1] AS path "
        f"FROM {packets} ORDER BY file_id, line_no"
    )


def files_sql(relation: str) -> str:
    """The distinct original files of ``relation`` (rows with ``input_no``)."""
    return f"SELECT DISTINCT input_no, file_id, path FROM {relation}"


def numbered_files(rows: Sequence[tuple[int, int, str]]) -> list[tuple[int, int, int, str]]:
    """``(input_no, file_id, new_file_id, path)``: one number per original file over
    every Parquet input, in input order.

    >>> numbered_files([(1, 0, "b.json"), (0, 1, "a2.json"), (0, 0, "a.json")])
    [(0, 0, 0, 'a.json'), (0, 1, 1, 'a2.json'), (1, 0, 2, 'b.json')]
    """
    ordered = sorted((int(i), int(f), str(p)) for i, f, p in rows)
    return [(i, f, n, p) for n, (i, f, p) in enumerate(ordered)]


def packets_sql(relation: str, files: str) -> str:
    """Oriented packets again (``oriented_packets_sql`` columns) from converted rows.

    ``relation`` has :data:`FILE_COLUMNS` plus ``input_no``; ``files`` is the
    :func:`numbered_files` relation ``(input_no, file_id, new_file_id, path)``.
    """
    cols = ", ".join(f"p.{c}" for c in PACKET_COLUMNS)
    return (
        f"SELECT m.new_file_id AS file_id, p.line_no, m.path || ':' || p.line_no AS raw_ref, "
        f"{cols} FROM {relation} p JOIN {files} m "
        f"ON m.input_no = p.input_no AND m.file_id = p.file_id"
    )


def check_columns(path: str, columns: Sequence[str]) -> None:
    """Refuse a Parquet file that is not ``netpol convert`` output of this version."""
    if tuple(columns) != FILE_COLUMNS:
        from recommender.flows.flowrecord import table_error  # it imports nothing of this

        why = table_error(columns)
        if why is None:  # only the embedded engine reads FlowRecord tables
            raise InputError(
                path,
                "the Spark engine does not read FlowRecord Parquet tables yet",
                hint="use --engine embedded (the default) for this input",
            )
        raise InputError(
            path,
            "not a Parquet file written by this version of `netpol convert` (columns differ), "
            f"nor a FlowRecord table ({why})",
            hint="convert the flow logs again (netpol convert --to parquet), or see "
            "docs/formats.md for the FlowRecord columns",
        )
