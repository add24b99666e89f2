"""The Spark engine gives exactly the embedded engine's observations and records.

One local Spark session (``local[2]``) serves every test in this file; the
comparison is with ``pandas.testing.assert_frame_equal`` on the whole table and
``==`` on the statistics (reject samples with their ``file:line`` included).
"""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from recommender.engines.embedded import EmbeddedEngine
from recommender.engines.spark import SparkEngine
from recommender.errors import InputError
from recommender.ingest.inventory import read_inventory
from tests.conftest import FIXTURES, ROOT, SAMPLES

SAMPLE = ROOT / "data" / "sample"
HUBBLE = sorted(str(p) for p in (SAMPLES / "hubble").glob("*/*") if p.is_file())


@pytest.fixture(scope="module")
def spark():
    from pyspark.sql import SparkSession

    from recommender.engines.spark_sql import SESSION_CONF

    session = (
        SparkSession.builder.master("local[2]")
        .appName("netpol-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    for key, value in SESSION_CONF.items():
        session.conf.set(key, value)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def engines(spark):
    return EmbeddedEngine(), SparkEngine(session=spark)


def _same_aggregate(engines, paths, inventory=None, bucket=None):
    embedded, spark = engines
    a = embedded.aggregate(paths, inventory, bucket=bucket)
    b = spark.aggregate(paths, inventory, bucket=bucket)
    pd.testing.assert_frame_equal(a.observations, b.observations)
    assert a.stats == b.stats
    return a


def test_every_hubble_sample_gives_identical_observations(engines):
    assert len(HUBBLE) >= 16
    result = _same_aggregate(engines, HUBBLE)
    assert len(result.observations) >= 40
    assert result.stats.replies > 0
    assert result.stats.inferred_orientation > 0  # legacy lines without is_reply


def test_simulator_data_with_inventory_replies_and_damage_identical(engines):
    flows = [str(SAMPLE / "flows-train.jsonl.gz")]
    inventory = read_inventory([str(SAMPLE / "inventory.json")])
    result = _same_aggregate(engines, flows, inventory)
    truth = json.loads((SAMPLE / "truth.json").read_text())
    assert result.stats.replies > 1000
    assert result.stats.rejected == len(truth["damaged_lines"]["flows-train.jsonl.gz"])
    assert result.stats.reject_samples  # path:line: reason, equal in both engines
    assert result.stats.connections > 1000


def test_time_buckets_identical(engines):
    """``observe`` aggregates per hour bucket."""
    result = _same_aggregate(engines, [str(SAMPLE / "flows-fresh.jsonl.gz")], bucket="1h")
    assert result.observations["bucket"].nunique() >= 12


def _damaged(tmp_path: Path) -> str:
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


def test_damaged_lines_identical_with_their_references(engines, tmp_path):
    path = _damaged(tmp_path)
    result = _same_aggregate(engines, [path, str(FIXTURES / "hubble" / "exporter-mixed.ndjson")])
    rejects = result.stats.rejects
    assert rejects.get("not valid JSON", 0) >= 2
    assert rejects.get("unknown verdict") == 1
    assert rejects.get("not UTF-8 text") == 1
    assert rejects.get("partial CRI log line (P) is not supported") == 1
    assert result.stats.lost_events >= 7
    assert any(s.startswith(f"{path}:3: ") for s in result.stats.reject_samples)


def test_flow_records_identical_in_input_order(engines, tmp_path):
    embedded, spark = engines
    paths = [_damaged(tmp_path), *HUBBLE[:2]]
    inventory = read_inventory([str(SAMPLES / "k8s-inventory" / p) for p in _inventories()])
    a_table = embedded.read_flows(paths, inventory)
    a = a_table.to_pandas()
    b_table = spark.read_flows(paths, inventory)
    b = b_table.to_pandas()
    assert len(a) > 10
    pd.testing.assert_frame_equal(a, b)
    assert a_table.stats == b_table.stats


def _inventories() -> list[str]:
    found = sorted(p.name for p in (SAMPLES / "k8s-inventory").glob("*.json"))
    return found[:1]


def test_gzip_glob_and_file_uri_inputs(engines, tmp_path):
    embedded, spark = engines
    src = SAMPLES / "hubble" / "hubble-otel-testdata"
    for name in ("basic-sample-10-flows.json", "basic-sample-5-dns-flows.json"):
        with gzip.open(tmp_path / (name + ".gz"), "wb") as out:
            out.write((src / name).read_bytes())
    pattern = str(tmp_path / "*.json.gz")
    a = embedded.aggregate([pattern])
    b = spark.aggregate([f"file://{pattern}"])
    # Same rows; references name the files as Hadoop URIs.
    cols = [c for c in a.observations.columns if c != "refs"]
    pd.testing.assert_frame_equal(a.observations[cols], b.observations[cols])
    assert all(r.startswith("file:/") for refs in b.observations["refs"] for r in refs)


def test_truncated_gzip_is_one_clear_error(engines, tmp_path):
    _, spark = engines
    whole = gzip.compress((SAMPLE.parent / "sample" / "truth.json").read_bytes() * 20)
    path = tmp_path / "cut.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(InputError) as err:
        spark.aggregate([str(path)])
    assert str(path) in str(err.value)


def test_missing_input_and_stdin_are_input_errors(engines, tmp_path):
    _, spark = engines
    with pytest.raises(InputError, match="no such file"):
        spark.aggregate([str(tmp_path / "nope.json")])
    with pytest.raises(InputError, match="not stdin"):
        spark.aggregate(["-"])
    with pytest.raises(InputError, match="no file"):
        spark.aggregate([f"file://{tmp_path}/*.nothing"])


def test_cli_observations_with_spark_engine(engines, tmp_path, capsys):
    from recommender.cli import main

    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    flows = [str(p) for p in HUBBLE[:4]]
    assert main(["observations", "--flows", *flows, "--json", str(out_a)]) == 0
    code = main(
        ["observations", "--flows", *flows, "--engine", "spark", "--spark-master", "local[2]",
         "--spark-conf", "spark.sql.shuffle.partitions=2", "--json", str(out_b)]
    )
    assert code == 0
    assert out_a.read_bytes() == out_b.read_bytes()


def test_strict_stops_at_the_first_reject(engines, tmp_path):
    _, spark = engines
    path = _damaged(tmp_path)
    with pytest.raises(InputError) as err:
        spark.aggregate([path], strict=True)
    assert f"{path}:3" in str(err.value) or err.value.line == 3


def test_copy_of_a_file_with_spaces_in_its_name(engines, tmp_path):
    src = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
    dst = tmp_path / "with space" / "flows #1.json"
    dst.parent.mkdir()
    shutil.copy(src, dst)
    result = _same_aggregate(engines, [str(dst)])
    assert result.observations["refs"].iloc[0][0].startswith(str(dst) + ":")


def test_parquet_written_by_either_engine_reads_the_same_in_both(engines, tmp_path):
    embedded, spark = engines
    paths = [_damaged(tmp_path), *HUBBLE[:3]]
    written = tmp_path / "embedded.parquet", tmp_path / "spark.parquet"
    embedded.convert(paths, str(written[0]))
    counts = spark.convert(paths, str(written[1]))
    assert counts["flow"] > 10
    assert counts["reject"] >= 5
    reference = embedded.aggregate(paths)
    for engine in engines:
        for out in written:
            result = engine.aggregate([str(out)])
            pd.testing.assert_frame_equal(reference.observations, result.observations)
            assert result.stats == reference.stats
    a, b = embedded.read_flows(paths).to_pandas(), spark.read_flows([str(written[0])]).to_pandas()
    pd.testing.assert_frame_equal(a, b)
