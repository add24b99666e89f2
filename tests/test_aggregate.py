"""Aggregation: connections not lines, best identity per connection, verdicts, buckets."""

from __future__ import annotations

import pytest

from recommender.labels import decode_labels
from recommender.model import OBSERVATION_COLUMNS
from recommender.observe.engines.aggregate import bucket_interval
from tests.test_hubble import ENGINE, POD_A, POD_B, make_flow, write_lines

REMOTE_NODE = {"identity": 6, "labels": ["reserved:remote-node"]}


def one_connection(sport=40000, t="2026-01-01T00:00:00Z", verdict="FORWARDED", **kw):
    """One TCP connection as Hubble shows it on two nodes (FORMATS.md 1.4)."""
    base = {"sport": sport, "time": t, "verdict": verdict, **kw}
    return [
        make_flow(**base, event_type={"type": 5}, traffic_direction="EGRESS", is_reply=False),
        make_flow(
            **base, trace_observation_point="TO_OVERLAY", traffic_direction="EGRESS", is_reply=False
        ),
        make_flow(
            **base,
            src=REMOTE_NODE,
            trace_observation_point="TO_ENDPOINT",
            traffic_direction="INGRESS",
            is_reply=False,
            node_name="node-2",
        ),
        make_flow(
            **base,
            event_type={"type": 5},
            traffic_direction="INGRESS",
            is_reply=False,
            node_name="node-2",
        ),
        make_flow(
            src=POD_B,
            dst=POD_A,
            sip="10.0.0.2",
            dip="10.0.0.1",
            sport=5432,
            dport=sport,
            time=t,
            verdict=verdict,
            is_reply=True,
            traffic_direction="INGRESS",
        ),
    ]


@pytest.fixture(scope="module")
def dedup_result(tmp_path_factory):
    path = tmp_path_factory.mktemp("agg") / "flows.json"
    lines = one_connection(40000) + one_connection(40001, t="2026-01-01T01:30:00Z")
    lines += [
        make_flow(
            sport=40002,
            verdict="DROPPED",
            drop_reason_desc="POLICY_DENIED",
            time="2026-01-01T02:00:00Z",
        ),
        make_flow(
            sport=40002,
            verdict="DROPPED",
            drop_reason_desc="POLICY_DENIED",
            time="2026-01-01T02:00:01Z",
        ),
    ]  # a SYN retry: same connection
    write_lines(path, lines)
    return str(path), ENGINE.aggregate([str(path)])


def test_connections_not_lines(dedup_result):
    path, result = dedup_result
    obs = result.observations
    assert list(obs.columns) == list(OBSERVATION_COLUMNS)
    assert len(obs) == 1, "the remote-node record must not split off a host identity"
    row = obs.iloc[0]
    assert row["connections"] == 3
    assert result.stats.flow_records == 12
    assert result.stats.replies == 2
    assert result.stats.connections == 3
    assert (row["src_workload"], row["dst_workload"]) == ("deployment/web", "statefulset/db")
    assert decode_labels(row["src_labels"]) == {"app": "web"}
    assert row["src_ip"] is None
    assert row["port"] == 5432


def test_verdict_counts_are_per_connection(dedup_result):
    _, result = dedup_result
    verdicts = result.observations.iloc[0]["verdicts"]
    assert verdicts == {
        "allowed": 2,
        "denied": 1,
        "audit": 0,
        "error": 0,
        "unknown": 0,
        "policy_denied": 1,
    }
    assert result.stats.policy_drops == 1


def test_first_last_seen_and_refs(dedup_result):
    path, result = dedup_result
    row = result.observations.iloc[0]
    assert str(row["first_seen"]) == "2026-01-01 00:00:00"
    assert str(row["last_seen"]) == "2026-01-01 02:00:01"
    assert row["refs"] == [f"{path}:1", f"{path}:6", f"{path}:11"]


def test_read_flows_conn_count_agrees_with_aggregate(dedup_result):
    path, result = dedup_result
    table = ENGINE.read_flows([path])
    frame = table.to_pandas()
    assert int(frame["conn_count"].sum()) == result.stats.connections
    assert list(frame["conn_count"]) == [1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0]


def test_buckets_split_counts(dedup_result):
    path, _ = dedup_result
    obs = ENGINE.aggregate([path], bucket="1h").observations
    assert list(obs.columns) == ["bucket", *OBSERVATION_COLUMNS]
    assert [(str(b), c) for b, c in zip(obs["bucket"], obs["connections"], strict=True)] == [
        ("2026-01-01 00:00:00", 1),
        ("2026-01-01 01:00:00", 1),
        ("2026-01-01 02:00:00", 1),
    ]


def test_same_input_same_output(dedup_result, tmp_path):
    path, result = dedup_result
    again = ENGINE.aggregate([path]).observations
    assert again.to_json(date_format="iso") == result.observations.to_json(date_format="iso")


def test_world_peers_keep_ip_and_names(tmp_path):
    world = {"identity": 16777219, "labels": ["cidr:1.2.3.4/32", "reserved:world"]}
    lines = [
        make_flow(
            dst=world,
            dip="1.2.3.4",
            dport=443,
            sport=40000 + i,
            destination_names=["a.example"] if i else ["b.example", "a.example"],
        )
        for i in range(3)
    ]
    lines.append(make_flow(dst=world, dip="5.6.7.8", dport=443, sport=41000))
    obs = ENGINE.aggregate([write_lines(tmp_path / "w.json", lines)]).observations
    assert list(obs["dst_ip"]) == ["1.2.3.4", "5.6.7.8"]
    assert list(obs["connections"]) == [3, 1]
    assert obs.iloc[0]["dst_names"] == ["a.example", "b.example"]
    assert obs.iloc[1]["dst_names"] == []


def test_reply_only_connection_yields_no_observation(tmp_path):
    reply = make_flow(
        src=POD_B, dst=POD_A, sip="10.0.0.2", dip="10.0.0.1", sport=5432, dport=40000, is_reply=True
    )
    result = ENGINE.aggregate([write_lines(tmp_path / "r.json", [reply])])
    assert result.observations.empty
    assert (result.stats.replies, result.stats.reply_only) == (1, 1)


@pytest.mark.parametrize("bad", ["0h", "1w", "soon", ""])
def test_bucket_spec_is_validated(bad):
    with pytest.raises(ValueError, match="bucket"):
        bucket_interval(bad)
