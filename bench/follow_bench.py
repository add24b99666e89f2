"""``netpol shadow --follow``: the cost of judging a stream in chunks, against one batch run.

Simulates the webshop topology, then judges its fresh flows once in one batch
and again in chunks of several sizes (as ``--follow`` does), checks that every
chunked run reports exactly the batch totals, and prints CPU seconds, lines per
CPU second and CPU per chunk. See bench/follow.md.

    .venv/bin/python bench/follow_bench.py --rate-scale 0.5 --chunks 2000 10000 50000
"""

from __future__ import annotations

import argparse
import gzip
import os
import tempfile
import time
from pathlib import Path

from recommender.inventory.files import read_inventory
from recommender.observe.engines.embedded import EmbeddedEngine
from recommender.observe.follow import ChunkJudge, FollowOptions
from recommender.policy_io.policy_yaml import load_policies
from recommender.semantics import compile_policies
from recommender.shadow.core import ShadowRun, run_shadow
from recommender.shadow.follow import FollowedShadow
from recommender.simulate import SimOptions, load_topology, run_simulation

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "tests" / "fixtures" / "shadow" / "data-default-deny.yaml"


def _totals(run: ShadowRun) -> tuple[int, int, int]:
    t = run.totals
    return t.records, t.connections, t.would_deny


def _chunked(lines: list[bytes], size: int, inv, policies, name: str) -> tuple[float, int, tuple]:
    run = ShadowRun(policies, inv)
    judge = ChunkJudge(
        EmbeddedEngine(),
        inv,
        FollowedShadow(run, name),
        FollowOptions(max_lines=size),
        lambda v: None,
        lambda t, s: None,
    )
    start = time.process_time()
    try:
        for i in range(0, len(lines), size):
            judge.add_lines(lines[i : i + size])
        judge.flush()
    finally:
        judge.close()
    return time.process_time() - start, judge.chunks, _totals(run)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rate-scale", type=float, default=0.5)
    ap.add_argument("--chunks", type=int, nargs="+", default=[2000, 10000, 50000])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sim"
        opts = SimOptions(seed=5, window_s=3600, rate_scale=args.rate_scale)
        run_simulation(load_topology("webshop"), out, opts, show_progress=False)
        flows = Path(tmp) / "flows.jsonl"
        flows.write_bytes(gzip.decompress((out / "flows-fresh.jsonl.gz").read_bytes()))
        lines = flows.read_bytes().splitlines(True)
        inv = read_inventory([str(out / "inventory-fresh.json")])
        policies = compile_policies(load_policies([str(POLICIES)]).policies, inv)
        start = time.process_time()
        batch, _ = run_shadow(EmbeddedEngine().read_flows([str(flows)], inv), policies, inv)
        cpu = time.process_time() - start
        print(f"load average {os.getloadavg()[0]:.1f}; {len(lines):,} lines")
        print("| run | chunks | CPU s | lines per CPU s | CPU s per chunk | totals equal |")
        print("|---|---:|---:|---:|---:|---|")
        print(f"| batch | 1 | {cpu:.1f} | {len(lines) / cpu:,.0f} | {cpu:.2f} | - |")
        for size in args.chunks:
            cpu, n, totals = _chunked(lines, size, inv, policies, str(flows))
            same = totals == _totals(batch)
            print(
                f"| chunks of {size:,} lines | {n} | {cpu:.1f} | {len(lines) / cpu:,.0f} | "
                f"{cpu / n:.2f} | {'yes' if same else 'NO'} |"
            )
        print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
