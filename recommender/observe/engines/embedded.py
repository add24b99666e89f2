"""The embedded engine: DuckDB over Arrow line batches, bounded memory.

Lines stream from :mod:`recommender.flows.sources` into DuckDB as Arrow
batches; parsing, normalization (:mod:`recommender.flows.hubble_sql`),
inventory resolution (:mod:`recommender.semantics.resolve`) and aggregation
(:mod:`recommender.observe.engines.aggregate`) run as SQL. DuckDB gets a ``memory_limit`` and a
private temp directory, so big inputs spill to disk instead of growing RSS.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import duckdb
import pandas as pd
import pyarrow as pa

from recommender.errors import InputError
from recommender.flows import flowrecord, formats, parquet
from recommender.flows.hubble import distinct_ends_sql, records_of_ends_sql
from recommender.flows.hubble_sql import lit
from recommender.flows.sources import (
    LINE_SCHEMA,
    FlowSource,
    expand_paths,
    iter_line_batches,
    prefetched,
)
from recommender.inventory.ip_attribution import (
    IP_ONLY_FORMATS,
    attributed_packets_sql,
    build_ip_spans,
    span_rows,
)
from recommender.model import FLOW_COLUMNS, Inventory
from recommender.observe.engines.aggregate import (
    STAGE_CONNECTIONS,
    STAGE_KEYED,
    STAGE_LEVEL1,
    STAGE_NAMES,
    STAGE_OBSERVERS,
    aggregation_stages,
    finish,
)
from recommender.observe.engines.base import (
    AggregationEngine,
    FlowTable,
    IngestResult,
    IngestStats,
)
from recommender.observe.engines.common import (
    StatsAccumulator,
    arrow_to_pandas,
    flow_table_sql,
    raise_first_reject,
    strict_from_sample,
)
from recommender.policy_io.atomic import check_writable
from recommender.semantics.resolve import (
    IP_INDEX_COLUMNS,
    IpEntry,
    build_ip_index,
    build_pod_index,
    resolved_sql,
)

DEFAULT_MEMORY_LIMIT = os.environ.get("NETPOL_DUCKDB_MEMORY_LIMIT", "512MB")


class EmbeddedEngine(AggregationEngine):
    """DuckDB engine. ``threads`` None = DuckDB's default (all cores)."""

    name = "embedded"

    def __init__(
        self,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        threads: int | None = None,
        temp_directory: str | None = None,
    ) -> None:
        self.memory_limit = memory_limit
        self.threads = threads
        self.temp_directory = temp_directory

    # -- public API -------------------------------------------------------------

    def aggregate(
        self,
        paths: Sequence[str],
        inventory: Inventory | None = None,
        *,
        strict: bool = False,
        bucket: str | None = None,
    ) -> IngestResult:
        sources = expand_paths(paths)
        with self._connection() as con:
            packets, sources, errors = self._packets(con, sources)
            resolve = None
            if inventory is not None:
                _register_inventory(con, inventory)
                packets = self._attributed(packets, sources)

                def resolve(rel: str) -> str:
                    return resolved_sql(rel, ("x",), "inv_ip", "inv_pod")

            # Results are sorted in finish(): no need to keep insertion order (less memory).
            con.execute("SET preserve_insertion_order = false")
            stages, final = aggregation_stages(packets, resolve, bucket)
            table = _run_stages(con, stages, final)
            observers = dict(con.execute(f"SELECT * FROM {STAGE_OBSERVERS}").fetchall())
            if errors:
                raise errors[0]
        groups = arrow_to_pandas(table)  # after DuckDB closed: its buffers are gone
        del table
        observations, stats = finish(
            groups, bucket is not None, [s.path for s in sources], observers
        )
        if strict and stats.reject_samples:
            raise strict_from_sample(stats.reject_samples[0], sources)
        return IngestResult(observations, stats)

    def read_flows(
        self, paths: Sequence[str], inventory: Inventory | None = None, *, strict: bool = False
    ) -> FlowTable:
        sources = expand_paths(paths)
        box: list[IngestStats] = []
        return FlowTable(self._flow_batches(sources, inventory, strict, box), box)

    # -- internals ----------------------------------------------------------------

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        tmp = tempfile.mkdtemp(prefix="netpol-duckdb-", dir=self.temp_directory)
        con = duckdb.connect(config={"memory_limit": self.memory_limit, "temp_directory": tmp})
        try:
            with contextlib.suppress(duckdb.InvalidInputException):
                # Never draw on the user's terminal. Inside Jupyter without ipywidgets
                # DuckDB refuses the setting (and draws no bar either).
                con.execute("SET enable_progress_bar = false")
            if self.threads:
                con.execute(f"SET threads = {int(self.threads)}")
            yield con
        finally:
            con.close()
            shutil.rmtree(tmp, ignore_errors=True)

    def _register_lines(
        self, con: duckdb.DuckDBPyConnection, sources: list[FlowSource]
    ) -> list[InputError]:
        errors: list[InputError] = []

        def batches() -> Iterator[pa.RecordBatch]:
            for source in sources:
                try:
                    yield from iter_line_batches(source)
                except InputError as exc:  # e.g. deleted after expansion
                    errors.append(exc)
                    return

        reader = pa.RecordBatchReader.from_batches(LINE_SCHEMA, prefetched(batches()))
        con.register("lines", reader)
        return errors

    def convert(self, paths: Sequence[str], out: str, *, force: bool = False) -> dict[str, int]:
        """Write the Hubble JSON ``paths`` as one Parquet file ``out`` (atomically);
        see :mod:`recommender.flows.parquet`. Returns the lines written by kind."""
        if parquet.split_inputs(paths):
            raise InputError(None, "the inputs are Parquet already")
        sources = expand_paths(paths)
        target = check_writable(out, force)
        tmp = target.with_name(f".{target.name}.tmp")
        with self._connection() as con:
            errors = self._register_lines(con, sources)
            shown = [s.path for s in sources]
            packets = formats.packets_for("lines", shown, self.flow_format)
            sql = parquet.to_parquet_sql(f"({packets})", shown)
            try:
                con.execute(f"COPY ({sql}) TO {lit(str(tmp))} (FORMAT parquet, COMPRESSION zstd)")
                if errors:
                    raise errors[0]
                counts = con.execute(
                    f"SELECT line_kind, count(*) FROM read_parquet({lit(str(tmp))}) GROUP BY 1"
                ).fetchall()
                os.replace(tmp, target)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        return {str(k): int(n) for k, n in counts}

    def _packets(
        self, con: duckdb.DuckDBPyConnection, sources: list[FlowSource]
    ) -> tuple[str, list[FlowSource], list[InputError]]:
        """The oriented-packets relation over ``sources`` (JSON lines or converted
        Parquet), the original files by ``file_id``, and read errors to raise at the end."""
        if not parquet.split_inputs([s.path for s in sources]):
            errors = self._register_lines(con, sources)
            packets = formats.packets_for("lines", [s.path for s in sources], self.flow_format)
            return f"({packets})", sources, errors
        described = [(source, *_describe_parquet(con, source.path)) for source in sources]
        tables = [
            flowrecord.table_error([n for n, _ in types]) is None for _, _, types in described
        ]
        if any(tables):
            return _flowrecord_packets(con, described, tables)
        reads = []
        for n, (source, rel, types) in enumerate(described):
            parquet.check_columns(source.path, [name for name, _ in types])
            reads.append(f"SELECT *, {n} AS input_no FROM {rel}")
        con.execute(f"CREATE TEMP VIEW pq_raw AS {' UNION ALL '.join(reads)}")
        files = parquet.numbered_files(con.execute(parquet.files_sql("pq_raw")).fetchall())
        table = pa.table(
            {
                "input_no": pa.array([f[0] for f in files], pa.int32()),
                "file_id": pa.array([f[1] for f in files], pa.int32()),
                "new_file_id": pa.array([f[2] for f in files], pa.int32()),
                "path": pa.array([f[3] for f in files], pa.string()),
            }
        )
        con.register("pq_files", table)
        shown = [FlowSource(f[3], f[2]) for f in files]
        return f"({parquet.packets_sql('pq_raw', 'pq_files')})", shown, []

    def _attributed(self, packets: str, sources: list[FlowSource] | None) -> str:
        """``packets`` with IP-only (VPC) ends attributed by IP and time; unchanged (no
        join, no cost) when no input file is in such a format."""
        if sources is not None and not parquet.split_inputs([s.path for s in sources]):
            names = {f.name for f in formats.assign([s.path for s in sources], self.flow_format)}
            if not names & set(IP_ONLY_FORMATS):
                return packets
        return f"({attributed_packets_sql(packets, 'inv_span')})"

    def _store_records(
        self,
        con: duckdb.DuckDBPyConnection,
        packets: str,
        sources: list[FlowSource],
        inventory: Inventory | None,
    ) -> None:
        """The FlowRecord rows of ``packets`` into the temp table ``netpol_records``.

        Each end is normalized (and resolved against ``inventory``) once per distinct raw
        end, not per record: an end's FlowRecord fields are a function of its raw struct
        alone (``hubble.endpoint_input_sql``), so the rows equal those of the per-record
        ``records_of_packets_sql`` (+ ``resolved_sql``), column for column. On 200k flows
        of large:2000 there are ~60k distinct ends for 345k record ends; normalizing per
        record was 12.7 s of a 16 s store.

        The packets are stored by one thread: parsing on every thread ran out of DuckDB's
        memory limit on those 200k flows (22k pods; each thread pins its own buffers of
        parsed lines). Stored, the tables spill to the temp directory; the joins, window
        and sort that follow run on every thread.
        """
        if inventory is not None:
            _register_inventory(con, inventory)
            packets = self._attributed(packets, sources)
        con.execute("SET preserve_insertion_order = false")  # flow_table_sql sorts
        con.execute("SET threads = 1")
        con.execute(f"CREATE TEMP TABLE netpol_packets AS {packets}")
        if self.threads:
            con.execute(f"SET threads = {int(self.threads)}")
        else:
            con.execute("RESET threads")
        ends = distinct_ends_sql("netpol_packets")
        if inventory is not None:
            ends = resolved_sql(ends, ("x",), "inv_ip", "inv_pod")
        con.execute(f"CREATE TEMP TABLE netpol_ends AS {ends}")
        fields = [r[0] for r in con.execute("DESCRIBE netpol_ends").fetchall() if r[0] != "ep"]
        con.execute(
            "CREATE TEMP TABLE netpol_records AS "
            + records_of_ends_sql("netpol_packets", "netpol_ends", fields)
        )
        con.execute("DROP TABLE netpol_packets")
        con.execute("DROP TABLE netpol_ends")

    def _flow_batches(
        self,
        sources: list[FlowSource],
        inventory: Inventory | None,
        strict: bool,
        box: list[IngestStats],
    ) -> Iterator[pd.DataFrame]:
        acc = StatsAccumulator()
        with self._connection() as con:
            packets, sources, errors = self._packets(con, sources)
            self._store_records(con, packets, sources, inventory)
            reader = con.sql(flow_table_sql("SELECT * FROM netpol_records")).to_arrow_reader(65536)
            for batch in reader:
                frame = batch.to_pandas()
                if strict:
                    raise_first_reject(frame, sources)
                acc.add(frame)
                flows = frame[frame["line_kind"] == "flow"]
                if len(flows):
                    yield flows[list(FLOW_COLUMNS)].reset_index(drop=True)
            if errors:
                raise errors[0]
        box.append(acc.result())


def _run_stages(
    con: duckdb.DuckDBPyConnection, stages: Sequence[tuple[str, str]], final: str
) -> pa.Table:
    """Each stage into a temp table, which spills to the temp directory (materialized
    CTEs could not, and ran out of memory at 10M flows); then the final SELECT."""
    for name, sql in stages:
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        for done in _DROP_AFTER.get(name, ()):
            con.execute(f"DROP TABLE {done}")
    return _fetch_small(con, final)


#: Stage tables no longer needed once a stage is stored (their space is given back).
_DROP_AFTER = {
    STAGE_CONNECTIONS: (STAGE_LEVEL1,),
    STAGE_KEYED: (STAGE_CONNECTIONS,),
    STAGE_NAMES: (STAGE_KEYED,),
}


#: DuckDB's memory limit while the (small) result is converted to pandas.
_FETCH_MEMORY_LIMIT = "64MB"


def _fetch_small(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Run ``sql`` into a temp table, let DuckDB give its working memory back, then
    fetch it as Arrow (compact: no Python string per value)."""
    con.execute("SET preserve_insertion_order = true")  # the result comes ordered
    con.execute(f"CREATE TEMP TABLE netpol_result AS {sql}")
    con.execute(f"SET memory_limit = '{_FETCH_MEMORY_LIMIT}'")
    # large_string is what pandas' ``str`` columns hold: converted without a copy.
    con.execute("SET arrow_large_buffer_size = true")
    return con.sql("SELECT * FROM netpol_result").to_arrow_table()


def _register_inventory(con: duckdb.DuckDBPyConnection, inventory: Inventory) -> None:
    _register_index(con, "inv_ip", build_ip_index(inventory))
    _register_index(con, "inv_pod", build_pod_index(inventory))
    # Pod IPs with their validity in time, for IP-only (VPC) ends.
    spans = span_rows(build_ip_spans(inventory))
    types = {"valid_from": pa.timestamp("us"), "valid_to": pa.timestamp("us"), "live": pa.bool_()}
    con.register(
        "inv_span", pa.table({c: pa.array(v, types.get(c, pa.string())) for c, v in spans.items()})
    )


def _register_index(con: duckdb.DuckDBPyConnection, name: str, rows: Sequence[IpEntry]) -> None:
    data = {c: [getattr(r, c) for r in rows] for c in IP_INDEX_COLUMNS}
    table = pa.table({c: pa.array(v, pa.string()) for c, v in data.items()})
    con.register(name, table)


def _describe_parquet(
    con: duckdb.DuckDBPyConnection, path: str
) -> tuple[str, list[tuple[str, str]]]:
    """``read_parquet`` of one input (a file, or Spark's directory of part files) and
    its ``(column, type)`` list.

    Raises
    ------
    InputError
        Not readable as Parquet.
    """
    where = os.path.join(path, "*.parquet") if os.path.isdir(path) else path
    rel = f"read_parquet({lit(where)})"
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()
    except duckdb.Error as exc:
        raise InputError(path, f"cannot read as Parquet: {exc}") from exc
    return rel, [(str(r[0]), str(r[1])) for r in rows]


def _flowrecord_packets(
    con: duckdb.DuckDBPyConnection,
    described: list[tuple[FlowSource, str, list[tuple[str, str]]]],
    tables: list[bool],
) -> tuple[str, list[FlowSource], list[InputError]]:
    """Oriented packets of FlowRecord Parquet tables (:mod:`recommender.flows.flowrecord`);
    every input must be one (a converted file among them is refused)."""
    shown: list[FlowSource] = []
    parts, has_reply = [], []
    for (source, _, types), is_table in zip(described, tables, strict=True):
        names = [n for n, _ in types]
        if not is_table:
            why = flowrecord.table_error(names) if names != list(parquet.FILE_COLUMNS) else None
            raise InputError(
                source.path,
                f"not a FlowRecord table ({why})"
                if why
                else "a converted file among FlowRecord tables",
                hint="read FlowRecord tables and `netpol convert` output in separate runs",
            )
        for path in _parquet_files(source.path):
            file_id = len(shown)
            shown.append(FlowSource(path, file_id))
            rel = f"read_parquet({lit(path)}, file_row_number = true)"
            parts.append(flowrecord.parquet_rows_sql(rel, file_id, types))
            if "is_reply" in (n.lower() for n in names):
                has_reply.append(file_id)
    rows = "(" + " UNION ALL ".join(parts) + ")"
    paths = [s.path for s in shown]
    return f"({flowrecord.parquet_packets_sql(rows, paths, has_reply)})", shown, []


def _parquet_files(path: str) -> list[str]:
    """A Parquet input's files: itself, or a directory's ``*.parquet`` in name order."""
    if not os.path.isdir(path):
        return [path]
    return sorted(os.path.join(path, n) for n in os.listdir(path) if n.endswith(".parquet"))
