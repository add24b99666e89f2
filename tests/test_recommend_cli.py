"""``netpol recommend`` on the command line: exit codes, refusal, bad input, output tree."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from recommender.cli.parser import main
from tests.conftest import SAMPLES
from tests.fixtures.recommend.shop import shop_items

HUBBLE = SAMPLES / "hubble" / "cilium-1.20-kind-lab" / "flows-pos-egress-named.ndjson"


@pytest.fixture
def shop_inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": shop_items()}))
    return path


def _err_lines(capsys) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]


def test_existing_output_is_refused_without_force(tmp_path, shop_inventory_file, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code = main(
        [
            "recommend",
            "--flows",
            str(HUBBLE),
            "--inventory",
            str(shop_inventory_file),
            "--out",
            str(out),
        ]
    )
    assert code == 2
    assert _err_lines(capsys) == [f"error: {out}: already exists (pass --force to replace it)"]
    assert (out / "keep.txt").read_text() == "mine"


def test_missing_flow_file_is_a_one_line_input_error(tmp_path, shop_inventory_file, capsys):
    code = main(
        [
            "recommend",
            "--flows",
            str(tmp_path / "nope.json"),
            "--inventory",
            str(shop_inventory_file),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    errors = _err_lines(capsys)
    assert len(errors) == 1
    assert "nope.json" in errors[0]
    assert not (tmp_path / "out").exists()


def test_bad_inventory_is_a_one_line_input_error(tmp_path, capsys):
    bad = tmp_path / "inv.json"
    bad.write_text("{not json")
    code = main(
        [
            "recommend",
            "--flows",
            str(HUBBLE),
            "--inventory",
            str(bad),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    errors = _err_lines(capsys)
    assert len(errors) == 1
    assert "inv.json" in errors[0]


def test_inventory_without_pods_is_refused(tmp_path, capsys):
    empty = tmp_path / "inv.json"
    empty.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": []}))
    code = main(
        [
            "recommend",
            "--flows",
            str(HUBBLE),
            "--inventory",
            str(empty),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "no pods" in _err_lines(capsys)[0]


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--merge-similar", "1.5"), ("--merge-similar", "x"), ("--cidr-budget", "-1")],
)
def test_bad_option_values_are_usage_errors(tmp_path, shop_inventory_file, capsys, flag, value):
    code = main(
        [
            "recommend",
            "--flows",
            str(HUBBLE),
            "--inventory",
            str(shop_inventory_file),
            "--out",
            str(tmp_path / "out"),
            flag,
            value,
        ]
    )
    assert code == 2
    assert flag in _err_lines(capsys)[0]


def _hubble_line(src: dict, dst: dict, port: int, verdict: str = "FORWARDED") -> str:
    flow = {
        "time": "2026-03-01T10:00:00.000000000Z",
        "verdict": verdict,
        "IP": {"source": src["ip"], "destination": dst["ip"], "ipVersion": "IPv4"},
        "l4": {"TCP": {"source_port": 40000, "destination_port": port, "flags": {"SYN": True}}},
        "source": {
            "namespace": src["ns"],
            "labels": [f"k8s:{k}={v}" for k, v in src["labels"]],
            "pod_name": src["pod"],
        },
        "destination": {
            "namespace": dst["ns"],
            "pod_name": dst["pod"],
            "labels": [f"k8s:{k}={v}" for k, v in dst["labels"]],
        },
        "Type": "L3_L4",
        "node_name": "node-1",
        "is_reply": False,
        "traffic_direction": "EGRESS",
        "trace_observation_point": "TO_ENDPOINT",
        "event_type": {"type": 4},
    }
    return json.dumps({"flow": flow, "node_name": "node-1", "time": flow["time"]})


def _pod(items: list[dict], owner: str) -> dict:
    pod = next(i for i in items if i["kind"] == "Pod" and i["metadata"]["name"].startswith(owner))
    labels = sorted(pod["metadata"]["labels"].items())
    return {
        "ip": pod["status"]["podIP"],
        "ns": pod["metadata"]["namespace"],
        "pod": pod["metadata"]["name"],
        "labels": labels,
    }


def test_end_to_end_on_hubble_flows(tmp_path, shop_inventory_file, capsys):
    items = shop_items()
    frontend, cart, redis = (_pod(items, n) for n in ("frontend", "cart", "redis"))
    lines = [_hubble_line(frontend, cart, 7070) for _ in range(3)]
    lines += [_hubble_line(cart, redis, 6379)]
    flows = tmp_path / "flows.json.gz"
    flows.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    out = tmp_path / "out"
    code = main(
        [
            "recommend",
            "--flows",
            str(flows),
            "--inventory",
            str(shop_inventory_file),
            "--out",
            str(out),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote" in captured.out
    assert (out / "kustomization.yaml").read_text().startswith("apiVersion: kustomize")
    assert (out / "shop" / "default-deny.yaml").exists()
    cart_policy = (out / "shop" / "cart.yaml").read_text()
    assert "app: frontend" in cart_policy
    assert "port: 7070" in cart_policy
    assert "kube-system" not in [p.name for p in out.iterdir()]
    assert "## Namespace `shop`" in (out / "SUMMARY.md").read_text()
    # --force replaces, byte-identically for the same input
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert (
        main(
            [
                "recommend",
                "--flows",
                str(flows),
                "--inventory",
                str(shop_inventory_file),
                "--out",
                str(out),
                "--force",
            ]
        )
        == 0
    )
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_manifests_stand_in_for_the_inventory(tmp_path, capsys):
    manifests = (
        SAMPLES
        / "apps"
        / "bookinfo"
        / "upstream"
        / "samples"
        / "bookinfo"
        / "platform"
        / "kube"
        / "bookinfo.yaml"
    )
    page = {
        "ip": "10.1.0.5",
        "ns": "bookinfo",
        "pod": "productpage-v1-a-1",
        "labels": [("app", "productpage"), ("version", "v1")],
    }
    reviews = {
        "ip": "10.1.0.6",
        "ns": "bookinfo",
        "pod": "reviews-v1-a-1",
        "labels": [("app", "reviews"), ("version", "v1")],
    }
    flows = tmp_path / "flows.json"
    flows.write_text(_hubble_line(page, reviews, 9080) + "\n")
    out = tmp_path / "out"
    code = main(
        [
            "recommend",
            "--flows",
            str(flows),
            "--manifests",
            str(manifests),
            "--default-namespace",
            "bookinfo",
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "PARTIAL COVERAGE" not in err  # a synthetic inventory's node is made up
    policy = (out / "bookinfo" / "reviews-v1.yaml").read_text()
    assert "app: productpage" in policy
    assert "port: 9080" in policy


def test_inventory_and_manifests_exclude_each_other(tmp_path, shop_inventory_file, capsys):
    code = main(
        [
            "recommend",
            "--flows",
            str(HUBBLE),
            "--inventory",
            str(shop_inventory_file),
            "--manifests",
            str(shop_inventory_file),
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "not allowed with argument" in _err_lines(capsys)[0]
