"""Antrea flow records: the antctl JSON example and the flow-logger CSV fixture read by
hand, the pitfalls (orientation, labels, flowType, counting, rule actions), a fuzz test,
and the whole pipeline on Antrea input.

Expected values are read off tests/samples/antrea by hand (FORMATS.md 2.3).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.errors import InputError
from recommender.flows import antrea, formats, sniff
from recommender.observe.engines.embedded import EmbeddedEngine
from tests.conftest import ROOT, SAMPLES
from tests.vpc_support import read_rows, write

DOC = SAMPLES / "antrea" / "antctl-get-flowrecords-doc-example.json"
CSV = SAMPLES / "antrea" / "flowlogger-csv-test-fixture.csv"
ENGINE = EmbeddedEngine(threads=1)


class _Json:
    oriented_packets_sql = staticmethod(antrea.json_packets_sql)


class _Csv:
    oriented_packets_sql = staticmethod(antrea.csv_packets_sql)


def _doc() -> dict:
    return json.loads(DOC.read_text())[0]


def _csv_fields(line: int = 2) -> list[str]:
    return CSV.read_text().splitlines()[line - 1].split(",")


def _csv_line(**changes: str) -> str:
    """The raw (numeric) fixture line with columns changed by name."""
    fields = _csv_fields(2)
    for name, value in changes.items():
        fields[antrea.CSV_COLUMNS.index(name)] = value
    return ",".join(fields)


def _ndjson(tmp_path: Path, records: list, name: str = "flows.json") -> str:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return str(write(tmp_path, name, "\n".join(lines) + "\n"))


def test_the_samples_are_sniffed_as_antrea():
    assert [f.name for f in formats.assign([str(DOC), str(CSV)])] == [
        "antrea_antctl",
        "antrea_csv",
    ]


def test_the_antctl_doc_example_by_hand():
    """10.10.0.1:50497 -> coredns 10.10.1.2:53/UDP (protocolIdentifier 17), no rule action;
    the source is no pod (sourcePodName ""), flowType 2, only the destination node named."""
    rows = ENGINE.read_flows([str(DOC)]).to_pandas()
    assert len(rows) == 1
    r = rows.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.protocol) == (
        "10.10.0.1",
        50497,
        "10.10.1.2",
        53,
        "UDP",
    )
    assert (r.dst_kind, r.dst_namespace, r.dst_pod) == (
        "pod",
        "kube-system",
        "coredns-78fcd69978-x2twv",
    )
    assert r.src_kind == "unknown"  # an address only: the inventory would name it
    assert (r.verdict, r.is_policy_drop, list(r.policies)) == ("allowed", False, [])
    assert (r.reporter, r.observer, bool(r.is_reply)) == ("dst", "k8s-node-worker-1", False)
    # 1635546867 = 2021-10-29 22:34:27 UTC; flowEndSeconds 26 s later.
    assert r.time_start == pd.Timestamp("2021-10-29 22:34:27")
    assert r.time_end == pd.Timestamp("2021-10-29 22:34:53")
    assert (r.source_format, r.raw_ref) == ("antrea_antctl", f"{DOC}:1")


def test_the_flowlogger_fixture_by_hand():
    """Line 1 pretty-printed, line 2 raw numbers: the same record. perftest-a
    (antrea-test) 10.10.0.79:44752 -> perftest-b (antrea-test-b) 10.10.0.80:5201/TCP,
    dropped by the ingress rule of a K8s NetworkPolicy."""
    one, two = read_rows(_Csv, CSV)
    for r in (one, two):
        assert (r["src_ip"], r["src_port"], r["dst_ip"], r["server_port"], r["protocol"]) == (
            "10.10.0.79",
            44752,
            "10.10.0.80",
            5201,
            "TCP",
        )
        assert json.loads(r["src_ep"]["e"]) == {
            "namespace": "antrea-test",
            "pod_name": "perftest-a",
            "labels": [],
        }
        assert json.loads(r["dst_ep"]["e"])["pod_name"] == "perftest-b"
        assert (r["verdict"], r["drop_reason"], r["is_policy_drop"]) == ("denied", "Drop", True)
        assert (r["reporter"], r["observer"]) == ("both", "k8s-node-control-plane")
        assert str(r["time_start"]) == "2021-11-23 22:36:01"  # 1637706961
        assert str(r["time_end"]) == "2021-11-23 22:36:13"  # 1637706973
    ingress = "K8sNetworkPolicy:antrea-test-ns/test-flow-aggregator-networkpolicy-ingress-allow"
    egress = "antrea-test-ns-e/test-flow-aggregator-networkpolicy-egress-allow"
    # Line 1 prints the egress type as "Invalid"; line 2 has the number 4.
    assert one["policies"] == [ingress, "unknown:" + egress]
    assert two["policies"] == [ingress, "AdminNetworkPolicy:" + egress]
    stats = ENGINE.aggregate([str(CSV)]).stats
    # Two rows of one connection (same 5-tuple and flowStartSeconds): one connection.
    assert (stats.flow_records, stats.connections, stats.policy_drops) == (2, 1, 1)


def test_rows_of_one_connection_count_once_two_connections_twice(tmp_path):
    """Active-timeout exports repeat the 5-tuple and flowStartSeconds; another client
    port is another connection."""
    lines = [
        _csv_line(flowEndSeconds="1637706973"),
        _csv_line(flowEndSeconds="1637707033"),
        _csv_line(sourceTransportPort="44753", flowStartSeconds="1637706990"),
    ]
    path = write(tmp_path, "f.csv", "\n".join(lines) + "\n")
    stats = ENGINE.aggregate([str(path)]).stats
    assert (stats.flow_records, stats.connections) == (3, 2)


@pytest.mark.parametrize(
    ("ingress", "egress", "verdict", "reason"),
    [
        ("1", "0", "allowed", None),
        ("0", "3", "denied", "Reject"),
        ("2", "3", "denied", "Drop"),
        ("", "", "allowed", None),
        ("Allow", "Reject", "denied", "Reject"),
    ],
)
def test_rule_actions(tmp_path, ingress, egress, verdict, reason):
    line = _csv_line(ingressNetworkPolicyRuleAction=ingress, egressNetworkPolicyRuleAction=egress)
    (r,) = read_rows(_Csv, write(tmp_path, "a.csv", line + "\n"))
    assert (r["line_kind"], r["verdict"], r["drop_reason"]) == ("flow", verdict, reason)
    assert r["is_policy_drop"] == (reason is not None)


def test_labels_flow_type_and_service(tmp_path):
    doc = _doc()
    with_labels = dict(
        doc,
        sourcePodName="web-5d8f7c9b6d-abcde",
        sourcePodNamespace="shop",
        sourcePodLabels='{"app":"web","pod-template-hash":"5d8f7c9b6d"}',
        destinationPodLabels="{}",
        destinationServicePortName="kube-system/kube-dns:dns",
    )
    to_external = dict(doc, destinationPodName="", destinationPodNamespace="", flowType=3)
    from_external = dict(doc, flowType=4)
    path = _ndjson(tmp_path, [with_labels, to_external, from_external])
    rows = ENGINE.read_flows([path]).to_pandas()
    a, b, c = (rows.iloc[i] for i in range(3))
    src = (a.src_kind, a.src_namespace, json.loads(a.src_labels))
    assert src == ("pod", "shop", {"app": "web"})
    assert (a.dst_kind, json.loads(a.dst_labels)) == ("pod", {})  # "{}": a pod without labels
    assert (a.dst_service_namespace, a.dst_service_name) == ("kube-system", "kube-dns")
    assert (b.src_kind, b.dst_kind) == ("unknown", "world")
    assert (c.src_kind, c.dst_kind) == ("world", "pod")


def test_clickhouse_json_each_row_and_ipv6(tmp_path):
    row = {
        "flowStartSeconds": "2024-05-01 10:00:00",
        "flowEndSeconds": "2024-05-01 10:00:30",
        "sourceIP": "fd00:10:244::5",
        "destinationIP": "fd00:10:244::9",
        "sourceTransportPort": 41000,
        "destinationTransportPort": 8080,
        "protocolIdentifier": 6,
        "sourcePodName": "a",
        "sourcePodNamespace": "shop",
        "destinationPodName": "b",
        "destinationPodNamespace": "shop",
        "sourcePodLabels": '{"app":"a"}',
        "destinationPodLabels": '{"app":"b"}',
        "flowType": 1,
    }
    assert sniff.is_antrea_json(json.dumps(row))
    (r,) = read_rows(_Json, _ndjson(tmp_path, [row]))
    assert (r["line_kind"], r["ip_version"], r["src_ip"], r["server_port"]) == (
        "flow",
        6,
        "fd00:10:244::5",
        8080,
    )
    assert str(r["time_start"]) == "2024-05-01 10:00:00"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"flowStartSeconds": "yesterday"}, "invalid flowStartSeconds: yesterday"),
        ({"flowStartSeconds": None}, "no flowStartSeconds"),
        ({"protocolIdentifier": 300}, "invalid protocolIdentifier: 300"),
        ({"destinationTransportPort": 70000}, "invalid destinationTransportPort: 70000"),
        ({"destinationIPv4Address": ""}, "no destination IP address"),
        ({"sourceIPv4Address": "host-1"}, "invalid sourceIP: host-1"),
        ({"destinationPodLabels": '{"app": 1}'}, "invalid destinationPodLabels"),
        ({"destinationPodLabels": '{"app": "bad value!"}'}, "label"),
        ({"ingressNetworkPolicyRuleAction": 7}, "unknown ingressNetworkPolicyRuleAction 7"),
        ({"destinationPodNamespace": ""}, "destinationPodName without destinationPodNamespace"),
    ],
)
def test_bad_records_are_rejects_with_file_and_line(tmp_path, change, reason):
    path = _ndjson(tmp_path, [_doc(), dict(_doc(), **change), "not json", ""])
    stats = ENGINE.aggregate([path]).stats
    assert stats.connections == 1
    assert stats.rejected == 2
    assert any(reason in k for k in stats.rejects), stats.rejects
    assert "not valid JSON" in stats.rejects
    with pytest.raises(InputError, match=f"{path}:2"):
        ENGINE.aggregate([path], strict=True)


def test_an_empty_array_line_is_a_counted_reject_not_lost(tmp_path):
    """``[]`` on a line of a one-record-per-line file holds no record, but it is a line:
    a counted reject (it used to vanish from the count: ``lines read`` was one short)."""
    path = _ndjson(tmp_path, [_doc(), "[]", "null", ""])
    stats = ENGINE.aggregate([path]).stats
    assert (stats.lines, stats.connections, stats.rejected) == (4, 1, 2)
    assert stats.rejects == {"an empty JSON array": 1, "not a JSON object": 1}
    assert stats.non_flow == {"blank": 1}


def test_short_csv_line_is_a_reject(tmp_path):
    path = write(tmp_path, "short.csv", _csv_line() + "\n" + "1,2,3\n")
    rows = read_rows(_Csv, path)
    assert [r["line_kind"] for r in rows] == ["flow", "reject"]
    assert rows[1]["reject_detail"] == "3 fields, the flow-logger CSV has 30"


def test_a_mix_of_antrea_and_hubble_in_one_run():
    hubble = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
    alone = ENGINE.aggregate([str(hubble)]).stats
    mixed = ENGINE.aggregate([str(hubble), str(DOC), str(CSV)]).stats
    assert mixed.connections == alone.connections + 2
    assert mixed.lines == alone.lines + 3


def test_the_spark_engine_refuses_antrea(tmp_path):
    for path in (DOC, CSV):
        with pytest.raises(InputError, match="the Spark engine does not read the antrea_"):
            formats.require_spark([str(path)], formats.assign([str(path)]))


_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(["", "{}", '{"a":"b"}', "10.0.0.1", "::1", "TCP", "Drop", "x,y", "7"]),
)
_CHANGES = st.dictionaries(st.sampled_from(sorted(_doc())), _SCALAR, max_size=5)
_FIELD = st.one_of(_SCALAR.map(lambda v: "" if v is None else str(v)), st.text(max_size=6))


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    changes=st.lists(_CHANGES, min_size=10, max_size=20),
    rows=st.lists(st.lists(_FIELD, min_size=25, max_size=32), min_size=3, max_size=8),
)
def test_fuzz_nothing_raises_every_line_is_counted(tmp_path, changes, rows):
    records = [dict(_doc(), **c) for c in changes]
    stats = ENGINE.aggregate([_ndjson(tmp_path, records)]).stats
    assert stats.lines == len(records)
    assert stats.flow_records + stats.rejected == len(records)
    lines = [",".join(f.replace(",", "").replace("\n", "") for f in r) for r in rows]
    lines = [ln if ln.strip() else "x" for ln in lines]
    path = write(tmp_path, "fuzz.csv", "\n".join(lines) + "\n")
    engine = EmbeddedEngine(threads=1)
    engine.flow_format = "antrea_csv"
    got = engine.aggregate([str(path)]).stats
    assert got.lines == len(lines)
    assert got.flow_records + got.rejected == len(lines)


def _pod(ns: str, name: str, ip: str, app: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _inventory() -> dict:
    """The fixture's two pods (names, namespaces and IPs from it; labels given here)."""
    items: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in ("antrea-test", "antrea-test-b")
    ]
    items += [
        _pod("antrea-test", "perftest-a", "10.10.0.79", "perftest-a"),
        _pod("antrea-test-b", "perftest-b", "10.10.0.80", "perftest-b"),
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=cwd
    )


def test_pipeline_end_to_end_on_antrea(tmp_path):
    """observations, recommend, shadow, observe and tighten on an allowed flow-logger line."""
    allowed = _csv_line(ingressNetworkPolicyRuleAction="1", egressNetworkPolicyRuleAction="0")
    log = str(write(tmp_path, "flows.csv", allowed + "\n"))
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(_inventory()))
    obs = _cli("observations", "--flows", log, "--inventory", str(inv), cwd=tmp_path)
    assert obs.returncode == 0, obs.stderr
    assert "antrea-test/pod/perftest-a {app=perftest-a}" in obs.stdout
    assert "5201/TCP" in obs.stdout
    out = tmp_path / "policies"
    rec = _cli(
        "recommend", "--flows", log, "--inventory", str(inv), "--out", str(out), cwd=tmp_path
    )
    assert rec.returncode == 0, rec.stderr
    text = "".join(p.read_text() for p in sorted(out.rglob("*.yaml")))
    assert "app: perftest-b" in text
    assert "port: 5201" in text
    sh = _cli(
        "shadow", "--flows", log, "--inventory", str(inv), "--policies", str(out), cwd=tmp_path
    )
    assert sh.returncode == 0, sh.stdout + sh.stderr
    store = str(tmp_path / "s.duckdb")
    ob = _cli("observe", "--flows", log, "--inventory", str(inv), "--store", store, cwd=tmp_path)
    assert ob.returncode == 0, ob.stderr
    tight = _cli(
        "tighten",
        "--policies",
        str(out),
        "--inventory",
        str(inv),
        "--flows",
        log,
        "--out",
        str(tmp_path / "t"),
        cwd=tmp_path,
    )
    assert tight.returncode == 0, tight.stderr
