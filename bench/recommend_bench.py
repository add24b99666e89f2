"""Time ``recommend()`` and its self-check on a simulator output directory.

Usage::

    .venv/bin/python bench/recommend_bench.py DIR [--from-truth]

``DIR`` is a ``netpol simulate`` output (inventory.json, flows-train.jsonl.gz,
truth.json). By default the observations come from the embedded ingest engine;
``--from-truth`` builds them from the truth's legitimate training edges
instead, so the recommendation stage can be timed on topologies whose flow
files are too big to ingest on the machine at hand. Prints one line per stage.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
import pandas as pd

from recommender.inventory.files import read_inventory
from recommender.labels import encode_labels
from recommender.model import OBSERVATION_COLUMNS
from recommender.policy_io.policy_writer import render_tree
from recommender.recommend.pipeline import recommend

START = pd.Timestamp("2026-11-02T00:00:00")


def _end(peer: dict[str, Any], labels: dict[str, dict[str, str]], n: int) -> list[dict[str, Any]]:
    kind = peer["kind"]
    if kind == "pod":
        key = f"{peer['namespace']}/{peer['workload']}"
        return [
            {
                "kind": "pod",
                "namespace": peer["namespace"],
                "workload": peer["workload"],
                "labels": encode_labels(labels[key]),
                "ip": None,
            }
        ]
    if "ip" in peer:
        return [
            {"kind": kind, "namespace": None, "workload": None, "labels": None, "ip": peer["ip"]}
        ]
    if kind == "world":  # a public client population: a few distinct addresses
        return [
            {
                "kind": "world",
                "namespace": None,
                "workload": None,
                "labels": None,
                "ip": f"198.51.100.{i % 250 + 1}",
            }
            for i in range(min(n, 40))
        ]
    return [{"kind": kind, "namespace": None, "workload": None, "labels": None, "ip": "10.244.0.1"}]


def observations_from_truth(truth: dict[str, Any]) -> pd.DataFrame:
    """One observation per legitimate training edge (and per synthetic client address)."""
    labels = {f"{w['namespace']}/{w['workload']}": w["labels"] for w in truth["workloads"]}
    rows = []
    for edge in truth["legitimate_edges"]:
        n = int(edge.get("train_connections", 0))
        if n <= 0:
            continue
        for src in _end(edge["src"], labels, n):
            for dst in _end(edge["dst"], labels, n):
                row = {c: None for c in OBSERVATION_COLUMNS}
                for side, end in (("src", src), ("dst", dst)):
                    for field in ("kind", "namespace", "workload", "labels", "ip"):
                        row[f"{side}_{field}"] = end[field]
                row.update(
                    dst_names=list(edge["dst"].get("names", [])),
                    port=edge["port"],
                    protocol=edge["protocol"],
                    connections=n,
                    first_seen=START,
                    last_seen=START,
                    verdicts={"allowed": n},
                    refs=[],
                )
                rows.append(row)
    return pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--from-truth", action="store_true")
    args = parser.parse_args()
    c0 = time.process_time()
    t0 = time.perf_counter()
    inventory = read_inventory([f"{args.dir}/inventory.json"])
    t1 = time.perf_counter()
    print(f"inventory: {len(inventory.pods):,} pods in {t1 - t0:.1f} s")
    if args.from_truth:
        with open(f"{args.dir}/truth.json", "rb") as fh:
            observations = observations_from_truth(orjson.loads(fh.read()))
    else:
        from recommender.observe.factory import get_engine

        observations = (
            get_engine("embedded")
            .aggregate([f"{args.dir}/flows-train.jsonl.gz"], inventory)
            .observations
        )
    t2 = time.perf_counter()
    print(f"observations: {len(observations):,} rows in {t2 - t1:.1f} s")
    rec = recommend(observations, inventory)
    t3 = time.perf_counter()
    print(
        f"recommend: {len(rec.policies):,} policies, {len(rec.groups):,} groups, "
        f"{sum(len(g.members) for g in rec.groups):,} workloads in {t3 - t2:.1f} s"
    )
    check = rec.self_check(inventory)
    t4 = time.perf_counter()
    print(
        f"self-check: ok={check.ok}, {check.checked_learned:,} learned replayed in {t4 - t3:.1f} s"
    )
    files = render_tree(rec.policies, rec.summary_markdown(check))
    t5 = time.perf_counter()
    print(
        f"render: {len(files):,} files in {t5 - t4:.1f} s; recommend+self-check+render "
        f"{t5 - t2:.1f} s wall; whole run {time.process_time() - c0:.1f} s CPU"
    )


if __name__ == "__main__":
    main()
