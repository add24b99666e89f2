"""IP resolution from an inventory: index rules and their effect on flows."""

from __future__ import annotations

import pytest

from recommender.labels import decode_labels
from recommender.model import Endpoint, EndpointSlice, Inventory, Node, Pod, Service
from recommender.semantics.resolve import build_ip_index, build_pod_index
from tests.test_hubble import ENGINE, POD_A, make_flow, write_lines

INV = Inventory(
    nodes=(Node("node-1", addresses=("192.168.0.1",)), Node("cp-1", addresses=("192.168.0.9",))),
    pods=(
        Pod(
            "shop",
            "db-0",
            {"app": "db", "statefulset.kubernetes.io/pod-name": "db-0"},
            owner_kind="StatefulSet",
            owner_name="db",
            ips=("10.0.0.2",),
            node="node-1",
            host_ip="192.168.0.1",
            phase="Running",
        ),
        Pod("shop", "old-job-x", {"app": "job"}, ips=("10.0.0.7",), phase="Failed"),
        Pod(
            "kube-system",
            "proxy-a",
            {"k8s-app": "proxy"},
            ips=("192.168.0.1",),
            host_network=True,
            host_ip="192.168.0.1",
            node="node-1",
            phase="Running",
        ),
        Pod("a", "p1", {"app": "x"}, ips=("10.0.0.8",), phase="Running"),
        Pod("b", "p2", {"app": "y"}, ips=("10.0.0.8",), phase="Running"),
    ),
    services=(
        Service("default", "kubernetes", cluster_ips=("10.96.0.1",)),
        Service("shop", "db", cluster_ips=("10.96.0.50",), selector={"app": "db"}),
    ),
    endpoint_slices=(
        EndpointSlice(
            "default", "kubernetes-abc", "kubernetes", endpoints=(Endpoint(("192.168.0.9",)),)
        ),
    ),
)


def test_ip_index_rules():
    index = {e.ip: e for e in build_ip_index(INV)}
    assert index["10.0.0.2"].kind == "pod"
    assert index["10.0.0.2"].workload_name == "db"
    assert decode_labels(index["10.0.0.2"].labels) == {"app": "db"}  # ephemeral key dropped
    assert "10.0.0.7" not in index, "Failed pods are excluded from IP lookup"
    assert (index["192.168.0.1"].kind, index["192.168.0.1"].node) == ("host", "node-1")
    assert (index["10.96.0.1"].kind, index["10.96.0.1"].detail) == (
        "cluster_infra",
        "kube-apiserver",
    )
    assert index["192.168.0.9"].kind == "cluster_infra", "apiserver endpoint beats the node"
    assert (index["10.96.0.50"].kind, index["10.96.0.50"].service_name) == ("service", "db")
    assert (index["10.0.0.8"].kind, index["10.0.0.8"].detail) == ("unknown", "ambiguous-ip")


def test_pod_index_skips_host_network_and_finished():
    assert [(e.namespace, e.pod) for e in build_pod_index(INV)] == [
        ("a", "p1"),
        ("b", "p2"),
        ("shop", "db-0"),
    ]


@pytest.fixture(scope="module")
def resolved(tmp_path_factory):
    path = tmp_path_factory.mktemp("res") / "f.json"
    remote = {"identity": 6, "labels": ["reserved:remote-node"]}
    lines = [
        make_flow(dst=remote, dip="10.0.0.2", sport=40000),  # pod IP seen as remote-node
        make_flow(dst={"identity": 0}, dip="10.9.9.9", sport=40001),  # unknown, not in inventory
        make_flow(
            dst={"identity": 2, "labels": ["reserved:world"]},
            dip="10.96.0.1",
            dport=443,
            sport=40002,
        ),  # apiserver VIP
        make_flow(
            dst={"identity": 1, "labels": ["reserved:host"]},
            dip="192.168.0.1",
            dport=10250,
            sport=40003,
        ),  # hostNetwork pod -> host
        make_flow(
            dst={"namespace": "shop", "pod_name": "db-0"}, dip="10.0.0.2", sport=40004
        ),  # field-masked, no labels
        make_flow(
            dst={"labels": ["reserved:world"]}, dip="10.96.0.50", dport=5432, sport=40005
        ),  # un-translated VIP
    ]
    write_lines(path, lines)
    return ENGINE.read_flows([str(path)], INV).to_pandas()


def test_remote_node_record_resolves_to_pod(resolved):
    row = resolved.iloc[0]
    assert (row["dst_kind"], row["dst_pod"], row["dst_workload_name"]) == ("pod", "db-0", "db")
    assert decode_labels(row["dst_labels"]) == {"app": "db"}


def test_unknown_ip_stays_unknown(resolved):
    assert resolved.iloc[1]["dst_kind"] == "unknown"


def test_apiserver_and_host_and_service(resolved):
    assert resolved.iloc[2]["dst_kind"] == "cluster_infra"
    assert resolved.iloc[3]["dst_kind"] == "host"
    assert (resolved.iloc[5]["dst_kind"], resolved.iloc[5]["dst_service_name"]) == ("service", "db")


def test_labels_filled_by_pod_name(resolved):
    row = resolved.iloc[4]
    assert row["dst_kind"] == "pod"
    assert decode_labels(row["dst_labels"]) == {"app": "db"}
    assert row["dst_workload_kind"] == "StatefulSet"


def test_hubble_labels_win_over_inventory(tmp_path):
    frame = ENGINE.read_flows(
        [write_lines(tmp_path / "f.json", [make_flow(dip="10.0.0.2")])], INV
    ).to_pandas()
    assert decode_labels(frame.iloc[0]["src_labels"]) == {"app": "web"}
    assert frame.iloc[0]["src_pod"] == POD_A["pod_name"]


def test_unknown_reason_with_inventory(tmp_path):
    path = write_lines(tmp_path / "f.json", [make_flow(dst={"identity": 0}, dip="10.9.9.9")])
    stats = ENGINE.aggregate([path], INV).stats
    assert stats.unknown_peers == 1
    assert stats.unknown_reasons == {"not-in-inventory": 1}
