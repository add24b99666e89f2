"""The long-window observation store: appends, merges, windows, pruning, streams, errors."""

from __future__ import annotations

import argparse
import gzip
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from recommender.cli._args import add_store_arguments
from recommender.errors import InputError
from recommender.model import FLOW_COLUMNS, OBSERVATION_COLUMNS
from recommender.observe.factory import get_engine
from recommender.observe.store import (
    LineReader,
    StreamAppender,
    StreamOptions,
    append_observations,
    find_appended,
    fingerprint_file,
    observation_flow_batches,
    parse_duration,
    prune_store,
    read_store_buckets,
    read_store_observations,
    read_store_stats,
    store_flow_table,
    store_info,
)
from recommender.observe.store.options import (
    flow_table_from_args,
    observations_from_args,
)
from tests.conftest import ROOT

SAMPLE = ROOT / "data" / "sample" / "flows-train.jsonl.gz"
#: First lines of hour 01 and hour 02 in the sample (time-ordered Hubble lines).
HOUR_1, HOUR_2 = 1473, 3000
IDENTITY = [
    "src_kind",
    "src_cluster",
    "src_namespace",
    "src_workload",
    "src_labels",
    "src_ip",
    "dst_kind",
    "dst_cluster",
    "dst_namespace",
    "dst_workload",
    "dst_labels",
    "dst_ip",
    "port",
    "protocol",
]


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    """The first two hours of the bundled sample, as raw lines."""
    with gzip.open(SAMPLE, "rb") as fh:
        return fh.read().splitlines(keepends=True)[: HOUR_2 - 1]


@pytest.fixture(scope="module")
def hour_files(lines: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """Hour 00 and hour 01, split at the hour boundary."""
    d = tmp_path_factory.mktemp("hours")
    a, b = d / "h00.jsonl", d / "h01.jsonl"
    a.write_bytes(b"".join(lines[: HOUR_1 - 1]))
    b.write_bytes(b"".join(lines[HOUR_1 - 1 :]))
    return str(a), str(b)


@pytest.fixture(scope="module")
def both(hour_files: tuple[str, str]) -> pd.DataFrame:
    """One bucketed aggregation over both files: the reference."""
    return get_engine().aggregate(list(hour_files), bucket="1h").observations


@pytest.fixture(scope="module")
def store(hour_files: tuple[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store built by two appends, one per file."""
    path = str(tmp_path_factory.mktemp("store") / "s.duckdb")
    for f in hour_files:
        result = get_engine().aggregate([f], bucket="1h")
        append_observations(path, result.observations, result.stats, sources=[f])
    return path


def _tuples(frame: pd.DataFrame, cols: list[str]) -> list[tuple[object, ...]]:
    return [
        tuple(None if (not isinstance(v, (list, dict)) and pd.isna(v)) else v for v in row)
        for row in frame[cols].itertuples(index=False)
    ]


# -- appends ------------------------------------------------------------------


def test_two_appends_equal_one_aggregation_over_both_files(store: str, both: pd.DataFrame) -> None:
    got = read_store_buckets(store)
    pd.testing.assert_frame_equal(got, both)  # refs too: each bucket lies in one file
    assert got["connections"].sum() > 500


def test_merged_observations_sum_the_buckets(store: str, both: pd.DataFrame) -> None:
    merged = read_store_observations(store)
    assert list(merged.columns) == list(OBSERVATION_COLUMNS)
    expected: dict[Any, Any] = {}
    for row in both.to_dict("records"):
        key = tuple(
            None if not isinstance(row[c], list) and pd.isna(row[c]) else row[c] for c in IDENTITY
        )
        e = expected.setdefault(
            key,
            {
                "connections": 0,
                "first": row["first_seen"],
                "last": row["last_seen"],
                "names": set(),
                "v": {},
            },
        )
        e["connections"] += row["connections"]
        e["first"] = min(e["first"], row["first_seen"])
        e["last"] = max(e["last"], row["last_seen"])
        e["names"] |= set(row["dst_names"])
        for k, v in row["verdicts"].items():
            e["v"][k] = e["v"].get(k, 0) + v
    assert len(merged) == len(expected)
    assert len(merged) < len(both)  # buckets really were merged
    for row, key in zip(merged.to_dict("records"), _tuples(merged, IDENTITY), strict=True):
        e = expected[key]
        assert row["connections"] == e["connections"]
        assert (row["first_seen"], row["last_seen"]) == (e["first"], e["last"])
        assert row["dst_names"] == sorted(e["names"])
        assert row["verdicts"] == e["v"]
        assert 1 <= len(row["refs"]) <= 3


def test_merged_observations_have_the_aggregate_identities(
    store: str, hour_files: tuple[str, str]
) -> None:
    """Without buckets the aggregation counts a connection across hours once; identities match."""
    plain = get_engine().aggregate(list(hour_files)).observations
    merged = read_store_observations(store)
    assert _tuples(merged, IDENTITY) == _tuples(plain, IDENTITY)
    assert (merged["connections"].to_numpy() >= plain["connections"].to_numpy()).all()
    assert merged["first_seen"].equals(plain["first_seen"])
    assert merged.dtypes.to_dict() == plain.dtypes.to_dict()


def test_buckets_are_whole_hours(store: str) -> None:
    got = read_store_buckets(store)
    assert (got["bucket"] == got["bucket"].dt.floor("h")).all()
    assert (got["first_seen"] >= got["bucket"]).all()
    assert (got["first_seen"] < got["bucket"] + pd.Timedelta(hours=1)).all()
    assert sorted(got["bucket"].dt.hour.unique()) == [0, 1]


def test_ingest_stats_are_recorded_per_append(store: str, hour_files: tuple[str, str]) -> None:
    a, b = (get_engine().aggregate([f]).stats for f in hour_files)
    stats = read_store_stats(store)
    assert stats.lines == a.lines + b.lines == HOUR_2 - 1
    assert stats.lost_events == a.lost_events + b.lost_events
    assert stats.rejected == a.rejected + b.rejected > 0
    info = store_info(store)
    assert (info.rows, info.buckets, info.appends) == (len(read_store_buckets(store)), 2, 2)
    assert "2 hourly buckets" in info.format()
    # windows select whole appends by the buckets they cover
    assert read_store_stats(store, until="2026-11-02T01:00:00Z").lines == a.lines


def test_duplicate_files_are_recognised(
    store: str, hour_files: tuple[str, str], tmp_path: Path
) -> None:
    copy = tmp_path / "copy.jsonl"
    copy.write_bytes(Path(hour_files[1]).read_bytes())
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"{}\n")
    found = find_appended(store, [fingerprint_file(str(copy)), fingerprint_file(str(other))])
    assert found == []  # the store fixture was built without fingerprints
    result = get_engine().aggregate([str(other)], bucket="1h")
    path = str(tmp_path / "fp.duckdb")
    append_observations(
        path, result.observations, result.stats, files=[fingerprint_file(str(other))]
    )
    assert find_appended(path, [fingerprint_file(str(copy)), fingerprint_file(str(other))]) == [
        (str(other), 1)
    ]


# -- windows and retention ----------------------------------------------------


@pytest.mark.parametrize(
    ("since", "until", "hours"),
    [
        ("2026-11-02T01:00:00Z", None, [1]),
        ("2026-11-02T00:30:00Z", None, [0, 1]),  # a bucket overlapping the window is included
        (None, "2026-11-02T01:00:00Z", [0]),
        ("2026-11-02T01:00:00+01:00", "2026-11-02T01:00:00Z", [0]),  # 00:00Z to 01:00Z
        ("1h", None, [0, 1]),  # durations count back from the newest last_seen (01:5x)
        ("30m", None, [1]),
        ("7d", None, [0, 1]),
        (pd.Timestamp("2026-11-02T01:00:00"), None, [1]),
    ],
    ids=[
        "since-hour",
        "since-mid-hour",
        "until",
        "both",
        "1h-back",
        "30m-back",
        "7d-back",
        "timestamp",
    ],
)
def test_since_until(store: str, since: object, until: object, hours: list[int]) -> None:
    got = read_store_buckets(store, since=since, until=until)
    assert sorted(got["bucket"].dt.hour.unique()) == hours
    merged = read_store_observations(store, since=since, until=until)
    assert merged["connections"].sum() == got["connections"].sum()


def test_bad_window_is_an_input_error(store: str) -> None:
    with pytest.raises(InputError, match="bad time"):
        read_store_observations(store, since="last tuesday")
    with pytest.raises(InputError, match="bad duration"):
        parse_duration("0d")


def test_retain_prunes_old_buckets(hour_files: tuple[str, str], tmp_path: Path) -> None:
    path = str(tmp_path / "r.duckdb")
    result = get_engine().aggregate(list(hour_files), bucket="1h")
    append_observations(path, result.observations, result.stats)
    newest = result.observations["last_seen"].max()
    pruned = prune_store(path, "30m")
    assert pruned.cutoff == newest - pd.Timedelta(minutes=30)
    kept = read_store_buckets(path)
    old = result.observations["bucket"] + pd.Timedelta(hours=1) <= pruned.cutoff
    assert pruned.rows == int(old.sum()) > 0
    assert pruned.buckets == 1
    assert sorted(kept["bucket"].dt.hour.unique()) == [1]
    assert len(kept) == int((~old).sum())
    assert prune_store(path, "30m").rows == 0  # idempotent
    assert store_info(path).buckets == 1


# -- streams --------------------------------------------------------------------


def _stream(
    lines: list[bytes], path: str, max_lines: int, overlap: int, piece: int = 37
) -> StreamAppender:
    appender = StreamAppender(
        path, get_engine(), None, StreamOptions(max_lines=max_lines, overlap_lines=overlap)
    )
    try:
        for i in range(0, len(lines), piece):
            appender.add_lines(lines[i : i + piece])
            if appender.pending >= max_lines:
                appender.checkpoint()
        appender.checkpoint()
    finally:
        appender.close()
    return appender


def _as_stdin_refs(frame: pd.DataFrame, path: str) -> pd.DataFrame:
    out = frame.copy()
    out["refs"] = [[re.sub(rf"^{re.escape(path)}:", "-:", r) for r in refs] for refs in out["refs"]]
    return out


def test_stream_with_checkpoints_equals_one_aggregation(lines: list[bytes], tmp_path: Path) -> None:
    """Checkpoints cut connections apart; the overlap correction counts each once."""
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"".join(lines))
    expected = _as_stdin_refs(
        get_engine().aggregate([str(whole)], bucket="1h").observations, str(whole)
    )
    path = str(tmp_path / "stream.duckdb")
    appender = _stream(lines, path, max_lines=1000, overlap=1000)
    assert appender.checkpoints == 3
    pd.testing.assert_frame_equal(read_store_buckets(path), expected)
    stats = read_store_stats(path)
    assert stats.lines == len(lines)
    assert stats.rejected == get_engine().aggregate([str(whole)]).stats.rejected
    assert all(s.startswith("-:") for s in stats.reject_samples)
    assert store_info(path).appends == 1  # one session, several checkpoints


def test_stream_without_overlap_counts_straddling_connections_twice(
    lines: list[bytes], tmp_path: Path
) -> None:
    """Why the overlap exists: chunks aggregated alone over-count at the cuts."""
    whole = tmp_path / "whole.jsonl"
    whole.write_bytes(b"".join(lines))
    exact = get_engine().aggregate([str(whole)], bucket="1h").observations["connections"].sum()
    path = str(tmp_path / "naive.duckdb")
    _stream(lines, path, max_lines=500, overlap=0, piece=50)
    assert read_store_buckets(path)["connections"].sum() > exact


def test_line_reader_keeps_partial_lines_and_gunzips() -> None:
    r = LineReader()
    assert r.feed(b"a") == []
    assert r.feed(b"b\r\nc") == [b"ab\r\n"]
    assert r.finish() == [b"c\n"]
    payload = b"".join(f'{{"n":{i}}}\n'.encode() for i in range(100))
    gz = gzip.compress(payload[:500]) + gzip.compress(payload[500:])  # two members
    r = LineReader()
    out = []
    for i in range(0, len(gz), 7):
        out += r.feed(gz[i : i + 7])
    out += r.finish()
    assert b"".join(out) == payload


# -- shadow: the store as flow records ----------------------------------------


def test_store_flow_table_weights_records_by_connections(store: str) -> None:
    obs = read_store_observations(store)
    table = store_flow_table(store)
    frames = list(table)
    flows = pd.concat(frames, ignore_index=True)
    assert all(list(f.columns) == list(FLOW_COLUMNS) for f in frames)
    assert flows["conn_count"].sum() == obs["connections"].sum()
    policy = obs["verdicts"].map(lambda v: v["policy_denied"]).sum()
    assert flows.loc[flows["is_policy_drop"], "conn_count"].sum() == policy
    assert (flows["is_reply"] == False).all()  # noqa: E712
    assert flows["raw_ref"].notna().all()
    assert table.stats.lines == HOUR_2 - 1
    first = obs.iloc[0]
    assert flows.iloc[0]["raw_ref"] == first["refs"][0]


def test_store_flow_records_resolve_pods_by_workload() -> None:
    obs = pd.DataFrame(
        [
            {
                "src_kind": "pod",
                "src_cluster": None,
                "src_namespace": "shop",
                "src_workload": "deployment/web",
                "src_labels": '{"app":"web"}',
                "src_ip": None,
                "dst_kind": "world",
                "dst_cluster": None,
                "dst_namespace": None,
                "dst_workload": "world",
                "dst_labels": None,
                "dst_ip": "2001:db8::1",
                "dst_names": ["api.example.com"],
                "port": 443,
                "protocol": "TCP",
                "connections": 5,
                "first_seen": pd.Timestamp("2026-11-02"),
                "last_seen": pd.Timestamp("2026-11-03"),
                "verdicts": {
                    "allowed": 3,
                    "denied": 2,
                    "audit": 0,
                    "error": 0,
                    "unknown": 0,
                    "policy_denied": 1,
                },
                "refs": ["f:1", "f:9"],
            }
        ]
    )
    flows = next(observation_flow_batches(obs))
    assert flows[["verdict", "is_policy_drop", "conn_count"]].values.tolist() == [
        ["allowed", False, 3],
        ["denied", True, 1],
        ["denied", False, 1],
    ]
    row = flows.iloc[0]
    assert (row["src_workload_kind"], row["src_workload_name"]) == ("Deployment", "web")
    assert (row["dst_port"], row["ip_version"], row["raw_ref"]) == (443, 6, "f:1")


# -- bad input --------------------------------------------------------------------


def test_missing_store(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such store"):
        read_store_observations(str(tmp_path / "nope.duckdb"))


def test_corrupt_store_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.duckdb"
    bad.write_bytes(b"this is not a database\n" * 1000)
    with pytest.raises(InputError, match="not a readable netpol store") as info:
        read_store_observations(str(bad))
    assert "\n" not in str(info.value)


def test_foreign_duckdb_file(tmp_path: Path) -> None:
    other = tmp_path / "other.duckdb"
    con = duckdb.connect(str(other))
    con.execute("CREATE TABLE t (x INTEGER)")
    con.close()
    with pytest.raises(InputError, match="not a netpol store"):
        store_info(str(other))


# -- --store for recommend / shadow / tighten ---------------------------------------


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flows", nargs="+")
    add_store_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--flows", "f", "--store", "s"], "either --flows or --store"),
        ([], "no flow input given"),
        (["--flows", "f", "--since", "7d"], "need --store"),
    ],
    ids=["both", "neither", "since-without-store"],
)
def test_store_options_are_checked(argv: list[str], message: str) -> None:
    with pytest.raises(InputError, match=message):
        observations_from_args(_args(*argv))


def test_store_options_read_the_store(store: str) -> None:
    result = observations_from_args(_args("--store", store, "--since", "30m"))
    pd.testing.assert_frame_equal(result.observations, read_store_observations(store, "30m"))
    assert result.stats.lines == read_store_stats(store, "30m").lines
    table = flow_table_from_args(_args("--store", store))
    assert (
        sum(int(b["conn_count"].sum()) for b in table)
        == read_store_observations(store)["connections"].sum()
    )


def test_recommend_takes_store_observations_unchanged(
    store: str, hour_files: tuple[str, str]
) -> None:
    """Same policies from the store as from one aggregation (evidence counts aside)."""
    from recommender.inventory.files import read_inventory
    from recommender.recommend.pipeline import recommend

    inventory = read_inventory([str(ROOT / "data" / "sample" / "inventory.json")])
    direct = recommend(get_engine().aggregate(list(hour_files), inventory).observations, inventory)
    stored = recommend(read_store_observations(store), inventory)
    strip = [replace(p, annotations=()) for p in direct.policies]
    assert strip == [replace(p, annotations=()) for p in stored.policies]
    assert len(strip) > 5
