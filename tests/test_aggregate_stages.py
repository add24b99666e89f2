"""The aggregation stage contract (``aggregation_stages``) every engine runs, and the
per-observation picks it makes with fixed-size state: refs, reject samples, workloads."""

from __future__ import annotations

import re

import duckdb
import pyarrow as pa
import pytest

from recommender.flows.hubble import oriented_packets_sql
from recommender.flows.sources import LINE_SCHEMA, expand_paths, iter_line_batches
from recommender.observe.engines.aggregate import (
    MAX_REFS,
    STAGE_OBSERVERS,
    aggregation_stages,
    finish,
)
from recommender.observe.engines.base import MAX_REJECT_SAMPLES
from tests.test_hubble import ENGINE, POD_A, POD_B, make_flow, write_lines

#: POD_A's deployment with another pod-template-hash: same stable labels, other identity.
POD_A2 = {
    **POD_A,
    "pod_name": "web-5f6b7c8d9x-abcde",
    "labels": [lab.replace("7d4d858f75", "5f6b7c8d9x") for lab in POD_A["labels"]],
}


def _stages(bucket: str | None = None) -> tuple[list[tuple[str, str]], str]:
    return aggregation_stages("(SELECT * FROM packets)", None, bucket)


@pytest.mark.parametrize("bucket", [None, "1h"])
def test_stages_are_portable_and_ordered(bucket):
    stages, final = _stages(bucket)
    names = [name for name, _ in stages]
    assert len(set(names)) == len(names)
    for i, (name, sql) in enumerate([*stages, ("final", final)]):
        text = sql.upper()
        assert not re.search(r"^\s*(SET|PRAGMA)\b", text, re.M), name
        assert "DISTINCT ON" not in text, name
        assert text.lstrip().startswith("SELECT") or text.lstrip().startswith("WITH"), name
        later = names[i + 1 :] if name != "final" else []
        assert not [n for n in later if re.search(rf"\b{n}\b", sql)], f"{name} reads a later stage"


def _run_stages_plainly(path: str, bucket: str | None):
    """The contract alone, in a plain DuckDB connection (no engine settings, no drops)."""
    sources = expand_paths([path])
    con = duckdb.connect()
    batches = [b for s in sources for b in iter_line_batches(s)]
    con.register("lines", pa.Table.from_batches(batches, LINE_SCHEMA))
    packets = oriented_packets_sql("lines", [s.path for s in sources])
    stages, final = aggregation_stages(f"({packets})", None, bucket)
    for name, sql in stages:
        con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
    groups = con.sql(final).df()
    observers = dict(con.execute(f"SELECT * FROM {STAGE_OBSERVERS}").fetchall())
    return finish(groups, bucket is not None, [s.path for s in sources], observers)


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    """Connections of one observation spread over two client identities, rejects of two
    classes, a reply-only connection: more than MAX_REFS / MAX_REJECT_SAMPLES each."""
    lines: list = []
    for i in range(6):
        src = POD_A if i % 2 else POD_A2
        lines.append(make_flow(src=src, sport=41000 + i, time=f"2026-01-01T00:0{i}:00Z"))
        lines.append("not json" if i % 2 else "[1]")
    lines.append(
        make_flow(
            src=POD_B, dst=POD_A, sip="10.0.0.2", dip="10.0.0.1", sport=5432, dport=9, is_reply=True
        )
    )
    lines += ["{broken"] * 3
    path = tmp_path_factory.mktemp("stages") / "many.json"
    return write_lines(path, lines)


@pytest.mark.parametrize("bucket", [None, "1h"])
def test_stages_alone_give_the_engine_result(many, bucket):
    obs, stats = _run_stages_plainly(many, bucket)
    result = ENGINE.aggregate([many], bucket=bucket)
    assert obs.to_json(date_format="iso") == result.observations.to_json(date_format="iso")
    assert stats == result.stats


def test_refs_are_the_first_connections_across_identities(many):
    obs = ENGINE.aggregate([many]).observations
    assert len(obs) == 1, "pod-template-hash must not split the observation"
    row = obs.iloc[0]
    assert row["connections"] == 6
    assert row["refs"] == [f"{many}:{n}" for n in (1, 3, 5)][:MAX_REFS]
    assert row["src_workload"] == "deployment/web"


def test_reject_samples_are_the_first_rejects_in_input_order(many):
    stats = ENGINE.aggregate([many]).stats
    assert stats.rejected == 9
    assert len(stats.reject_samples) == MAX_REJECT_SAMPLES
    got = [int(s.split(":")[1]) for s in stats.reject_samples]
    assert got == [2, 4, 6, 8, 10]
    assert stats.reject_samples[0].endswith("not a JSON object")
    assert stats.reject_samples[1].endswith("not valid JSON")


def test_best_workload_wins_within_an_observation(tmp_path):
    """One identity key, two workload spellings: Hubble's workload beats the pod name."""
    bare = {k: v for k, v in POD_A2.items() if k != "workloads"}
    bare["pod_name"] = "web-5f6b7c8d9x-abcde"
    lines = [make_flow(src=bare, sport=42000), make_flow(src=POD_A, sport=42001)]
    obs = ENGINE.aggregate([write_lines(tmp_path / "w.json", lines)]).observations
    assert len(obs) == 1
    assert obs.iloc[0]["src_workload"] == "deployment/web"
    assert obs.iloc[0]["connections"] == 2
