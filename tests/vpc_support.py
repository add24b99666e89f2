"""Helpers for the VPC flow-log reader tests: run a reader's SQL over lines."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa

from recommender.flows.sources import LINE_SCHEMA, expand_paths, iter_line_batches


class Reader(Protocol):
    """A reader module (or any object) with the reader's SQL."""

    def oriented_packets_sql(self, lines: str, paths: Sequence[str], /) -> str: ...


def read_rows(reader: Reader, *paths: str | Path) -> list[dict[str, Any]]:
    """The reader's oriented packets of ``paths`` as dicts, in file/line order,
    with ``src_ip``/``dst_ip`` pulled out of the raw ends."""
    sources = expand_paths([str(p) for p in paths])
    batches = [b for s in sources for b in iter_line_batches(s)]
    con = duckdb.connect()
    con.register("lines", pa.Table.from_batches(batches, LINE_SCHEMA))
    sql = reader.oriented_packets_sql("lines", [s.path for s in sources])
    rel = con.sql(
        f"SELECT *, src_ep.ip AS src_ip, dst_ep.ip AS dst_ip FROM ({sql}) ORDER BY file_id, line_no"
    )
    cols = rel.columns
    return [dict(zip(cols, row, strict=True)) for row in rel.fetchall()]


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def observe(paths: list[str | Path], inventory: Any = None, flow_format: str | None = None) -> Any:
    """The embedded engine's aggregation of ``paths`` (formats sniffed, or ``flow_format``)."""
    from recommender.observe.engines.embedded import EmbeddedEngine

    engine = EmbeddedEngine(threads=1)
    engine.flow_format = flow_format
    return engine.aggregate([str(p) for p in paths], inventory)
