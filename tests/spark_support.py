"""Shared by the Spark engine tests (the ``spark`` and ``engines`` fixtures are in
``conftest.py``): the two-engine comparison and a file of hand-made damaged lines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from tests.conftest import ROOT, SAMPLES

SAMPLE = ROOT / "data" / "sample"
HUBBLE = sorted(str(p) for p in (SAMPLES / "hubble").glob("*/*") if p.is_file())


def same_aggregate(engines, paths, inventory=None, bucket=None):
    """Aggregate with both engines; assert identical observations and statistics."""
    embedded, spark = engines
    a = embedded.aggregate(paths, inventory, bucket=bucket)
    b = spark.aggregate(paths, inventory, bucket=bucket)
    pd.testing.assert_frame_equal(a.observations, b.observations)
    assert a.stats == b.stats
    return a


def damaged_file(tmp_path: Path) -> str:
    good = (SAMPLES / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress.ndjson").read_bytes()
    first = good.splitlines()[0]
    flow = json.loads(first)
    unknown = json.loads(first)
    unknown["flow"]["verdict"] = "SOMETHING_NEW"
    legacy = json.dumps(flow["flow"]).encode()
    lines = [
        first,
        b"",  # blank
        b'{"flow": {"time": "2024-01-01T00:00:00Z", "verdict": ',  # truncated JSON
        b"not json at all",
        b"[1, 2, 3]",
        json.dumps(unknown).encode(),
        b'{"flow": {"verdict": "FORWARDED"}}',  # no time
        first[:40] + b"\xff\xfe" + first[40:],  # not UTF-8
        first + b"\r",  # CRLF line ending
        b"2024-01-01T00:00:00.1Z stdout F " + first,  # CRI log line
        b"2024-01-01T00:00:00.1Z stdout P " + first[:30],  # partial CRI line
        json.dumps({"log": first.decode() + "\n"}).encode(),  # fluent-bit envelope
        legacy,
        b'{"lost_events": {"source": "HUBBLE_RING_BUFFER", "num_events_lost": "7"}}',
        b'{"node_status": {"state_change": "NODE_CONNECTED", "node_names": ["n1"]}}',
        b'{"hello": "world"}',
        *good.splitlines()[1:],
    ]
    path = tmp_path / "damaged.ndjson"
    path.write_bytes(b"\n".join(lines))  # no newline at the end of the last line
    return str(path)
