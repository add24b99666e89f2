"""Tests of the traffic simulator: formats, realism features, truth, determinism."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from recommender.cli.parser import main
from recommender.labels import stable_labels
from recommender.simulate import (
    SimOptions,
    build_cluster,
    build_inventory,
    load_topology,
    run_simulation,
    simulation_windows,
)
from recommender.simulate.topology import parse_topology

TRAIN, FRESH = "flows-train.jsonl.gz", "flows-fresh.jsonl.gz"
SMALL = SimOptions(seed=11, window_s=3600, rate_scale=0.2)


def read_lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().split("\n")[:-1]


def parse(line: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "webshop"
    run_simulation(load_topology("webshop"), out, SMALL, show_progress=False)
    return out


@pytest.fixture(scope="module")
def truth(sim: Path) -> dict[str, Any]:
    return json.loads((sim / "truth.json").read_text())


@pytest.fixture(scope="module")
def flows(sim: Path) -> dict[str, list[str]]:
    return {name: read_lines(sim / name) for name in (TRAIN, FRESH)}


@pytest.fixture(scope="module")
def docs(flows: dict[str, list[str]]) -> dict[str, list[dict[str, Any] | None]]:
    """Every line parsed (None when it is not a JSON object), per file."""
    return {name: [parse(line) for line in lines] for name, lines in flows.items()}


@pytest.fixture(scope="module")
def objs(docs: dict[str, list[dict[str, Any] | None]]) -> dict[str, list[dict[str, Any]]]:
    """The ``flow`` members, per file."""
    return {name: [d["flow"] for d in ds if d and "flow" in d] for name, ds in docs.items()}


# --------------------------------------------------------------------------- topologies


def test_webshop_topology_shape() -> None:
    t = load_topology("webshop")
    namespaces = {w.namespace for w in t.workloads}
    assert {"monitoring", "ingress"} <= namespaces
    assert len(namespaces - {"kube-system"}) >= 3
    assert len([s for s in t.services]) >= 10
    store = t.external("object-store")
    assert len(store.ips) >= 3
    assert store.cidr == "52.216.0.0/15"
    scrapes = [e for e in t.edges if e.category == "scrape"]
    assert len({e.dst for e in scrapes}) >= 10  # Prometheus fans out to many workloads
    assert {w.kind for w in t.workloads} >= {"Deployment", "StatefulSet", "DaemonSet", "CronJob"}


def test_saas_has_tenants_and_envs() -> None:
    t = load_topology("saas")
    tenant_ns = {n.name for n in t.namespaces if "tenant" in n.labels}
    assert len(tenant_ns) == 9
    assert {n.labels["env"] for n in t.namespaces if n.name in tenant_ns} == {
        "dev",
        "staging",
        "prod",
    }
    assert t.workload("acme-prod/web").replicas == 3
    assert t.workload("acme-dev/web").replicas == 1


def test_large_size_parameter_reaches_scale() -> None:
    t = load_topology("large:2000")
    windows = simulation_windows(SimOptions(window_s=3600))
    inventory = build_inventory(t, build_cluster(t, 1, windows), "train", windows.rollout - 1)
    pods = [i for i in inventory["items"] if i["kind"] == "Pod"]
    owners = {
        (p["metadata"]["namespace"], p["metadata"]["ownerReferences"][0]["name"]) for p in pods
    }
    assert len(pods) >= 20_000
    assert len(owners) >= 2_000


@pytest.mark.parametrize("ref", ["saas", "large:30"])
def test_other_topologies_generate(ref: str, tmp_path: Path) -> None:
    options = SimOptions(seed=2, window_s=1800, rate_scale=0.05)
    summary = run_simulation(load_topology(ref), tmp_path / "out", options, show_progress=False)
    assert all(n > 100 for n in summary.lines.values())
    truth = json.loads((tmp_path / "out" / "truth.json").read_text())
    assert truth["topology"] == ref.split(":")[0]


def test_invalid_topology_is_an_input_error() -> None:
    from recommender.errors import InputError

    with pytest.raises(InputError, match="not a workload"):
        parse_topology(
            {
                "name": "x",
                "cluster": {"workers": 1},
                "edges": [{"from": "a/b", "to": "c/d", "port": 80, "rate": 1}],
            }
        )


# --------------------------------------------------------------------------- determinism


def test_same_seed_is_byte_identical_and_other_seed_differs(sim: Path, tmp_path: Path) -> None:
    run_simulation(load_topology("webshop"), tmp_path / "again", SMALL, show_progress=False)
    for name in ("inventory.json", "inventory-fresh.json", TRAIN, FRESH, "truth.json"):
        assert (tmp_path / "again" / name).read_bytes() == (sim / name).read_bytes(), name
    other = SimOptions(seed=12, window_s=SMALL.window_s, rate_scale=SMALL.rate_scale)
    run_simulation(load_topology("webshop"), tmp_path / "other", other, show_progress=False)
    assert (tmp_path / "other" / TRAIN).read_bytes() != (sim / TRAIN).read_bytes()


def test_gzip_header_has_no_mtime_and_no_name(sim: Path) -> None:
    head = (sim / TRAIN).read_bytes()[:10]
    assert head[:3] == b"\x1f\x8b\x08"
    assert head[3] == 0  # FLG: no FNAME, no comment, no extra
    assert head[4:8] == b"\x00\x00\x00\x00"  # MTIME 0


# --------------------------------------------------------------------------- format


def test_lines_are_wrapped_jsonpb_except_recorded_ones(
    docs: dict[str, list[dict[str, Any] | None]], truth: dict[str, Any]
) -> None:
    for name, parsed in docs.items():
        damaged = set(truth["damaged_lines"][name])
        non_flow = set(truth["non_flow_lines"][name])
        assert damaged
        assert non_flow
        assert len(parsed) == truth["line_counts"][name]
        for number, doc in enumerate(parsed, start=1):
            if number in damaged:
                assert doc is None or "flow" not in doc
            elif number in non_flow:
                assert doc is not None
                assert {"lost_events"} <= doc.keys() or {"node_status"} <= doc.keys()
            else:
                assert doc is not None, number
                assert list(doc) == ["flow", "node_name", "time"], number
                assert doc["flow"]["time"] == doc["time"]
                assert doc["time"].endswith("Z")


def test_protojson_conventions(
    flows: dict[str, list[str]], objs: dict[str, list[dict[str, Any]]]
) -> None:
    lost = [parse(line) for line in flows[TRAIN] if line.startswith('{"lost_events"')]
    assert all(isinstance(d["lost_events"]["num_events_lost"], str) for d in lost if d)
    for f in objs[TRAIN][:3000]:
        assert f["Type"] == "L3_L4"
        assert f["IP"]["ipVersion"] == "IPv4"
        assert "reply" not in f or f["reply"] is True
        for end in (f["source"], f["destination"]):
            for label in end["labels"]:
                assert label.startswith(("k8s:", "reserved:"))
                assert "pod-template-hash" not in label
                assert "controller-revision-hash" not in label
            if end.get("pod_name"):
                keys = {lbl.split("=")[0] for lbl in end["labels"]}
                assert {
                    "k8s:io.kubernetes.pod.namespace",
                    "k8s:io.cilium.k8s.policy.cluster",
                    "k8s:io.cilium.k8s.policy.serviceaccount",
                } <= keys
            else:
                assert "ID" not in end
                assert "workloads" not in end
        local = ("ID" in f["source"]) + ("ID" in f["destination"])
        assert local >= 1  # Hubble reports from a node where one end is local
        assert all("workloads" in e for e in (f["source"], f["destination"]) if "ID" in e)


def test_reply_counts_match_truth(
    objs: dict[str, list[dict[str, Any]]], truth: dict[str, Any]
) -> None:
    for name, flows in objs.items():
        counts = Counter(
            "is_reply_absent" if "is_reply" not in f else f"is_reply_{str(f['is_reply']).lower()}"
            for f in flows
        )
        assert dict(counts) == truth["reply_lines"][name]
        assert counts["is_reply_true"] > 50
        assert counts["is_reply_absent"] > 10
    for f in objs[TRAIN]:
        if f.get("is_reply") is True and "TCP" in f["l4"]:
            assert 32768 <= f["l4"]["TCP"]["destination_port"] <= 60999
            assert f["reply"] is True


def test_both_observation_points_and_trace_points(objs: dict[str, list[dict[str, Any]]]) -> None:
    train = objs[TRAIN]
    seen: dict[tuple[Any, ...], set[tuple[str, str]]] = {}
    for f in train:
        if "TCP" in f["l4"] and f.get("is_reply") is False:
            key = (f["IP"]["source"], f["l4"]["TCP"]["source_port"], f["IP"]["destination"])
            seen.setdefault(key, set()).add((f["node_name"], f["traffic_direction"]))
    both = [
        v
        for v in seen.values()
        if len({n for n, _ in v}) == 2 and {d for _, d in v} == {"EGRESS", "INGRESS"}
    ]
    assert len(both) > 100
    points = Counter(f.get("trace_observation_point") for f in train)
    assert {"TO_ENDPOINT", "TO_OVERLAY", "TO_STACK", "TO_NETWORK"} <= points.keys()
    assert Counter(f["event_type"]["type"] for f in train)[5] > 100


def test_dns_on_udp_and_tcp_53(objs: dict[str, list[dict[str, Any]]]) -> None:
    clients: dict[str, set[str]] = {"UDP": set(), "TCP": set()}
    for f in objs[TRAIN]:
        proto = next(iter(f["l4"]))
        if (
            f["l4"][proto].get("destination_port") == 53
            and "k8s:k8s-app=kube-dns" in f["destination"]["labels"]
        ):
            clients[proto].add(f["source"].get("namespace", ""))
    assert len(clients["UDP"]) >= 4
    assert len(clients["TCP"]) >= 2


def test_world_apiserver_and_host_peers(objs: dict[str, list[dict[str, Any]]]) -> None:
    train = objs[TRAIN]
    world = [f for f in train if f["destination"].get("labels") == ["reserved:world"]]
    assert world
    assert any(f.get("destination_names") == ["api.stripe.com"] for f in world)
    assert all(f["destination"]["identity"] == 2 for f in world)
    assert any(
        f["destination"].get("identity") == 7
        and "reserved:kube-apiserver" in f["destination"]["labels"]
        for f in train
    )
    probes = [
        f
        for f in train
        if f["source"].get("identity") == 1 and f["source"]["labels"] == ["reserved:host"]
    ]
    # kubelet probes are seen only on the probed pod's own node
    assert probes
    assert all("ID" in f["destination"] for f in probes)


# --------------------------------------------------------------------------- truth


def _workload_of(end: dict[str, Any], truth: dict[str, Any]) -> str | None:
    labels = dict(lbl[4:].split("=", 1) for lbl in end.get("labels", ()) if lbl.startswith("k8s:"))
    for w in truth["workloads"]:
        if w["namespace"] == end.get("namespace") and all(
            labels.get(k) == v for k, v in w["labels"].items()
        ):
            return f"{w['namespace']}/{w['workload']}"
    return None


def _peer(end: dict[str, Any], ip: str, truth: dict[str, Any]) -> tuple[str, ...]:
    if end.get("pod_name"):
        return ("pod", _workload_of(end, truth) or "?")
    ident = end.get("identity")
    infra: dict[Any, tuple[str, ...]] = {1: ("host",), 7: ("cluster_infra",)}
    return infra.get(ident, ("world", ip))


def _truth_peer(doc: dict[str, Any]) -> tuple[str, ...]:
    if doc["kind"] == "pod":
        return ("pod", f"{doc['namespace']}/{doc['workload']}")
    if doc["kind"] == "world":
        return ("world", doc.get("ip", "*"))
    return (doc["kind"],)


def _oriented(f: dict[str, Any], truth: dict[str, Any]) -> list[tuple[Any, ...]]:
    proto = next(iter(f["l4"]))
    l4 = f["l4"][proto]
    fwd = (
        _peer(f["source"], f["IP"]["source"], truth),
        _peer(f["destination"], f["IP"]["destination"], truth),
        l4["destination_port"],
        proto,
    )
    rev = (fwd[1], fwd[0], l4["source_port"], proto)
    if f.get("is_reply") is True:
        return [rev]
    return [fwd] if f.get("is_reply") is False else [fwd, rev]


def test_marked_lines_are_exactly_the_illegitimate_flows(
    docs: dict[str, list[dict[str, Any] | None]], truth: dict[str, Any]
) -> None:
    legit = set()
    for e in truth["legitimate_edges"]:
        src, dst = _truth_peer(e["src"]), _truth_peer(e["dst"])
        legit.add((("world", "*") if src == ("world", "*") else src, dst, e["port"], e["protocol"]))
    bad = {
        (_truth_peer(e["src"]), _truth_peer(e["dst"]), e["port"], e["protocol"])
        for e in truth["illegitimate"]["edges"]
    }

    def is_legit(key: tuple[Any, ...]) -> bool:
        src = ("world", "*") if key[0][0] == "world" else key[0]
        return (src, *key[1:]) in legit

    for name, parsed in docs.items():
        marked = set(truth["illegitimate"]["flows"][name])
        assert marked
        for number, doc in enumerate(parsed, start=1):
            if not doc or "flow" not in doc:
                continue
            keys = _oriented(doc["flow"], truth)
            if number in marked:
                assert any(k in bad for k in keys), (name, number)
            else:
                assert any(is_legit(k) for k in keys), (name, number, keys)
    kinds = truth["illegitimate"]["by_kind"]
    assert min(kinds.values()) > 0
    assert {e["verdict"] for e in truth["illegitimate"]["edges"]} == {"DROPPED", "FORWARDED"}


def test_dropped_attacks_carry_policy_denied(
    flows: dict[str, list[str]], truth: dict[str, Any]
) -> None:
    marked = set(truth["illegitimate"]["flows"][TRAIN])
    drops = [
        parse(line)["flow"]
        for n, line in enumerate(flows[TRAIN], 1)
        if n in marked and '"verdict":"DROPPED"' in line
    ]
    assert drops
    assert all(f["drop_reason_desc"] == "POLICY_DENIED" for f in drops)
    assert any(
        f["event_type"] == {"type": 1, "sub_type": 133} and "is_reply" not in f for f in drops
    )


def test_fresh_only_edges(truth: dict[str, Any]) -> None:
    edges = {e["id"]: e for e in truth["legitimate_edges"]}
    declared = [e for e in edges.values() if e["declared_fresh_only"]]
    assert declared
    assert all(e["train_connections"] == 0 and e["fresh_connections"] > 0 for e in declared)
    assert set(truth["fresh_only_edges"]) == {
        i for i, e in edges.items() if e["train_connections"] == 0
    }
    assert {e["category"] for e in edges.values()} >= {"app", "dns", "probe", "scrape"}
    rates = [e["rate_per_hour"] for e in edges.values() if e["rate_per_hour"] > 0]
    assert max(rates) / min(rates) > 1000  # orders of magnitude apart


def test_rollout_changes_hash_names_ips_not_stable_labels(sim: Path, truth: dict[str, Any]) -> None:
    def pods(name: str) -> list[dict[str, Any]]:
        doc = json.loads((sim / name).read_text())
        return [
            i
            for i in doc["items"]
            if i["kind"] == "Pod"
            and i["metadata"]["namespace"] != "kube-system"
            and i["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
        ]

    old, new = pods("inventory.json"), pods("inventory-fresh.json")
    assert {p["metadata"]["name"] for p in old}.isdisjoint(p["metadata"]["name"] for p in new)
    assert {p["status"]["podIP"] for p in old}.isdisjoint(p["status"]["podIP"] for p in new)
    changed = truth["rollout"]["changed_pod_template_hash"]
    for pod in new:
        meta = pod["metadata"]
        key = f"{meta['namespace']}/{meta['ownerReferences'][0]['name'].rsplit('-', 1)[0]}"
        assert meta["labels"]["pod-template-hash"] == changed[key][1] != changed[key][0]
    stable_old = {json.dumps(stable_labels(p["metadata"]["labels"])) for p in old}
    assert stable_old == {json.dumps(stable_labels(p["metadata"]["labels"])) for p in new}


# --------------------------------------------------------------------------- inventory


def test_inventory_is_a_kubectl_list(sim: Path) -> None:
    doc = json.loads((sim / "inventory.json").read_text())
    assert doc["kind"] == "List"
    assert doc["apiVersion"] == "v1"
    kinds = Counter(i["kind"] for i in doc["items"])
    assert {"Namespace", "Pod", "Service", "EndpointSlice", "Node"} <= kinds.keys()
    by_name = {
        (i["kind"], i["metadata"].get("namespace"), i["metadata"]["name"]): i for i in doc["items"]
    }
    api = by_name[("Service", "default", "kubernetes")]
    assert api["spec"]["ports"][0]["targetPort"] == 6443
    slice_ = by_name[("EndpointSlice", "default", "kubernetes")]
    nodes = [i for i in doc["items"] if i["kind"] == "Node"]
    assert slice_["endpoints"][0]["addresses"][0] == nodes[0]["status"]["addresses"][0]["address"]
    dns = [
        i
        for i in doc["items"]
        if i["kind"] == "Pod" and i["metadata"]["labels"].get("k8s-app") == "kube-dns"
    ]
    assert len(dns) == 2
    assert all(p["metadata"]["namespace"] == "kube-system" for p in dns)


def test_inventory_loads_with_the_project_reader(sim: Path) -> None:
    from recommender.inventory.files import read_inventory

    inventory = read_inventory([sim / "inventory.json"])
    doc = json.loads((sim / "inventory.json").read_text())
    assert len(inventory.pods) == sum(1 for i in doc["items"] if i["kind"] == "Pod")
    owners = {p.workload for p in inventory.pods if p.namespace == "shop"}
    assert "deployment/frontend" in owners


# --------------------------------------------------------------------------- toggles, CLI


def test_toggles_remove_their_feature(tmp_path: Path, truth: dict[str, Any]) -> None:
    options = SimOptions(
        seed=11,
        window_s=3600,
        rate_scale=0.15,
        replies=False,
        damage=False,
        non_flow=False,
        illegitimate=False,
    )
    run_simulation(load_topology("webshop"), tmp_path / "off", options, show_progress=False)
    off = json.loads((tmp_path / "off" / "truth.json").read_text())
    lines = read_lines(tmp_path / "off" / TRAIN)
    assert off["damaged_lines"][TRAIN] == []
    assert off["non_flow_lines"][TRAIN] == []
    assert off["illegitimate"]["flows"][TRAIN] == []
    assert off["illegitimate"]["edges"] == []
    assert off["reply_lines"][TRAIN]["is_reply_true"] == 0
    parsed = [parse(line) for line in lines]
    assert all(o is not None and "flow" in o for o in parsed)
    assert not any(o["flow"].get("is_reply") for o in parsed if o)  # no reply packets at all


def test_cli_writes_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli"
    argv = [
        "simulate",
        "--topology",
        "webshop",
        "--window",
        "30m",
        "--seed",
        "5",
        "--rate-scale",
        "0.05",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["inventory.json", "inventory-fresh.json", TRAIN, FRESH, "truth.json"]
    )
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "already exists" in err
    assert main([*argv, "--force"]) == 0
    assert main(["simulate", "--topology", "nope", "--out", str(tmp_path / "x")]) == 2
