"""Store size and speed over a simulated week: file appends vs a checkpointed stdin stream.

Usage (from the checkout)::

    .venv/bin/python cli.py simulate --topology webshop --window 168h --fresh-window 1h \
        --rate-scale 0.1 --seed 3 --out bench/work/store-webshop-7d
    .venv/bin/python bench/store_bench.py bench/work/store-webshop-7d/flows-train.jsonl.gz

Prints a Markdown report (copy it into bench/store.md). Work files go to
bench/work/ (git-ignored).
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.observe.store import (  # noqa: E402
    prune_store,
    read_store_buckets,
    read_store_observations,
    store_info,
)


def _netpol(*args: str, stdin: object = None) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"netpol {' '.join(args)} failed: {proc.stderr}")
    return time.monotonic() - start, proc.stdout + proc.stderr


def _mb(path: str | Path) -> str:
    return f"{os.path.getsize(path) / 1e6:,.2f} MB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("flows", help="a flow file (.jsonl or .jsonl.gz)")
    parser.add_argument("--work", default=str(ROOT / "bench" / "work" / "store"))
    parser.add_argument("--checkpoint-lines", default="50000")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    plain = work / "flows.jsonl"
    with gzip.open(args.flows, "rb") as src, open(plain, "wb") as dst:
        dst.write(src.read())
    with open(plain, "rb") as fh:
        lines = sum(1 for _ in fh)

    files_store = work / "files.duckdb"
    files_store.unlink(missing_ok=True)
    t_files, _ = _netpol("observe", "--flows", args.flows, "--store", str(files_store))
    stream_store = work / "stream.duckdb"
    stream_store.unlink(missing_ok=True)
    with open(plain, "rb") as fh:
        t_stream, log = _netpol(
            "observe",
            "--flows",
            "-",
            "--store",
            str(stream_store),
            "--checkpoint-lines",
            args.checkpoint_lines,
            "--checkpoint-interval",
            "1h",
            stdin=fh,
        )
    a, b = read_store_buckets(str(files_store)), read_store_buckets(str(stream_store))
    merged = read_store_observations(str(files_store))
    info = store_info(str(files_store))
    checkpoints = log.count("checkpoint ")
    retained = work / "retained.duckdb"
    retained.write_bytes(files_store.read_bytes())
    pruned = prune_store(str(retained), "3d")

    print(f"input: {args.flows}: {lines:,} lines, {_mb(args.flows)} gzip, {_mb(plain)} plain")
    print()
    print("| store | time | size | bucket rows | buckets | connections |")
    print("|---|---|---|---|---|---|")
    print(
        f"| one file append | {t_files:,.0f} s | {_mb(files_store)} | {len(a):,} | "
        f"{info.buckets:,} | {a['connections'].sum():,} |"
    )
    print(
        f"| stdin, {checkpoints} checkpoints of {int(args.checkpoint_lines):,} lines | "
        f"{t_stream:,.0f} s | {_mb(stream_store)} | {len(b):,} | "
        f"{b['bucket'].nunique():,} | {b['connections'].sum():,} |"
    )
    print(
        f"| after --retain 3d | - | {_mb(retained)} | {len(a) - pruned.rows:,} | "
        f"{info.buckets - pruned.buckets:,} | - |"
    )
    print()
    print(
        f"merged over the week: {len(merged):,} observations; stream store equals file store "
        f"(refs aside): {a.drop(columns='refs').equals(b.drop(columns='refs'))}"
    )


if __name__ == "__main__":
    main()
