"""The Spark engine's inputs: FlowRecords in input order, Parquet, globs and URIs,
damaged gzip, stdin, the command line; always against the embedded engine.
"""

from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest

from recommender.errors import InputError
from recommender.inventory.files import read_inventory
from tests.conftest import SAMPLES
from tests.spark_support import (
    HUBBLE,
    SAMPLE,
    damaged_file,
    same_aggregate,
)


def test_flow_records_identical_in_input_order(engines, tmp_path):
    embedded, spark = engines
    paths = [damaged_file(tmp_path), *HUBBLE[:2]]
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
    from recommender.cli.parser import main

    out_a, out_b = tmp_path / "a.json", tmp_path / "b.json"
    flows = [str(p) for p in HUBBLE[:4]]
    assert main(["observations", "--flows", *flows, "--json", str(out_a)]) == 0
    code = main(
        [
            "observations",
            "--flows",
            *flows,
            "--engine",
            "spark",
            "--spark-master",
            "local[2]",
            "--spark-conf",
            "spark.sql.shuffle.partitions=2",
            "--json",
            str(out_b),
        ]
    )
    assert code == 0
    assert out_a.read_bytes() == out_b.read_bytes()


def test_strict_stops_at_the_first_reject(engines, tmp_path):
    _, spark = engines
    path = damaged_file(tmp_path)
    with pytest.raises(InputError) as err:
        spark.aggregate([path], strict=True)
    assert f"{path}:3" in str(err.value) or err.value.line == 3


def test_copy_of_a_file_with_spaces_in_its_name(engines, tmp_path):
    src = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
    dst = tmp_path / "with space" / "flows #1.json"
    dst.parent.mkdir()
    shutil.copy(src, dst)
    result = same_aggregate(engines, [str(dst)])
    assert result.observations["refs"].iloc[0][0].startswith(str(dst) + ":")


def test_parquet_written_by_either_engine_reads_the_same_in_both(engines, tmp_path):
    embedded, spark = engines
    paths = [damaged_file(tmp_path), *HUBBLE[:3]]
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
