"""``netpol convert --to parquet`` and reading the Parquet back (embedded engine).

The Spark engine's side (it writes and reads the same layout) is in
``test_spark_engine.py``.
"""

from __future__ import annotations

import pandas as pd
import pytest

from recommender.cli.parser import main
from recommender.errors import InputError
from recommender.inventory.files import read_inventory
from recommender.observe.engines.embedded import EmbeddedEngine
from tests.conftest import FIXTURES, ROOT, SAMPLES

SAMPLE = ROOT / "data" / "sample"
DAMAGED = str(FIXTURES / "hubble" / "exporter-mixed.ndjson")
TRAIN = str(SAMPLE / "flows-train.jsonl.gz")


def test_parquet_gives_the_same_observations_refs_and_stats(tmp_path):
    out = tmp_path / "train.parquet"
    engine = EmbeddedEngine()
    counts = engine.convert([TRAIN, DAMAGED], str(out))
    assert counts["flow"] > 10000
    assert counts["reject"] > 0
    inventory = read_inventory([str(SAMPLE / "inventory.json")])
    a = engine.aggregate([TRAIN, DAMAGED], inventory)
    b = engine.aggregate([str(out)], inventory)
    pd.testing.assert_frame_equal(a.observations, b.observations)
    assert a.stats == b.stats
    assert a.stats.reject_samples  # with the original file:line


def test_parquet_flow_records_and_buckets_are_the_same(tmp_path):
    out = tmp_path / "mixed.parquet"
    engine = EmbeddedEngine()
    ten = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
    paths = [DAMAGED, str(ten)]
    engine.convert(paths, str(out))
    a, b = engine.read_flows(paths), engine.read_flows([str(out)])
    pd.testing.assert_frame_equal(a.to_pandas(), b.to_pandas())
    assert a.stats == b.stats
    x = engine.aggregate(paths, bucket="1h").observations
    y = engine.aggregate([str(out)], bucket="1h").observations
    pd.testing.assert_frame_equal(x, y)


def test_two_parquet_inputs_keep_their_files_apart(tmp_path):
    engine = EmbeddedEngine()
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    engine.convert([DAMAGED], str(first))
    engine.convert([TRAIN], str(second))
    a = engine.aggregate([DAMAGED, TRAIN])
    b = engine.aggregate([str(first), str(second)])
    pd.testing.assert_frame_equal(a.observations, b.observations)
    assert a.stats == b.stats


def test_cli_convert_refuses_overwrite_and_bad_names(tmp_path, capsys):
    out = tmp_path / "x.parquet"
    assert main(["convert", "--flows", DAMAGED, "--to", "parquet", "--out", str(out)]) == 0
    assert "lines (" in capsys.readouterr().err
    before = out.read_bytes()
    assert main(["convert", "--flows", TRAIN, "--to", "parquet", "--out", str(out)]) == 2
    assert out.read_bytes() == before
    assert main(["convert", "--flows", TRAIN, "--to", "parquet", "--out", str(out), "--force"]) == 0
    assert out.read_bytes() != before
    bad = str(tmp_path / "x.pq")
    assert main(["convert", "--flows", DAMAGED, "--to", "parquet", "--out", bad]) == 2
    err = capsys.readouterr().err
    assert "must end in .parquet" in err
    assert "Traceback" not in err


def test_mixing_json_and_parquet_or_foreign_parquet_is_one_clear_error(tmp_path, capsys):
    out = tmp_path / "x.parquet"
    EmbeddedEngine().convert([DAMAGED], str(out))
    assert main(["observations", "--flows", DAMAGED, str(out)]) == 2
    assert "cannot be mixed" in capsys.readouterr().err
    foreign = tmp_path / "foreign.parquet"
    pd.DataFrame({"a": [1, 2]}).to_parquet(foreign)
    with pytest.raises(InputError, match="not a Parquet file written by"):
        EmbeddedEngine().aggregate([str(foreign)])
    assert main(["observations", "--flows", str(foreign)]) == 2
    err = capsys.readouterr().err
    assert "foreign.parquet" in err
    assert len(err.strip().splitlines()) == 1


def test_convert_is_deterministic(tmp_path):
    engine = EmbeddedEngine()
    engine.convert([DAMAGED], str(tmp_path / "a.parquet"))
    engine.convert([DAMAGED], str(tmp_path / "b.parquet"))
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
