"""GCP VPC flow logs: the real sample with hand-checked rows, GKE details, pitfalls, fuzz.

Expected values are read off tests/samples/gcp-vpc-flow-logs by hand (FORMATS.md 2.6).
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.flows import gcp, sniff
from tests.conftest import SAMPLES
from tests.vpc_support import observe, read_rows, write

GCP = SAMPLES / "gcp-vpc-flow-logs" / "elastic-integrations-vpcflow-logentries.ndjson"


def test_sample_rows():
    """Both records are a server's packets to its client (5601 and 9200 are the
    listeners, 33478/33970 ephemeral): each is oriented client -> server."""
    one, two = read_rows(gcp, GCP)
    assert (one["src_ip"], one["src_port"], one["dst_ip"], one["server_port"]) == (
        "203.0.113.12",
        33478,
        "10.87.40.76",
        5601,
    )
    assert (one["is_reply"], one["orientation"], one["protocol"]) == (True, "inferred", "TCP")
    # reporter SRC = kibana, the packet's source, which is the server.
    assert (one["reporter"], one["observer"]) == ("dst", "kibana")
    assert one["time_start"] == datetime(2019, 6, 14, 3, 45, 37, 186193)
    assert one["time_end"] == datetime(2019, 6, 14, 3, 45, 37, 301953)
    assert (two["src_ip"], two["src_port"], two["dst_ip"], two["server_port"]) == (
        "10.87.40.76",
        33970,
        "198.51.100.248",
        9200,
    )
    # reporter DEST = kibana, the packet's destination, which is the client.
    assert (two["is_reply"], two["reporter"], two["observer"]) == (True, "src", "kibana")
    assert {r["verdict"] for r in (one, two)} == {"allowed"}
    assert {r["source_format"] for r in (one, two)} == {"gcp_vpc"}


def _entry(reporter, src, dst, sport, dport, **extra):
    payload = {
        "connection": {
            "src_ip": src,
            "src_port": sport,
            "dest_ip": dst,
            "dest_port": dport,
            "protocol": 6,
        },
        "reporter": reporter,
        "start_time": "2024-05-01T10:00:00Z",
        "end_time": "2024-05-01T10:00:05Z",
        "bytes_sent": "100",
        **extra,
    }
    return json.dumps(
        {"jsonPayload": payload, "logName": "p/logs/compute.googleapis.com%2Fvpc_flows"}
    )


GKE_WEB = {
    "cluster": {"cluster_name": "prod", "cluster_location": "us-east1"},
    "pod": {
        "pod_name": "web-5d8f7c9b6d-abcde",
        "pod_namespace": "shop",
        "pod_workload": {"workload_name": "web", "workload_type": "DEPLOYMENT"},
    },
}
GKE_DB = {
    "pod": {"pod_name": "db-0", "pod_namespace": "shop"},
    "service": [{"service_name": "db", "service_namespace": "shop"}],
}


def test_src_and_dest_reports_of_one_connection_count_once(tmp_path):
    lines = [
        _entry("SRC", "10.4.0.7", "10.4.1.9", 41000, 5432, src_gke_details=GKE_WEB),
        _entry("DEST", "10.4.0.7", "10.4.1.9", 41000, 5432, dest_gke_details=GKE_DB),
    ]
    path = write(tmp_path, "gke.ndjson", "\n".join(lines) + "\n")
    rows = read_rows(gcp, path)
    assert [r["reporter"] for r in rows] == ["src", "dst"]
    e = json.loads(rows[0]["src_ep"]["e"])
    assert (e["namespace"], e["pod_name"], e["cluster_name"]) == (
        "shop",
        "web-5d8f7c9b6d-abcde",
        "prod",
    )
    assert e["workloads"] == [{"name": "web", "kind": "Deployment"}]
    assert (rows[1]["dst_ep"]["service_namespace"], rows[1]["dst_ep"]["service_name"]) == (
        "shop",
        "db",
    )
    result = observe([path])
    assert result.stats.connections == 1
    obs = result.observations
    assert len(obs) == 1
    assert (obs.iloc[0]["src_namespace"], obs.iloc[0]["src_workload"]) == ("shop", "deployment/web")
    assert (obs.iloc[0]["dst_workload"], obs.iloc[0]["port"]) == ("pod/db-0", 5432)


def test_bare_payload_and_string_numbers(tmp_path):
    payload = json.loads(_entry("SRC", "10.0.0.1", "10.0.0.2", "40001", "443"))["jsonPayload"]
    payload["connection"]["protocol"] = "17"  # int64 fields arrive as JSON strings
    rows = read_rows(gcp, write(tmp_path, "bare.ndjson", json.dumps(payload) + "\n"))
    assert [(r["line_kind"], r["protocol"], r["src_port"], r["server_port"]) for r in rows] == [
        ("flow", "UDP", 40001, 443)
    ]


def test_gateway_reporter_is_no_end(tmp_path):
    line = _entry("SRC_GATEWAY", "10.0.0.1", "10.0.0.2", 40001, 443)
    rows = read_rows(gcp, write(tmp_path, "gw.ndjson", line + "\n"))
    assert (rows[0]["reporter"], rows[0]["observer"]) == ("unknown", None)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"jsonPayload": {"reporter": "SRC"}}', "JSON object is not a GCP VPC flow log entry"),
        (_entry("SRC", "10.0.0.1", "10.0.0.2", 70000, 443), "invalid src_port: 70000"),
        (_entry("NOBODY", "10.0.0.1", "10.0.0.2", 1, 443), "unknown reporter NOBODY"),
        (_entry("SRC", "10.0.0.1", "10.0.0.2", 1, 443, start_time="yesterday"), "missing or"),
    ],
    ids=["not-json", "array", "no-connection", "port", "reporter", "time"],
)
def test_bad_lines_are_counted_rejects(tmp_path, line, reason):
    rows = read_rows(gcp, write(tmp_path, "bad.ndjson", line + "\n\n"))
    assert [r["line_kind"] for r in rows] == ["reject", "blank"]
    assert rows[0]["reject_detail"].startswith(reason)


def test_sniff():
    assert sniff.is_gcp(GCP.read_text().splitlines()[0])
    assert not sniff.is_gcp('{"flow": {"time": "2024-01-01T00:00:00Z"}}')


_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(["SRC", "DEST", "6", "::1", "10.0.0.1", "x"]),
)
_CONN = st.fixed_dictionaries(
    {},
    optional={k: _SCALAR for k in ("src_ip", "dest_ip", "src_port", "dest_port", "protocol")},
)
_PAYLOAD = st.fixed_dictionaries(
    {},
    optional={
        "connection": st.one_of(_CONN, _SCALAR),
        "reporter": _SCALAR,
        "start_time": st.one_of(_SCALAR, st.just("2024-01-01T00:00:00Z")),
        "src_gke_details": st.one_of(_SCALAR, st.just(GKE_WEB)),
    },
)
_LINE = st.one_of(
    _PAYLOAD.map(lambda p: json.dumps({"jsonPayload": p})),
    st.text(max_size=40).filter(lambda t: "\n" not in t and "\r" not in t),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(lines=st.lists(_LINE, min_size=1, max_size=5))
def test_fuzz_never_raises(tmp_path, lines):
    rows = read_rows(gcp, write(tmp_path, "fuzz.ndjson", "\n".join(lines) + "\n"))
    assert len(rows) == len(lines)
    assert {r["line_kind"] for r in rows} <= {"flow", "reject", "blank"}
    for row in rows:
        assert (row["line_kind"] == "reject") == (row["reject_detail"] is not None)
