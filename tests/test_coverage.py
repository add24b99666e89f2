"""Evidence coverage: capture nodes against inventory nodes, and no policy without evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from recommender.cli.parser import main
from recommender.inventory.files import parse_inventory_items
from recommender.inventory.workloads import Workload, build_index
from recommender.recommend.coverage import assess_coverage, exclusion_selector, inventory_nodes
from tests.fixtures.recommend.shop import shop_items

#: Pods moved off node-1, so the inventory spans three nodes.
ON_OTHER_NODES = {"catalog": "node-2", "redis": "node-3", "prometheus": "node-3"}


def _three_node_items() -> list[dict]:
    items = shop_items()
    items.append(
        {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": "node-3"},
            "status": {"addresses": [{"type": "InternalIP", "address": "172.18.0.4"}]},
        }
    )
    for item in items:
        if item["kind"] == "Pod":
            owner = item["metadata"]["name"].split("-")[0]
            item["spec"]["nodeName"] = ON_OTHER_NODES.get(owner, "node-1")
    return items


def _pod(items: list[dict], owner: str) -> dict:
    pod = next(i for i in items if i["kind"] == "Pod" and i["metadata"]["name"].startswith(owner))
    return {
        "ip": pod["status"]["podIP"],
        "ns": pod["metadata"]["namespace"],
        "pod": pod["metadata"]["name"],
        "labels": sorted(pod["metadata"]["labels"].items()),
    }


def _line(src: dict, dst: dict, port: int, node: str) -> str:
    flow = {
        "time": "2026-03-01T10:00:00.000000000Z",
        "verdict": "FORWARDED",
        "IP": {"source": src["ip"], "destination": dst["ip"], "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": port, "flags": {"SYN": True}}},
        "source": {
            "namespace": src["ns"],
            "pod_name": src["pod"],
            "labels": [f"k8s:{k}={v}" for k, v in src["labels"]],
        },
        "destination": {
            "namespace": dst["ns"],
            "pod_name": dst["pod"],
            "labels": [f"k8s:{k}={v}" for k, v in dst["labels"]],
        },
        "Type": "L3_L4",
        "node_name": node,
        "is_reply": False,
        "event_type": {"type": 4},
        "traffic_direction": "EGRESS",
        "trace_observation_point": "TO_ENDPOINT",
    }
    return json.dumps({"flow": flow, "node_name": node, "time": flow["time"]})


@pytest.fixture
def one_node_capture(tmp_path: Path) -> tuple[Path, Path]:
    """A three-node inventory and a capture from node-1 only (frontend -> cart)."""
    items = _three_node_items()
    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    flows = tmp_path / "flows.json"
    frontend, cart = _pod(items, "frontend"), _pod(items, "cart")
    flows.write_text("\n".join(_line(frontend, cart, 7070, "node-1") for _ in range(3)) + "\n")
    return inventory, flows


def _recommend(inventory: Path, flows: Path, out: Path, *extra: str) -> int:
    return main(
        [
            "recommend",
            "--flows",
            str(flows),
            "--inventory",
            str(inventory),
            "--out",
            str(out),
            *extra,
        ]
    )


def test_capture_from_one_of_three_nodes_warns_first(one_node_capture, tmp_path, capsys):
    inventory, flows = one_node_capture
    assert _recommend(inventory, flows, tmp_path / "out") == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("warning: PARTIAL COVERAGE: the flows come from 1 of 3 nodes")
    assert "node-2, node-3" in err[0]
    summary = (tmp_path / "out" / "SUMMARY.md").read_text().splitlines()
    assert summary[2] == "## Evidence coverage"
    assert summary[4].startswith("**PARTIAL COVERAGE")


def test_namespace_without_traffic_gets_no_default_deny(one_node_capture, tmp_path, capsys):
    inventory, flows = one_node_capture
    out = tmp_path / "out"
    assert _recommend(inventory, flows, out) == 0
    assert (out / "shop" / "cart.yaml").exists()
    assert not (out / "monitoring").exists()  # prometheus: pods, no traffic
    assert not (out / "ingress").exists()
    summary = (out / "SUMMARY.md").read_text()
    assert "  - namespace monitoring: no policy written: no observed traffic" in summary
    assert "shop/redis: 1 pod(s) on node-3, no traffic (its nodes were not captured)" in summary


def test_quiet_workloads_are_left_out_of_the_namespace_default_deny(one_node_capture, tmp_path):
    inventory, flows = one_node_capture
    out = tmp_path / "out"
    assert _recommend(inventory, flows, out) == 0
    deny = yaml.safe_load((out / "shop" / "default-deny.yaml").read_text())
    assert deny["spec"]["podSelector"] == {
        "matchExpressions": [
            {"key": "app", "operator": "NotIn", "values": ["catalog", "redis", "worker"]}
        ]
    }
    assert not (out / "shop" / "worker.yaml").exists()


def test_deny_unobserved_writes_default_deny_everywhere(one_node_capture, tmp_path, capsys):
    inventory, flows = one_node_capture
    out = tmp_path / "out"
    assert _recommend(inventory, flows, out, "--deny-unobserved") == 0
    assert (out / "monitoring" / "default-deny.yaml").exists()
    deny = yaml.safe_load((out / "shop" / "default-deny.yaml").read_text())
    assert deny["spec"]["podSelector"] == {}


def test_fail_on_gap_exits_3_after_writing(one_node_capture, tmp_path, capsys):
    inventory, flows = one_node_capture
    out = tmp_path / "out"
    assert _recommend(inventory, flows, out, "--fail-on-gap") == 3
    err = capsys.readouterr().err
    assert "error: recommend: evidence gaps (flows from 1 of 3 nodes" in err
    assert (out / "SUMMARY.md").exists()


def test_unknown_capture_nodes_are_no_partial_coverage():
    inventory = parse_inventory_items(_three_node_items(), "inventory.json")
    index = build_index(inventory)
    empty = pd.DataFrame(columns=["src_role", "src_key", "dst_role", "dst_key"])
    coverage = assess_coverage(index, empty, ["shop"], (None, None), None)
    assert inventory_nodes(inventory) == ("node-1", "node-2", "node-3")
    assert not coverage.partial
    assert coverage.quiet_namespaces == ("shop",)
    assert "unknown" in "\n".join(coverage.markdown())


def test_relay_node_names_match_inventory_nodes():
    index = build_index(parse_inventory_items(_three_node_items(), "inventory.json"))
    empty = pd.DataFrame(columns=["src_role", "src_key", "dst_role", "dst_key"])
    observers = {"kind/node-1": 3, "kind/node-2": 1, "node-3": 2}
    coverage = assess_coverage(index, empty, ["shop"], (None, None), observers)
    assert coverage.capture_nodes == ("node-1", "node-2", "node-3")
    assert not coverage.partial


def test_no_single_label_excludes_a_quiet_workload_from_its_look_alike():
    web = Workload("shop", (("app", "web"),), "web")
    canary = Workload("shop", (("app", "web"), ("track", "canary")), "web-canary")
    assert exclusion_selector([web, canary], [web]) is None
    sel = exclusion_selector([web, canary], [canary])
    assert sel is not None
    assert sel.match_expressions[0].key == "track"
