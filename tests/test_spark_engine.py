"""The Spark engine gives exactly the embedded engine's observations.

One local Spark session (``local[2]``, ``tests/spark_support.py``) serves the
module; the comparison is ``pandas.testing.assert_frame_equal`` on the whole table
and ``==`` on the statistics (reject samples with their ``file:line`` included).
Inputs, records and Parquet: ``test_spark_inputs.py``.
"""

from __future__ import annotations

import json

from recommender.inventory.files import read_inventory
from tests.conftest import FIXTURES
from tests.spark_support import (
    HUBBLE,
    SAMPLE,
    damaged_file,
    same_aggregate,
)


def test_every_hubble_sample_gives_identical_observations(engines):
    assert len(HUBBLE) >= 16
    result = same_aggregate(engines, HUBBLE)
    assert len(result.observations) >= 40
    assert result.stats.replies > 0
    assert result.stats.inferred_orientation > 0  # legacy lines without is_reply


def test_simulator_data_with_inventory_replies_and_damage_identical(engines):
    flows = [str(SAMPLE / "flows-train.jsonl.gz")]
    inventory = read_inventory([str(SAMPLE / "inventory.json")])
    result = same_aggregate(engines, flows, inventory)
    truth = json.loads((SAMPLE / "truth.json").read_text())
    assert result.stats.replies > 1000
    assert result.stats.rejected == len(truth["damaged_lines"]["flows-train.jsonl.gz"])
    assert result.stats.reject_samples  # path:line: reason, equal in both engines
    assert result.stats.connections > 1000


def test_time_buckets_identical(engines):
    """``observe`` aggregates per hour bucket."""
    result = same_aggregate(engines, [str(SAMPLE / "flows-fresh.jsonl.gz")], bucket="1h")
    assert result.observations["bucket"].nunique() >= 12


def test_damaged_lines_identical_with_their_references(engines, tmp_path):
    path = damaged_file(tmp_path)
    result = same_aggregate(engines, [path, str(FIXTURES / "hubble" / "exporter-mixed.ndjson")])
    rejects = result.stats.rejects
    assert rejects.get("not valid JSON", 0) >= 2
    assert rejects.get("unknown verdict") == 1
    assert rejects.get("not UTF-8 text") == 1
    assert rejects.get("partial CRI log line (P) is not supported") == 1
    assert result.stats.lost_events >= 7
    assert any(s.startswith(f"{path}:3: ") for s in result.stats.reject_samples)


def test_hostile_lines_identical_rejects(engines, tmp_path):
    """Issue 18's lying lines: the same counted rejects, with the same details, in both."""
    from tests.test_hubble import make_flow, write_lines
    from tests.test_hubble_hardening import HOSTILE

    lines = [make_flow(sport=40000 + i) for i in range(3)] + [h[1] for h in HOSTILE]
    result = same_aggregate(engines, [write_lines(tmp_path / "hostile.json", lines)])
    assert sum(result.stats.rejects.values()) == len(HOSTILE) - 1  # duplicate-key needs a twin
    assert result.stats.flow_records == 4
