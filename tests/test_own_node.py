"""recommend: own-node traffic that NetworkPolicy v1 cannot deny is reported (issue 14).

Inventory: the lint fixture, every pod on node n1 (hostIP 192.168.0.1): shop's
deployment/web (port 8080), api-1, db-1. The observations are written here: web
probes 20 ports of its own node (10240-10259, the kubelet API 10250 among them: a
scan, excluded as suspicious), the kubelet of n1 probes web on 8080 (own node,
excluded), another address probes web on 8080 (not web's node), web calls db on
5432 (learned).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from recommender.cli.parser import main
from recommender.inventory.files import read_inventory
from recommender.labels import encode_labels
from recommender.model import OBSERVATION_COLUMNS
from recommender.recommend.own_node import TITLE, unexpressible_in_v1
from recommender.recommend.pipeline import recommend
from tests.conftest import FIXTURES

INVENTORY = FIXTURES / "lint" / "inventory.yaml"
NODE = "192.168.0.1"
OTHER_NODE = "192.168.0.9"
PODS = {
    "web": ("shop", {"app": "web", "pod-template-hash": "abc12"}, "deployment/web"),
    "db": ("shop", {"app": "db"}, "pod/db-1"),
}


def _row(src: str, dst: str, port: int, conns: int = 1, ip: str = NODE) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(OBSERVATION_COLUMNS)
    for side, peer in (("src", src), ("dst", dst)):
        if peer == "host":
            row.update({f"{side}_kind": "host", f"{side}_ip": ip, f"{side}_labels": "{}"})
        else:
            ns, labels, workload = PODS[peer]
            row.update(
                {
                    f"{side}_kind": "pod",
                    f"{side}_namespace": ns,
                    f"{side}_labels": encode_labels(labels),
                    f"{side}_workload": workload,
                }
            )
    row.update(
        {
            "dst_names": [],
            "port": port,
            "protocol": "TCP",
            "connections": conns,
            "first_seen": pd.Timestamp("2026-03-01T08:00:00Z"),
            "last_seen": pd.Timestamp("2026-03-01T18:00:00Z"),
            "verdicts": {"allowed": conns},
            "refs": ["flows.json:1"],
        }
    )
    return row


def _observations() -> pd.DataFrame:
    rows = [_row("web", "host", port) for port in range(10240, 10260)]
    rows += [
        _row("host", "web", 8080, conns=7),
        _row("host", "web", 8080, conns=2, ip=OTHER_NODE),
        _row("web", "db", 5432, conns=9),
    ]
    return pd.DataFrame(rows, columns=list(OBSERVATION_COLUMNS))


@pytest.fixture(scope="module")
def inventory():
    return read_inventory([INVENTORY])


@pytest.fixture(scope="module")
def rec(inventory):
    return recommend(_observations(), inventory)


def test_own_node_traffic_without_a_rule_is_listed(rec, inventory) -> None:
    edges = unexpressible_in_v1(rec, inventory)
    got = [(e.direction, e.name, e.node, e.port, e.connections, e.reason) for e in edges]
    scan = [("egress", "shop/web", "n1", p, 1, "suspicious") for p in range(10240, 10260)]
    assert got == scan + [("ingress", "shop/web", "n1", 8080, 7, "own-node")]
    # Not listed: the probe from 192.168.0.9 (not web's node) and web -> db (learned).
    assert not any(e.address == OTHER_NODE for e in edges)


def test_the_scan_is_excluded_not_learned(rec) -> None:
    to_node = rec.table[rec.table["dst_key"] == f"host:{NODE}"]
    assert set(to_node["reason"]) == {"suspicious"}
    web = next(p for p in rec.policies if p.name == "web")
    # No egress rule of web names the node: under v1 the kubelet port stays open anyway.
    assert all(peer.ip_block is None for r in web.egress or () for peer in r.peers or ())


def test_summary_section_and_json(inventory) -> None:
    # What the recommend command does for --kind networkpolicy, by hand.
    rec = recommend(_observations(), inventory)
    rec.unexpressible = unexpressible_in_v1(rec, inventory)
    text = rec.summary_markdown()
    assert f"## {TITLE}" in text
    section = text.split(f"## {TITLE}", 1)[1].split("\n## ", 1)[0]
    assert "regardless of the IP address of the Pod or the node" in section
    assert "- egress, a pod to its own node: 20 edges, 20 connections; --kind cilium" in section
    assert "- ingress, a node to its pods: 1 edges, 7 connections" in section
    assert "shop/web -> its node n1 (192.168.0.1) TCP/10250: 1 connections" in section

    from recommender.cli.recommend import _unexpressible_json

    doc = _unexpressible_json(rec)["unexpressible_v1"]
    assert (doc["edges_count"], doc["connections"]) == (21, 27)
    kubelet = next(e for e in doc["edges"] if e["port"] == 10250)
    assert kubelet["direction"] == "egress"
    assert kubelet["workload"] == "shop/web"
    assert kubelet["hint"].startswith("--kind cilium denies it")


def test_no_section_without_own_node_traffic(inventory) -> None:
    obs = pd.DataFrame([_row("web", "db", 5432, conns=9)], columns=list(OBSERVATION_COLUMNS))
    rec = recommend(obs, inventory)
    rec.unexpressible = unexpressible_in_v1(rec, inventory)
    assert rec.unexpressible == []
    assert TITLE not in rec.summary_markdown()


def test_cli_json_on_the_sample(tmp_path: Path) -> None:
    sample = Path(__file__).resolve().parent.parent / "data" / "sample"
    out = tmp_path / "rec.json"
    args = ["recommend", "--flows", str(sample / "flows-train.jsonl.gz")]
    args += ["--inventory", str(sample / "inventory.json"), "--out", str(tmp_path / "np")]
    assert main([*args, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())["unexpressible_v1"]
    # The sample's own-node traffic is the kubelet's health probes (31 edges, each
    # excluded as own-node in the accounting); it has no pod -> own node egress.
    assert doc["edges_count"] == 31
    assert {e["direction"] for e in doc["edges"]} == {"ingress"}
    assert {e["not_learned_because"] for e in doc["edges"]} == {"own-node"}
    summary = (tmp_path / "np" / "SUMMARY.md").read_text()
    assert f"## {TITLE}" in summary
    # --kind cilium writes no such section: Cilium policy decides the egress itself.
    cil = tmp_path / "cil"
    assert main([*args[:-2], "--out", str(cil), "--kind", "cilium"]) == 0
    assert TITLE not in (cil / "SUMMARY.md").read_text()
