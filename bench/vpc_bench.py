"""Per-line cost of the AWS/GCP VPC readers vs the Hubble reader (oriented packets only).

    PYTHONPATH=. python bench/vpc_bench.py [LINES]

Each format's sample flow lines are repeated to LINES lines, read through
``sources`` into DuckDB and fully evaluated (every column of the oriented-packets
relation hashed), single thread, best of 3.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa

from recommender.flows import aws, gcp, hubble
from recommender.flows.sources import LINE_SCHEMA, expand_paths, iter_line_batches

ROOT = Path(__file__).resolve().parents[1] / "tests" / "samples"
SAMPLES = {
    "hubble": (hubble, ROOT / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress.ndjson", 0),
    "aws_vpc v3 (header)": (
        aws,
        ROOT / "aws-vpc-flow-logs" / "custom-v3-tcp-flags-doc-examples.log",
        1,
    ),
    "aws_vpc v2 (no header)": (aws, ROOT / "aws-vpc-flow-logs" / "default-v2-doc-examples.log", 0),
    "gcp_vpc": (
        gcp,
        ROOT / "gcp-vpc-flow-logs" / "elastic-integrations-vpcflow-logentries.ndjson",
        0,
    ),
}


def _file(sample: Path, header_lines: int, n: int, out: Path) -> Path:
    lines = sample.read_text().splitlines()
    head, body = lines[:header_lines], [ln for ln in lines[header_lines:] if ln.strip()]
    reps = n // len(body) + 1
    out.write_text("\n".join(head + (body * reps)[:n]) + "\n")
    return out


def _run(reader, path: Path) -> float:
    sources = expand_paths([str(path)])
    table = pa.Table.from_batches([b for s in sources for b in iter_line_batches(s)], LINE_SCHEMA)
    best = float("inf")
    for _ in range(3):
        con = duckdb.connect(config={"threads": 1})
        con.register("lines", table)
        sql = reader.oriented_packets_sql("lines", [str(path)])
        t0 = time.perf_counter()
        con.execute(f"SELECT count(*), sum(hash(COLUMNS(*))) FROM ({sql}) t").fetchall()
        best = min(best, time.perf_counter() - t0)
        con.close()
    return best


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    with tempfile.TemporaryDirectory() as tmp:
        base = None
        print("| reader | lines | s | us/line | vs Hubble |\n|---|---|---|---|---|")
        for name, (reader, sample, header) in SAMPLES.items():
            path = _file(sample, header, n, Path(tmp) / f"{reader.__name__}.txt")
            secs = _run(reader, path)
            per = secs / n * 1e6
            base = base or per
            print(f"| {name} | {n} | {secs:.2f} | {per:.2f} | {per / base:.2f}x |")


if __name__ == "__main__":
    main()
