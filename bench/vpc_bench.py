"""Per-record cost of the non-Hubble readers vs the Hubble reader (oriented packets only).

    PYTHONPATH=. python bench/vpc_bench.py [LINES]

Each format's sample flow records are repeated to LINES records, read through
``sources`` into DuckDB and fully evaluated (every column of the oriented-packets
relation hashed), single thread, best of 3. One record per line, except the
``antctl`` array row: LINES/10 records in one pretty-printed JSON array (as
``antctl get flowrecords -o json`` prints them), read as one document.

The Antrea and Inspektor Gadget samples are documentation examples: the antctl
record is compacted to one line; the two Inspektor Gadget fragments lack a field
each (a timestamp, the endpoints), so the events are completed as in
tests/test_formats_gadget.py (a UDP event oriented by the port rule and a
trace_tcp ``connect``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import duckdb
import pyarrow as pa

from recommender.flows import antrea, aws, gadget, gcp, hubble
from recommender.flows.sources import LINE_SCHEMA, expand_paths, iter_line_batches

ROOT = Path(__file__).resolve().parents[1] / "tests" / "samples"
#: ``oriented_packets_sql(lines, paths)`` of a reader.
Reader = Callable[[str, Sequence[str]], str]


def _sample_lines(sample: Path, header_lines: int = 0) -> Callable[[], tuple[list[str], list[str]]]:
    """The header lines and the non-blank record lines of a sample file."""

    def lines() -> tuple[list[str], list[str]]:
        rows = sample.read_text().splitlines()
        return rows[:header_lines], [ln for ln in rows[header_lines:] if ln.strip()]

    return lines


def _antctl_record() -> dict:
    return json.loads((ROOT / "antrea" / "antctl-get-flowrecords-doc-example.json").read_text())[0]


def _antctl_lines() -> tuple[list[str], list[str]]:
    return [], [json.dumps(_antctl_record())]


def _gadget_lines() -> tuple[list[str], list[str]]:
    folder = ROOT / "inspektor-gadget"
    ip_event = json.loads((folder / "kubeipresolver-doc-fragment.json").read_text())
    connect = json.loads((folder / "kubenameresolver-doc-fragment.json").read_text())
    connect.update(
        type="connect",
        timestamp_raw="1740823200000000000",
        src={"addr": "10.244.0.29", "port": 40000, "proto": "TCP", "version": 4},
        dst={"addr": "10.96.0.1", "port": 443, "proto": "TCP", "version": 4},
    )
    ip_event["timestamp"] = "2025-03-01T10:00:00.5+01:00"
    return [], [json.dumps(ip_event), json.dumps(connect)]


SAMPLES: dict[str, tuple[Reader, Callable[[], tuple[list[str], list[str]]]]] = {
    "hubble": (
        hubble.oriented_packets_sql,
        _sample_lines(ROOT / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress.ndjson"),
    ),
    "aws_vpc v3 (header)": (
        aws.oriented_packets_sql,
        _sample_lines(ROOT / "aws-vpc-flow-logs" / "custom-v3-tcp-flags-doc-examples.log", 1),
    ),
    "aws_vpc v2 (no header)": (
        aws.oriented_packets_sql,
        _sample_lines(ROOT / "aws-vpc-flow-logs" / "default-v2-doc-examples.log"),
    ),
    "gcp_vpc": (
        gcp.oriented_packets_sql,
        _sample_lines(
            ROOT / "gcp-vpc-flow-logs" / "elastic-integrations-vpcflow-logentries.ndjson"
        ),
    ),
    "antrea_antctl (one record per line)": (antrea.json_packets_sql, _antctl_lines),
    "antrea_csv (flow-logger fixture)": (
        antrea.csv_packets_sql,
        _sample_lines(ROOT / "antrea" / "flowlogger-csv-test-fixture.csv"),
    ),
    "inspektor_gadget (completed fragments)": (gadget.oriented_packets_sql, _gadget_lines),
}


def _file(lines: Callable[[], tuple[list[str], list[str]]], n: int, out: Path) -> Path:
    head, body = lines()
    reps = n // len(body) + 1
    out.write_text("\n".join(head + (body * reps)[:n]) + "\n")
    return out


def _antctl_array(n: int, out: Path) -> Path:
    out.write_text(json.dumps([_antctl_record()] * n, indent=2) + "\n")
    return out


def _run(reader: Reader, path: Path) -> float:
    sources = expand_paths([str(path)])
    table = pa.Table.from_batches([b for s in sources for b in iter_line_batches(s)], LINE_SCHEMA)
    best = float("inf")
    for _ in range(3):
        con = duckdb.connect(config={"threads": 1})
        con.register("lines", table)
        sql = reader("lines", [str(path)])
        t0 = time.perf_counter()
        con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM ({sql}) t").fetchall()
        best = min(best, time.perf_counter() - t0)
        con.close()
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        print("| reader | records | s | us/record | vs Hubble |\n|---|---|---|---|---|")
        runs = [
            (name, reader, _file(lines, n, Path(tmp) / f"{i}.txt"), n)
            for i, (name, (reader, lines)) in enumerate(SAMPLES.items())
        ]
        array = _antctl_array(n // 10, Path(tmp) / "antctl.json")
        runs.append(("antrea_antctl (pretty array)", antrea.json_packets_sql, array, n // 10))
        for name, reader, path, records in runs:
            secs = _run(reader, path)
            per = secs / records * 1e6
            base = base or per
            print(f"| {name} | {records} | {secs:.2f} | {per:.2f} | {per / base:.2f}x |")


if __name__ == "__main__":
    main()
