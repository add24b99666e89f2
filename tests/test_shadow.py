"""Shadow mode: per-record verdicts, the report, the CI gate and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from recommender.cli.parser import main
from recommender.inventory.files import read_inventory
from recommender.observe.factory import get_engine
from recommender.policy_io.policy_yaml import load_policies
from recommender.report.shadow import build_report, render_markdown
from recommender.semantics import compile_policies
from recommender.shadow.core import run_shadow
from tests.conftest import FIXTURES, GOLDEN

DATA_DENY = FIXTURES / "shadow" / "data-default-deny.yaml"


@pytest.fixture(scope="module")
def judged(small_sim: Path):
    """Flow records of the fresh window and their verdicts under the data-deny fixture."""
    inv = read_inventory([str(small_sim / "inventory-fresh.json")])
    flows = str(small_sim / "flows-fresh.jsonl.gz")
    records = get_engine().read_flows([flows], inv).to_pandas()
    policies = compile_policies(load_policies([str(DATA_DENY)]).policies, inv)
    run, verdicts = run_shadow([records], policies, inv)
    return records, verdicts, run


def test_one_verdict_per_record_in_input_order(judged):
    records, verdicts, _ = judged
    assert len(verdicts) == len(records)
    assert verdicts["ref"].tolist() == records["raw_ref"].tolist()
    lines = [int(r.rsplit(":", 1)[1]) for r in verdicts["ref"]]
    assert lines == sorted(lines)


def test_allowed_edge_names_its_rule(judged):
    _, v, _ = judged
    pg = v[
        (v.dst_workload == "data/statefulset/postgres")
        & (v.port == 5432)
        & v.src_workload.str.startswith("shop/")
        & ~v.is_reply
    ]
    assert len(pg) > 0
    assert set(pg.verdict) == {"allowed"}
    assert all("data/allow-pg-from-shop#ingress[0]" in rules for rules in pg.rules)


def test_isolated_namespace_denies_other_edges_with_the_deciding_side(judged):
    _, v, _ = judged
    req = v[~v.is_reply]
    scrape = req[
        (req.src_workload == "monitoring/statefulset/prometheus")
        & (req.dst_workload == "data/statefulset/postgres")
    ]
    assert len(scrape) > 0
    assert set(scrape.verdict) == {"denied"}
    assert set(scrape.denied_by) == {"ingress"}
    dns = req[req.src_workload.str.startswith("data/") & (req.port == 53)]
    assert len(dns) > 0
    assert set(dns.verdict) == {"denied"}
    assert set(dns.denied_by) == {"egress"}


def test_kubelet_probes_from_the_own_node_pass(judged):
    _, v, _ = judged
    probes = v[
        v.src_workload.str.startswith("host:")
        & v.dst_workload.str.startswith("data/")
        & ~v.is_reply
    ]
    assert len(probes) > 0
    assert set(probes.verdict) == {"allowed"}
    assert all("own node" in r for r in probes.reason)


def test_replies_take_the_verdict_of_their_connection(judged):
    records, v, _ = judged
    replies = v[v.is_reply]
    assert len(replies) > 0
    requests = {}
    for rec, row in zip(records.itertuples(), v.itertuples(), strict=True):
        if not row.is_reply:
            requests[(rec.src_ip, rec.src_port, rec.dst_ip, rec.protocol)] = row.verdict
    for rec, row in zip(records.itertuples(), v.itertuples(), strict=True):
        if row.is_reply:
            key = (rec.src_ip, rec.src_port, rec.dst_ip, rec.protocol)
            assert row.verdict == requests.get(key, "unknown")


def test_report_groups_denials_by_edge(judged):
    _, v, run = judged
    report = build_report(run, {"ingress": [], "egress": []}, {}, {})
    denied = report["would_be_denied"]
    keys = {(d["src_workload"], d["dst_workload"], d["port"]) for d in denied}
    req = v[(~v.is_reply) & (v.verdict == "denied") & (v.cni_verdict != "policy_denied")]
    assert keys == set(zip(req.src_workload, req.dst_workload, req.port.astype(int), strict=True))
    assert all(d["policies"] for d in denied)
    assert report["totals"]["would_deny_connections"] == sum(d["connections"] for d in denied)


def test_cni_drops_are_reported_apart(judged):
    _, v, run = judged
    report = build_report(run, {}, {}, {})
    dropped = v[(~v.is_reply) & (v.cni_verdict == "policy_denied")]
    assert report["totals"]["cni_dropped_records"] == len(dropped) > 0
    assert sum(e["records"] for e in report["cni_dropped"]) == len(dropped)


def _shadow(small_sim: Path, tmp_path: Path, *extra: str) -> int:
    return main(
        [
            "shadow",
            "--policies",
            str(DATA_DENY),
            "--inventory",
            str(small_sim / "inventory-fresh.json"),
            "--flows",
            str(small_sim / "flows-fresh.jsonl.gz"),
            *extra,
        ]
    )


def test_cli_writes_verdicts_report_and_json(small_sim, tmp_path, capsys):
    out = tmp_path / "v.jsonl"
    rc = _shadow(
        small_sim,
        tmp_path,
        "--verdicts",
        str(out),
        "--report",
        str(tmp_path / "r.md"),
        "--json",
        str(tmp_path / "r.json"),
    )
    assert rc == 0
    first = orjson.loads(out.read_bytes().splitlines()[0])
    assert set(first) >= {
        "ref",
        "src",
        "dst",
        "src_workload",
        "dst_workload",
        "port",
        "protocol",
        "verdict",
        "denied_by",
        "rules",
    }
    assert "would be denied" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["would_be_denied"]


def test_fail_on_deny_exits_3(small_sim, tmp_path, capsys):
    assert _shadow(small_sim, tmp_path, "--fail-on-deny") == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: shadow: ")
    assert "would be denied" in err[-1]


def test_baseline_equal_to_candidate_passes_the_gate(small_sim, tmp_path, capsys):
    rc = _shadow(
        small_sim,
        tmp_path,
        "--baseline",
        str(DATA_DENY),
        "--fail-on-deny",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert rc == 0
    assert json.loads((tmp_path / "r.json").read_text())["verdict_changes"] == []


def test_baseline_change_lists_edges_that_flip(small_sim, tmp_path):
    empty = tmp_path / "none.yaml"
    empty.write_text("# no policies: everything is allowed today\n")
    rc = _shadow(small_sim, tmp_path, "--baseline", str(empty), "--json", str(tmp_path / "r.json"))
    assert rc == 0
    report = json.loads((tmp_path / "r.json").read_text())
    flipped = {(c["baseline"], c["outcome"]) for c in report["verdict_changes"]}
    assert flipped == {("allowed", "denied")}
    assert len(report["verdict_changes"]) == len(report["would_be_denied"])


def test_refuses_to_overwrite_without_force(small_sim, tmp_path, capsys):
    out = tmp_path / "r.md"
    out.write_text("keep me")
    assert _shadow(small_sim, tmp_path, "--report", str(out)) == 2
    assert "--force" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_invalid_policy_is_one_located_line(small_sim, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n"
        "metadata: {name: x, namespace: data}\n"
        "spec: {podSelector: {}, ingress: [{ports: [{port: [1]}]}]}\n"
    )
    rc = main(
        [
            "shadow",
            "--policies",
            str(bad),
            "--inventory",
            str(small_sim / "inventory-fresh.json"),
            "--flows",
            str(small_sim / "flows-fresh.jsonl.gz"),
        ]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert str(bad) in err[0]
    assert "Traceback" not in err[0]


def test_missing_flow_file_is_exit_2(small_sim, tmp_path, capsys):
    rc = main(
        [
            "shadow",
            "--policies",
            str(DATA_DENY),
            "--inventory",
            str(small_sim / "inventory-fresh.json"),
            "--flows",
            str(tmp_path / "nope.json"),
        ]
    )
    assert rc == 2
    assert "nope.json" in capsys.readouterr().err


def test_unresolvable_endpoints_are_unknown_never_guessed(small_sim, tmp_path):
    line = {
        "flow": {
            "time": "2026-11-02T03:00:00Z",
            "verdict": "FORWARDED",
            "IP": {"source": "10.244.1.250", "destination": "10.244.2.251", "ipVersion": "IPv4"},
            "l4": {"TCP": {"source_port": 40000, "destination_port": 80, "flags": {"SYN": True}}},
            "source": {},
            "destination": {},
            "is_reply": False,
            "traffic_direction": "EGRESS",
            "event_type": {"type": 4},
        },
        "node_name": "n",
        "time": "2026-11-02T03:00:00Z",
    }
    flows = tmp_path / "f.json"
    flows.write_bytes(orjson.dumps(line) + b"\n")
    out = tmp_path / "v.jsonl"
    rc = main(
        [
            "shadow",
            "--policies",
            str(DATA_DENY),
            "--inventory",
            str(small_sim / "inventory-fresh.json"),
            "--flows",
            str(flows),
            "--verdicts",
            str(out),
        ]
    )
    assert rc == 0
    row = orjson.loads(out.read_bytes())
    assert row["verdict"] == "unknown"
    assert row["denied_by"] is None


def test_golden_report(small_sim, update_golden):
    inv = read_inventory([str(small_sim / "inventory-fresh.json")])
    flows = str(small_sim / "flows-fresh.jsonl.gz")
    policies = compile_policies(load_policies([str(DATA_DENY)]).policies, inv)
    table = get_engine().read_flows([flows], inv)
    run, _ = run_shadow(table, policies, inv)
    report = build_report(
        run, {"ingress": [], "egress": []}, {"policies": ["data-default-deny.yaml"]}, {}
    )
    text = render_markdown(report)
    golden = GOLDEN / "shadow" / "small-sim-report.md"
    if update_golden:
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text()
