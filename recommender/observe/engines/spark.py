"""The Spark engine: the same normalization and aggregation SQL, run by Apache Spark.

Aggregation is the one stage whose input grows with traffic; this engine runs it
where the flow logs are (object storage, HDFS) on any Spark master, while what
comes out (the observation table) is small and goes on as with the embedded
engine. It runs the SQL of :mod:`recommender.flows.hubble`,
:mod:`recommender.semantics.resolve` and
:mod:`recommender.observe.engines.aggregate` through the dialect layer
:mod:`recommender.observe.engines.spark_sql`: there is one definition of every rule.

Inputs: Hubble JSON lines (plain or gzip) on any Hadoop filesystem path
(``s3a://``, ``hdfs://``, ``file://`` or a local path), with globs, and Parquet
written by ``netpol convert`` (see :mod:`recommender.flows.parquet`).

Lines keep their physical, 1-based numbers for ``file:line`` references, without
a pass through Python: Spark numbers each file split's rows
(``monotonically_increasing_id``), and the split's first line number is the sum
of the earlier splits' line counts (``_metadata.file_block_start`` orders them).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from recommender.errors import EngineUnavailableError, InputError, MissingDependencyError
from recommender.flows import formats, parquet
from recommender.flows.hubble import oriented_packets_sql, records_of_packets_sql
from recommender.flows.sources import STDIN, expand_paths
from recommender.model import FLOW_COLUMNS, Inventory
from recommender.observe.engines.aggregate import STAGE_OBSERVERS, aggregation_stages, finish
from recommender.observe.engines.base import AggregationEngine, FlowTable, IngestResult, IngestStats
from recommender.observe.engines.common import (
    StatsAccumulator,
    arrow_to_pandas,
    flow_table_sql,
    raise_first_reject,
    strict_from_sample,
)
from recommender.observe.engines.spark_sql import SESSION_CONF, to_spark
from recommender.semantics.resolve import (
    IP_INDEX_COLUMNS,
    build_ip_index,
    build_pod_index,
    resolved_sql,
)

DEFAULT_MASTER = "local[*]"
DEFAULT_DRIVER_MEMORY = "2g"
#: A URI scheme (``s3a://``, ``hdfs://``, ``file:/``): such paths go to Hadoop as they are.
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")
_LINES_SCHEMA = {"file_id": "INTEGER", "line_no": "BIGINT", "text": "VARCHAR", "reject": "VARCHAR"}
_INDEX_SCHEMA = {c: "VARCHAR" for c in IP_INDEX_COLUMNS}


@dataclass(frozen=True)
class SparkInput:
    """One input file: ``path`` as shown in ``file:line`` references, ``uri`` for Hadoop."""

    path: str
    uri: str


class SparkEngine(AggregationEngine):
    """Aggregation on Apache Spark (``pip install 'netpol-recommender[spark]'``).

    Parameters
    ----------
    master
        ``local[*]``, ``local[2]``, ``spark://host:7077``, ``yarn``, ``k8s://…``;
        None = the one ``spark-submit`` was given, else ``local[*]``.
    conf
        Extra Spark settings (``spark.executor.memory`` …), applied when this
        engine creates the session.
    session
        An existing ``SparkSession`` to use (``spark-submit``, notebooks, tests).
    """

    name = "spark"

    def __init__(
        self,
        master: str | None = None,
        conf: Mapping[str, str] | None = None,
        session: Any = None,
    ) -> None:
        self.master = master
        self.conf = dict(conf or {})
        self._session = session
        #: Keep the JVM's own log lines (launch, warnings) off the terminal.
        self.quiet = False

    # -- public API -------------------------------------------------------------

    def aggregate(
        self,
        paths: Sequence[str],
        inventory: Inventory | None = None,
        *,
        strict: bool = False,
        bucket: str | None = None,
    ) -> IngestResult:
        spark = self.session()
        packets, shown, schema, inputs = self._packets(spark, paths)
        resolve = None
        if inventory is not None:
            schema.update(_register_inventory(spark, inventory))

            def resolve(rel: str) -> str:
                return resolved_sql(rel, ("x",), "inv_ip", "inv_pod")

        stages, final = aggregation_stages(packets, resolve, bucket)
        cached = []
        try:
            with _read_errors(inputs):
                for name, sql in stages:
                    # Each stage is kept (memory, then disk): later stages read it twice.
                    frame = spark.sql(to_spark(sql, schema)).persist(_storage_level())
                    frame.createOrReplaceTempView(name)
                    cached.append(frame)
                    schema[name] = {f.name: "VARCHAR" for f in frame.schema.fields}
                groups = _to_pandas(spark.sql(to_spark(final, schema)))
                observers = {
                    str(r[0]): int(r[1])
                    for r in spark.sql(f"SELECT * FROM {STAGE_OBSERVERS}").collect()
                }
        finally:
            for frame in cached:
                frame.unpersist()
            for view in schema:
                spark.catalog.dropTempView(view)
        observations, stats = finish(groups, bucket is not None, shown, observers)
        if strict and stats.reject_samples:
            raise strict_from_sample(stats.reject_samples[0], _as_sources(shown))
        return IngestResult(observations, stats)

    def read_flows(
        self, paths: Sequence[str], inventory: Inventory | None = None, *, strict: bool = False
    ) -> FlowTable:
        box: list[IngestStats] = []
        return FlowTable(self._flow_batches(paths, inventory, strict, box), box)

    # -- session and inputs ----------------------------------------------------

    def session(self) -> Any:
        """The SparkSession: the given one, the active one, or a new one.

        Raises
        ------
        MissingDependencyError
            pyspark cannot be imported.
        EngineUnavailableError
            No Java to start Spark with, or the JVM did not start.
        """
        if self._session is not None:
            return self._session
        try:
            from pyspark.sql import SparkSession
        except ImportError as exc:
            raise MissingDependencyError(
                "--engine spark",
                "pip install 'netpol-recommender[spark]'",
                f"or use the embedded engine ({exc})",
            ) from None
        active = SparkSession.getActiveSession()
        if active is None:
            _require_java()
        with _jvm_output(self.quiet) as log:
            try:
                spark = active or self._builder(SparkSession).getOrCreate()
            except Exception as exc:  # noqa: BLE001 - py4j/pyspark launch errors vary
                raise EngineUnavailableError(
                    "spark", "the Java gateway did not start", _last_line(log(), exc)
                ) from None
        if self.quiet:
            spark.sparkContext.setLogLevel("ERROR")
        for key, value in SESSION_CONF.items():
            spark.conf.set(key, value)
        self._session = spark
        return spark

    def _builder(self, session_class: Any) -> Any:
        from pyspark import SparkConf

        builder = session_class.builder.appName("netpol-recommender")
        if self.master:
            builder = builder.master(self.master)
        elif not SparkConf().contains("spark.master"):
            # Not under spark-submit (which sets the master): run locally.
            builder = builder.master(DEFAULT_MASTER)
        builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
        # The driver plans (and in local mode runs) queries whose SQL is large; Spark's
        # 1g default runs out of heap on the per-record plan of read_flows.
        builder = builder.config("spark.driver.memory", DEFAULT_DRIVER_MEMORY)
        for key, value in self.conf.items():
            builder = builder.config(key, value)
        return builder

    def expand(self, paths: Sequence[str]) -> list[SparkInput]:
        """Expand globs: local paths as the embedded engine does (same references),
        URIs with Hadoop's ``globStatus`` (any filesystem Spark can reach).

        Raises
        ------
        InputError
            stdin, a missing path, a pattern matching nothing.
        """
        out: list[SparkInput] = []
        local: list[str] = []
        for raw in paths:
            if raw == STDIN:
                raise InputError(
                    "-", "the spark engine reads files, not stdin", hint="use --engine embedded"
                )
            if _SCHEME_RE.match(raw):
                out.extend(self._hadoop_glob(raw))
            else:
                local.append(raw)
        if local:
            for source in expand_paths(local):
                out.append(SparkInput(source.path, self._qualified(os.path.abspath(source.path))))
        if not out:
            raise InputError(None, "no flow input given", hint="pass --flows FILE")
        seen: set[str] = set()
        unique = [i for i in out if not (i.uri in seen or seen.add(i.uri))]  # type: ignore[func-returns-value]
        return unique

    def _qualified(self, path: str) -> str:
        """The URI Spark reports for ``path`` (``_metadata.file_path``)."""
        spark = self.session()
        jpath = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
        fs = jpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
        return str(fs.getFileStatus(jpath).getPath().toString())

    def _hadoop_glob(self, pattern: str) -> list[SparkInput]:
        spark = self.session()
        jvm = spark.sparkContext._jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        path = jvm.org.apache.hadoop.fs.Path(pattern)
        try:
            fs = path.getFileSystem(conf)
            statuses = fs.globStatus(path)
        except Exception as exc:  # py4j wraps Java IOExceptions
            raise InputError(pattern, f"cannot list: {_java_message(exc)}") from exc
        if statuses is None or len(statuses) == 0:
            raise InputError(pattern, "no such file" if "*" not in pattern else "no file matches")
        files = []
        for status in statuses:
            if status.isDirectory():
                raise InputError(
                    str(status.getPath().toString()),
                    "is a directory",
                    hint="pass the files, or a glob like DIR/*.json",
                )
            uri = str(status.getPath().toString())
            files.append(SparkInput(uri, uri))
        return sorted(files, key=lambda i: i.uri)

    def convert(self, paths: Sequence[str], out: str, *, force: bool = False) -> dict[str, int]:
        """Write the Hubble JSON ``paths`` as Parquet (a directory of part files) at
        ``out``, any Hadoop path; see :mod:`recommender.flows.parquet`.

        Returns the lines written by kind (read back from ``out``).
        """
        spark = self.session()
        if parquet.split_inputs(paths):
            raise InputError(None, "the inputs are Parquet already")
        inputs = self.expand(paths)
        shown = [i.path for i in inputs]
        formats.require_spark(shown, formats.assign(shown, self.flow_format))
        schema = self._register_lines(spark, inputs)
        sql = parquet.to_parquet_sql(f"({oriented_packets_sql('lines', shown)})", shown)
        frame = spark.sql(to_spark(sql, schema))
        with _read_errors(inputs):
            frame.write.mode("overwrite" if force else "errorifexists").parquet(out)
        spark.catalog.dropTempView("lines")
        counts = spark.read.parquet(out).groupBy("line_kind").count().collect()
        return {str(r[0]): int(r[1]) for r in counts}

    def _packets(
        self, spark: Any, paths: Sequence[str]
    ) -> tuple[str, list[str], dict[str, dict[str, str]], list[SparkInput]]:
        """The oriented-packets relation over ``paths`` (JSON lines or converted
        Parquet), the paths shown in references, the views' columns, the inputs."""
        if not parquet.split_inputs(paths):
            inputs = self.expand(paths)
            shown = [i.path for i in inputs]
            formats.require_spark(shown, formats.assign(shown, self.flow_format))
            schema = self._register_lines(spark, inputs)
            return f"({oriented_packets_sql('lines', shown)})", shown, schema, inputs
        from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

        inputs = [self._parquet_input(p) for p in paths]
        frames = []
        for n, source in enumerate(inputs):
            frame = _read_parquet(spark, source)
            parquet.check_columns(source.path, frame.columns)
            frames.append(frame.withColumn("input_no", F.lit(n)))
        raw = frames[0]
        for frame in frames[1:]:
            raw = raw.unionByName(frame)
        raw.createOrReplaceTempView("pq_raw")
        rows = spark.sql(parquet.files_sql("pq_raw")).collect()
        files = parquet.numbered_files([(r[0], r[1], r[2]) for r in rows])
        spark.createDataFrame(
            files, "input_no int, file_id int, new_file_id int, path string"
        ).createOrReplaceTempView("pq_files")
        schema = {
            "pq_raw": {c: "VARCHAR" for c in (*parquet.FILE_COLUMNS, "input_no")},
            "pq_files": {c: "VARCHAR" for c in ("input_no", "file_id", "new_file_id", "path")},
        }
        shown = [f[3] for f in files]
        return f"({parquet.packets_sql('pq_raw', 'pq_files')})", shown, schema, inputs

    def fingerprints(self, paths: Sequence[str]) -> tuple[list[str], list[Any]]:
        """The inputs as shown, and a fingerprint of each for ``netpol observe``
        (which refuses to append a file twice): local files as the embedded engine
        does, other filesystems by URI, length and modification time."""
        import hashlib

        from recommender.observe.fingerprint import FileFingerprint, fingerprint_file

        if parquet.split_inputs(paths):
            inputs = [self._parquet_input(p) for p in paths]
        else:
            inputs = self.expand(paths)
        spark = self.session()
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        prints = []
        for source in inputs:
            if not _SCHEME_RE.match(source.path) and os.path.isfile(source.path):
                prints.append(fingerprint_file(source.path))
                continue
            jpath = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(source.uri)
            fs = jpath.getFileSystem(conf)
            size = int(fs.getContentSummary(jpath).getLength())
            mtime = int(fs.getFileStatus(jpath).getModificationTime())
            digest = hashlib.sha256(f"{source.uri}|{size}|{mtime}".encode()).hexdigest()
            prints.append(FileFingerprint(source.path, size, digest))
        return [i.path for i in inputs], prints

    def _parquet_input(self, raw: str) -> SparkInput:
        if _SCHEME_RE.match(raw):
            return SparkInput(raw, raw)
        if not os.path.exists(raw):
            raise InputError(raw, "no such file")
        return SparkInput(raw, self._qualified(os.path.abspath(raw)))

    def _register_lines(self, spark: Any, inputs: list[SparkInput]) -> dict[str, dict[str, str]]:
        """The view ``lines`` (``file_id, line_no, text, reject``) over every input."""
        lines_view(spark, inputs).createOrReplaceTempView("lines")
        return {"lines": dict(_LINES_SCHEMA)}

    # -- FlowRecords ----------------------------------------------------------

    def _flow_batches(
        self,
        paths: Sequence[str],
        inventory: Inventory | None,
        strict: bool,
        box: list[IngestStats],
    ) -> Iterator[pd.DataFrame]:
        spark = self.session()
        packets, shown, schema, inputs = self._packets(spark, paths)
        sql = records_of_packets_sql(packets)
        if inventory is not None:
            schema.update(_register_inventory(spark, inventory))
            sql = resolved_sql(sql, ("src", "dst"), "inv_ip", "inv_pod")
        frame = spark.sql(to_spark(flow_table_sql(sql), schema))
        acc = StatsAccumulator()
        sources = _as_sources(shown)
        with _read_errors(inputs):
            for batch in _local_batches(frame):
                if strict:
                    raise_first_reject(batch, sources)
                acc.add(batch)
                flows = batch[batch["line_kind"] == "flow"]
                if len(flows):
                    yield flows[list(FLOW_COLUMNS)].reset_index(drop=True)
        box.append(acc.result())


def lines_view(spark: Any, inputs: Sequence[SparkInput]) -> Any:
    """A DataFrame ``file_id, line_no, text, reject`` of every line of ``inputs``.

    Lines split at ``\\n`` only, a trailing ``\\r`` is cut, and a line that is not
    UTF-8 becomes empty text with a reject reason, as in
    :mod:`recommender.flows.sources`.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F  # noqa: N812 - Spark's convention

    ids = spark.createDataFrame(
        [(i.uri, n) for n, i in enumerate(inputs)], "uri string, file_id int"
    )
    raw = (
        spark.read.option("lineSep", "\n")
        .text([i.uri for i in inputs])
        .select(
            F.col("value"),
            # Spark URL-encodes the path ("a b" -> "a%20b"); Hadoop's Path.toString
            # does not. (url_decode would read a literal "+" as a space.)
            F.expr("url_decode(replace(_metadata.file_path, '+', '%2B'))").alias("uri"),
            F.col("_metadata.file_block_start").alias("block"),
            F.monotonically_increasing_id().alias("mid"),
        )
    )
    splits = raw.groupBy("uri", "block").agg(
        F.min("mid").alias("base"), F.count(F.lit(1)).alias("n")
    )
    before = F.sum("n").over(Window.partitionBy("uri").orderBy("block")) - F.col("n")
    splits = splits.withColumn("first", before)
    joined = raw.join(F.broadcast(splits), ["uri", "block"]).join(F.broadcast(ids), ["uri"])
    return _lines_exprs(joined)


def _lines_exprs(joined: Any) -> Any:
    with_bad = joined.selectExpr(
        "file_id",
        "first + mid - base + 1 AS line_no",
        "value",
        "CAST(value AS BINARY) <> encode(value, 'UTF-8') AS bad",
    )
    return with_bad.selectExpr(
        "file_id",
        "line_no",
        "CASE WHEN bad THEN '' WHEN endswith(value, '\\r') "
        "THEN substr(value, 1, length(value) - 1) ELSE value END AS text",
        # The first bad byte: the length of the valid prefix before Java's replacement.
        "CASE WHEN bad THEN 'not UTF-8 text (byte ' || CAST(octet_length(substring_index("
        "CAST(encode(value, 'UTF-8') AS STRING), '\\uFFFD', 1)) + 1 AS STRING) || ')' END"
        " AS reject",
    )


def _read_parquet(spark: Any, source: SparkInput) -> Any:
    try:
        return spark.read.parquet(source.uri)
    except Exception as exc:  # AnalysisException: path not found, not Parquet
        raise InputError(source.path, f"cannot read as Parquet: {_java_message(exc)}") from exc


def _register_inventory(spark: Any, inventory: Inventory) -> dict[str, dict[str, str]]:
    ddl = ", ".join(f"{c} string" for c in IP_INDEX_COLUMNS)
    indexes = (("inv_ip", build_ip_index(inventory)), ("inv_pod", build_pod_index(inventory)))
    for name, rows in indexes:
        data = [tuple(getattr(r, c) for c in IP_INDEX_COLUMNS) for r in rows]
        spark.createDataFrame(data, ddl).createOrReplaceTempView(name)
    return {"inv_ip": dict(_INDEX_SCHEMA), "inv_pod": dict(_INDEX_SCHEMA)}


def _storage_level() -> Any:
    from pyspark import StorageLevel

    return StorageLevel.MEMORY_AND_DISK


def _to_pandas(frame: Any) -> pd.DataFrame:
    """The (small) level-2 table as pandas, through Arrow exactly as the embedded
    engine converts its own (same dtypes, an all-NULL text column as ``None``)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(frame.schema)
    table = pa.Table.from_batches(frame._collect_as_arrow(), schema=schema)
    large = pa.schema(
        [f.with_type(pa.large_string()) if pa.types.is_string(f.type) else f for f in table.schema]
    )
    return arrow_to_pandas(table.cast(large))


def _local_batches(frame: Any, size: int = 65536) -> Iterator[pd.DataFrame]:
    """The rows in order, a partition at a time (memory stays bounded), as pandas
    batches built through Arrow like the embedded engine's (same dtypes)."""
    import pyarrow as pa
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(frame.schema)
    names = schema.names
    rows: list[dict[str, Any]] = []

    def batch() -> pd.DataFrame:
        return pa.Table.from_pylist(rows, schema=schema).to_pandas()

    for row in frame.toLocalIterator(prefetchPartitions=True):
        rows.append(dict(zip(names, row, strict=True)))
        if len(rows) >= size:
            yield batch()
            rows = []
    if rows:
        yield batch()


def _as_sources(shown: Sequence[str]) -> list[Any]:
    from recommender.flows.sources import FlowSource

    return [FlowSource(p, n) for n, p in enumerate(shown)]


def _java_message(exc: BaseException) -> str:
    text = str(exc)
    for line in text.splitlines():
        line = line.strip()
        if "Exception:" in line:
            return line.split("Exception:", 1)[1].strip() or line
    return text.splitlines()[0] if text else type(exc).__name__


@contextlib.contextmanager
def _read_errors(inputs: Sequence[SparkInput]) -> Iterator[None]:
    """Turn Spark's failure to read a damaged ``.gz`` into one clear :class:`InputError`."""
    try:
        yield
    except InputError:
        raise
    except Exception as exc:  # py4j / pyspark wrap the Java exception
        text = str(exc)
        if not any(k in text for k in ("EOFException", "ZipException", "Unexpected end of input")):
            raise
        gz = [i for i in inputs if i.path.endswith(".gz")]
        named = [i for i in inputs if os.path.basename(i.path) in text]
        found = named or (gz if len(gz) == 1 else [])
        where = found[0] if found else None
        raise InputError(
            where.path if where is not None else None,
            "corrupt or truncated gzip data",
            hint="the spark engine stops at a damaged .gz; --engine embedded reads up to it",
        ) from exc


def _require_java() -> None:
    """Spark's launcher runs ``$JAVA_HOME/bin/java``, else ``java`` on the PATH."""
    home = os.environ.get("JAVA_HOME")
    if home:
        if not os.access(os.path.join(home, "bin", "java"), os.X_OK):
            raise EngineUnavailableError(
                "spark", "Java 17 (JAVA_HOME has no bin/java)", f"JAVA_HOME={home}"
            )
    elif shutil.which("java") is None:
        raise EngineUnavailableError("spark", "Java 17 (no java on the PATH, JAVA_HOME unset)")


@contextlib.contextmanager
def _jvm_output(quiet: bool) -> Iterator[Callable[[], str]]:
    """Point file descriptor 2 at a temp file while the JVM starts (it inherits it, so
    its later log lines stay off the terminal too); yields a reader of what it wrote."""
    if not quiet:
        yield lambda: ""
        return
    sys.stderr.flush()
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield lambda: _read_log(log)
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _read_log(log: Any) -> str:
    log.flush()
    log.seek(0)
    return str(log.read().decode("utf-8", errors="replace"))


def _last_line(log: str, exc: BaseException) -> str:
    """The most telling line: the launcher's last words, else the exception's first line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    telling = [
        ln
        for ln in lines
        if re.search(r"error|JAVA_HOME|not found|no such", ln, re.I)
        and "bad array subscript" not in ln
    ]  # the launcher's echo of a failed java
    lines = telling or lines
    text = lines[-1] if lines else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text[:200]
