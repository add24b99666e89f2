"""IP-only (VPC) flow ends attributed to pods by IP and time; undecided ends stay IP peers."""

from __future__ import annotations

from datetime import datetime

import pytest

from recommender.inventory.files import read_inventory
from recommender.inventory.ip_attribution import build_ip_spans, parse_time
from recommender.model import Inventory, Pod
from tests.conftest import FIXTURES, SAMPLES
from tests.vpc_support import observe, write

INV = FIXTURES / "vpc" / "inventory.json"
V5 = SAMPLES / "aws-vpc-flow-logs" / "custom-v5-traffic-path-doc-examples.log"
TCP = SAMPLES / "aws-vpc-flow-logs" / "custom-v3-tcp-flags-doc-examples.log"


def _pod(name, created=None, deleted=None, phase="Running", ip="10.0.0.5"):
    return Pod("shop", name, ips=(ip,), created=created, deleted=deleted, phase=phase)


def test_a_pod_holds_its_ip_until_the_next_pod_with_that_ip_is_created():
    old = _pod("old", created="2024-05-01T10:00:00Z", phase="Failed")
    new = _pod("new", created="2024-05-01T12:00:00Z")
    gone = _pod("gone", created="2024-05-01T08:00:00Z", deleted="2024-05-01T09:00:00Z")
    spans = build_ip_spans(Inventory(pods=(new, old, gone)))
    assert [(s.e.split('"')[-2], s.valid_from, s.valid_to, s.live) for s in spans] == [
        ("gone", datetime(2024, 5, 1, 8), datetime(2024, 5, 1, 9), True),
        ("old", datetime(2024, 5, 1, 10), datetime(2024, 5, 1, 12), False),
        ("new", datetime(2024, 5, 1, 12), None, True),
    ]


def test_no_creation_time_means_since_ever_and_host_network_pods_are_left_out():
    """Decision: without creationTimestamp a pod may have held the IP at any time."""
    a, b = _pod("a"), _pod("b")
    host = Pod("kube-system", "proxy", ips=("10.0.0.10",), host_network=True)
    spans = build_ip_spans(Inventory(pods=(a, b, host)))
    assert [(s.valid_from, s.valid_to) for s in spans] == [(None, None), (None, None)]


def test_parse_time_is_utc():
    assert parse_time("2024-05-01T12:00:00+02:00") == datetime(2024, 5, 1, 10)
    assert parse_time("nonsense") is None


def _v5_at(tmp_path, start, end):
    text = V5.read_text().replace("1616729292", str(start)).replace("1616729349", str(end))
    return write(tmp_path, "v5.log", text)


# Inventory: 10.0.0.71 was shop/web-old (Failed) from 2021-03-26T00:00Z, then shop/web-new
# from 03:00Z (1616727600). The sample's window is 03:28:12-03:29:09.
@pytest.mark.parametrize(
    ("start", "end", "kind", "workload"),
    [
        (1616729292, 1616729349, "pod", "pod/web-new"),
        (1616720000, 1616729349, "unknown", "unknown/ambiguous-ip-at-flow-time"),
        (1616720000, 1616720100, "unknown", "unknown/ip-of-finished-pod"),
        (1616700000, 1616700100, "unknown", "unknown/ip-not-a-pod-at-flow-time"),
    ],
    ids=["new-pod", "window-straddles-both", "finished-pod", "before-any-pod"],
)
def test_reused_ip_is_attributed_by_flow_time(tmp_path, start, end, kind, workload):
    result = observe([_v5_at(tmp_path, start, end)], read_inventory([INV]))
    (row,) = result.observations.to_dict("records")
    assert (row["src_kind"], row["src_workload"]) == (kind, workload)
    if kind == "pod":
        assert row["src_labels"] == '{"app":"web"}'
    else:  # stays an IP peer, never the pod the IP belongs to now
        assert row["src_ip"] == "10.0.0.71"
        assert result.stats.unknown_reasons[workload.split("/")[1]] == 1


def test_iperf_sample_with_inventory(tmp_path):
    """Three connections to the iperf server (stable labels only), the client unknown."""
    result = observe([TCP], read_inventory([INV]))
    (row,) = result.observations.to_dict("records")
    assert (row["dst_namespace"], row["dst_workload"], row["dst_labels"]) == (
        "perf",
        "deployment/iperf-server",
        '{"app":"iperf"}',
    )
    assert (row["port"], row["protocol"], row["connections"]) == (5001, "TCP", 3)
    assert (row["src_kind"], row["src_ip"]) == ("unknown", "52.213.180.42")
    assert result.stats.connections == 3
    assert result.stats.non_flow == {"header": 1}


def test_node_ip_is_a_host(tmp_path):
    """v2 default format: srcaddr of pod traffic is the node's primary IP (10.0.0.10)."""
    line = "2 1 eni-1 10.0.0.10 10.0.0.62 40001 5001 6 1 1 1566848875 1566848933 ACCEPT OK\n"
    result = observe([write(tmp_path, "v2.log", line)], read_inventory([INV]))
    (row,) = result.observations.to_dict("records")
    assert (row["src_kind"], row["src_workload"]) == ("host", "node/ip-10-0-0-10")
    assert row["dst_workload"] == "deployment/iperf-server"


def test_without_inventory_the_ends_are_unknown_ip_peers():
    result = observe([TCP])
    (row,) = result.observations.to_dict("records")
    assert (row["src_kind"], row["dst_kind"], row["dst_ip"]) == ("unknown", "unknown", "10.0.0.62")


@pytest.mark.parametrize(
    ("path", "fmt"),
    [
        (SAMPLES / "aws-vpc-flow-logs" / "default-v2-doc-examples.log", "aws_vpc"),
        (
            SAMPLES / "gcp-vpc-flow-logs" / "elastic-integrations-vpcflow-logentries.ndjson",
            "gcp_vpc",
        ),
    ],
    ids=["aws", "gcp"],
)
def test_detected_and_refused_by_the_spark_engine(path, fmt):
    from recommender.errors import InputError
    from recommender.flows import formats

    assigned = formats.assign([str(path)])
    assert [f.name for f in assigned] == [fmt]
    with pytest.raises(InputError) as info:
        formats.require_spark([str(path)], assigned)
    assert f"the Spark engine does not read the {fmt} format yet" in str(info.value)


def _cli(*args):
    import subprocess
    import sys

    from tests.conftest import ROOT

    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=ROOT
    )


def test_cli_observations_end_to_end_aws(tmp_path):
    out = tmp_path / "obs.json"
    run = _cli("observations", "--flows", str(TCP), "--inventory", str(INV), "--json", str(out))
    assert run.returncode == 0, run.stderr
    import json

    doc = json.loads(out.read_text())
    (row,) = doc["observations"]
    assert (row["dst_namespace"], row["dst_workload"], row["port"], row["connections"]) == (
        "perf",
        "deployment/iperf-server",
        5001,
        3,
    )
    assert (row["src_kind"], row["src_ip"]) == ("unknown", "52.213.180.42")


def test_cli_gcp_sample_holds_only_replies():
    """Both sample records are a server's replies: no connection request, so nothing to
    learn from (exit 2, one line) rather than a rule for an ephemeral port."""
    gcp_sample = SAMPLES / "gcp-vpc-flow-logs" / "elastic-integrations-vpcflow-logentries.ndjson"
    run = _cli("observations", "--flows", str(gcp_sample), "--inventory", str(INV))
    assert run.returncode == 2
    assert "2 flow records, none a connection request (2 replies)" in run.stderr
    assert "Traceback" not in run.stderr
