"""The flow formats netpol reads, and the per-file dispatch between them.

Every reader turns the line relation of :mod:`recommender.flows.sources`
(``file_id, line_no, text, reject``) into the same *oriented packets*
relation as :func:`recommender.flows.hubble.oriented_packets_sql` (the columns
in :data:`PACKET_COLUMNS`). A run may mix formats: each file gets its format
(``--format NAME`` for all, else sniffed from its head), and the relation is
the ``UNION ALL`` of one reader per format over that format's files.

To add a format, write ``recommender/flows/<name>.py`` with an
``oriented_packets_sql(lines, paths, dialect)`` and add one :class:`FlowFormat`
line to :data:`FORMATS` (before ``hubble``, whose sniff test is the loosest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from recommender.errors import InputError
from recommender.flows import hubble, sniff
from recommender.flows.hubble_sql import DUCKDB, Dialect

#: ``oriented_packets_sql(lines, paths, dialect)``: the SQL of a reader.
PacketsSql = Callable[[str, Sequence[str], Dialect], str]

#: The oriented-packets columns, in the order every reader's relation is unioned in.
PACKET_COLUMNS = (
    "file_id, line_no, raw_ref, line_kind, reject_detail, lost, source_format, rep, "
    "orientation, time_start, observer, protocol, icmp_type, ip_version, verdict, "
    "drop_reason, is_policy_drop, policies, observation_point, event_type, "
    "src_ep, dst_ep, src_port, dst_port, is_reply, reporter, server_port, time_end"
)


@dataclass(frozen=True)
class FlowFormat:
    """One readable flow format.

    Attributes
    ----------
    name
        The ``--format`` name.
    sniff
        True when a file's head (decoded text) is in this format.
    packets
        The reader: oriented packets of a line relation.
    spark
        Whether the Spark engine reads it (its SQL translates to Spark SQL).
    """

    name: str
    sniff: Callable[[str], bool]
    packets: PacketsSql
    spark: bool = False


def _formats() -> tuple[FlowFormat, ...]:
    """The table, built lazily so that reader modules may import this one."""
    # None of the readers imports this module at import time.
    from recommender.flows import antrea, aws, calico, flowrecord, gadget, gcp

    # One line per format; the specific formats first (hubble's test is the loosest).
    return (
        FlowFormat(aws.SOURCE_FORMAT, sniff.is_aws, aws.oriented_packets_sql),
        FlowFormat(gcp.SOURCE_FORMAT, sniff.is_gcp, gcp.oriented_packets_sql),
        FlowFormat("calico", sniff.is_calico, calico.oriented_packets_sql),
        FlowFormat(
            flowrecord.SOURCE_FORMAT, sniff.is_flowrecord_csv, flowrecord.oriented_packets_sql
        ),
        FlowFormat(antrea.JSON_FORMAT, sniff.is_antrea_json, antrea.json_packets_sql),
        FlowFormat(antrea.CSV_FORMAT, sniff.is_antrea_csv, antrea.csv_packets_sql),
        FlowFormat(gadget.SOURCE_FORMAT, sniff.is_inspektor_gadget, gadget.oriented_packets_sql),
        FlowFormat("hubble", sniff.is_hubble, hubble.oriented_packets_sql, spark=True),
    )


#: The default for a file nothing recognises (its lines are rejected one by one,
#: and :mod:`recommender.flows.sniff` names a foreign format in the message).
DEFAULT_FORMAT = "hubble"


def names() -> list[str]:
    """The ``--format`` choices."""
    return [f.name for f in _formats()]


def by_name(name: str) -> FlowFormat:
    """The format called ``name``.

    Raises
    ------
    InputError
        An unknown name (the message lists the known ones).
    """
    for fmt in _formats():
        if fmt.name == name:
            return fmt
    raise InputError(None, f"unknown flow format {name!r}", hint="choose " + ", ".join(names()))


def detect(head: bytes | None) -> FlowFormat:
    """The format of a file from its first bytes (:data:`DEFAULT_FORMAT` when unknown)."""
    text = sniff.head_text(head) if head is not None else ""
    if not isinstance(text, sniff.BadHead):
        for fmt in _formats():
            if fmt.sniff(text):
                return fmt
    return by_name(DEFAULT_FORMAT)


def assign(paths: Sequence[str], chosen: str | None = None) -> list[FlowFormat]:
    """The format of each input file: ``chosen`` for all, else sniffed (stdin: Hubble)."""
    if chosen is not None:
        fmt = by_name(chosen)
        return [fmt for _ in paths]
    return [detect(sniff.read_head(p)) for p in paths]


def packets_sql(
    lines: str, paths: Sequence[str], formats: Sequence[FlowFormat], dialect: Dialect = DUCKDB
) -> str:
    """The oriented packets of ``lines``, each file (``file_id`` into ``paths``) read
    by its format in ``formats``: one reader, or a ``UNION ALL`` of one per format."""
    groups: dict[str, tuple[FlowFormat, list[int]]] = {}
    for file_id, fmt in enumerate(formats):
        groups.setdefault(fmt.name, (fmt, []))[1].append(file_id)
    if len(groups) <= 1:
        fmt = formats[0] if formats else by_name(DEFAULT_FORMAT)
        return fmt.packets(lines, paths, dialect)
    # ``lines`` is a stream that can be scanned once (an Arrow RecordBatchReader):
    # each reader of the union scans it, so it is materialized once for all of them.
    shared = "netpol_mixed_lines"
    parts = []
    for fmt, ids in groups.values():
        mine = f"(SELECT * FROM {shared} WHERE file_id IN ({', '.join(map(str, ids))}))"
        parts.append(f"SELECT {PACKET_COLUMNS} FROM ({fmt.packets(mine, paths, dialect)})")
    union = "\nUNION ALL\n".join(parts)
    return f"WITH {shared} AS MATERIALIZED (SELECT * FROM {lines})\n{union}"


def require_spark(paths: Sequence[str], formats: Sequence[FlowFormat]) -> None:
    """Refuse (exit 2) a file whose format the Spark engine does not read yet.

    Raises
    ------
    InputError
        Naming the first such file and its format.
    """
    for path, fmt in zip(paths, formats, strict=True):
        if not fmt.spark:
            raise InputError(
                path,
                f"the Spark engine does not read the {fmt.name} format yet",
                hint="use --engine embedded (the default) for this input",
            )


def packets_for(lines: str, paths: Sequence[str], chosen: str | None = None) -> str:
    """:func:`packets_sql` with each file's format from :func:`assign` (the engines' entry)."""
    return packets_sql(lines, paths, assign(paths, chosen))
