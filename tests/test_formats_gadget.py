"""Inspektor Gadget network events: the two documentation fragments read by hand, the
pitfalls (orientation from trace_tcp ``type`` or the UDP port rule, else a counted reject;
``k8s.kind`` pod/svc/raw), a fuzz test, and the whole pipeline on IG input.

Expected values are read off tests/samples/inspektor-gadget by hand (FORMATS.md 2.4).
Both samples are fragments of the operator docs: the kubeipresolver one holds only the
``src``/``dst`` endpoints (no timestamp), the kubenameresolver one only the event-level
``k8s`` block. Read as they are they are counted rejects; the tests then complete them
with the one field each lacks and read what they hold.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.errors import InputError
from recommender.flows import formats, gadget, sniff
from recommender.observe.engines.embedded import EmbeddedEngine
from tests.conftest import ROOT, SAMPLES
from tests.vpc_support import read_rows, write

IP_DOC = SAMPLES / "inspektor-gadget" / "kubeipresolver-doc-fragment.json"
NAME_DOC = SAMPLES / "inspektor-gadget" / "kubenameresolver-doc-fragment.json"
ENGINE = EmbeddedEngine(threads=1)
#: 2025-03-01T09:00:00Z, written with a +01:00 offset as IG prints local time.
STAMP = "2025-03-01T10:00:00.5+01:00"


def _ip_event() -> dict[str, Any]:
    return dict(json.loads(IP_DOC.read_text()), timestamp=STAMP)


def _tcp_event(kind: str = "connect", **changes: Any) -> dict[str, Any]:
    """A trace_tcp event of the kubenameresolver pod (its ``k8s`` block as in the doc):
    the pod's socket 10.244.0.29:40000 and the Service ClusterIP 10.96.0.1:443."""
    event: dict[str, Any] = dict(json.loads(NAME_DOC.read_text()))
    event.update(
        type=kind,
        timestamp_raw="1740823200000000000",  # 2025-03-01 10:00:00 UTC
        src={"addr": "10.244.0.29", "port": 40000, "proto": "TCP", "version": 4},
        dst={
            "addr": "10.96.0.1",
            "port": 443,
            "proto": "TCP",
            "version": 4,
            "k8s": {"kind": "svc", "name": "kubernetes", "namespace": "default", "labels": ""},
        },
    )
    event.update(changes)
    return event


def _ndjson(tmp_path: Path, records: list[Any], name: str = "ig.json") -> str:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return str(write(tmp_path, name, "\n".join(lines) + "\n"))


def test_the_samples_are_sniffed_as_inspektor_gadget():
    assert [f.name for f in formats.assign([str(IP_DOC), str(NAME_DOC)])] == [
        "inspektor_gadget",
        "inspektor_gadget",
    ]


def test_the_fragments_as_they_are_are_counted_rejects():
    """Neither fragment is a whole event: the first has no timestamp, the second no
    endpoints. Each is one pretty-printed document, so one record at line 1."""
    (a,) = read_rows(gadget, IP_DOC)
    (b,) = read_rows(gadget, NAME_DOC)
    assert (a["line_kind"], a["reject_detail"]) == (
        "reject",
        "no valid timestamp (timestamp or timestamp_raw)",
    )
    assert (b["line_kind"], b["reject_detail"]) == (
        "reject",
        "not a network event (no src/dst endpoints)",
    )
    stats = ENGINE.aggregate([str(IP_DOC), str(NAME_DOC)]).stats
    assert (stats.lines, stats.rejected, stats.connections) == (2, 2, 0)


def test_the_kubeipresolver_endpoints_by_hand(tmp_path):
    """demo/mypod (run=mypod) 10.244.0.12:57066 -> the kube-dns Service 10.96.0.10:53/UDP
    (proto_raw 17). No ``type``: oriented by the UDP rule (dst port 53 < 1024). The
    Service's labels (k8s-app=kube-dns, ...) are its own, not a pod's: not used."""
    rows = ENGINE.read_flows([_ndjson(tmp_path, [_ip_event()])]).to_pandas()
    assert len(rows) == 1
    r = rows.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.protocol, r.ip_version) == (
        "10.244.0.12",
        57066,
        "10.96.0.10",
        53,
        "UDP",
        4,
    )
    assert (r.src_kind, r.src_namespace, r.src_pod, json.loads(r.src_labels)) == (
        "pod",
        "demo",
        "mypod",
        {"run": "mypod"},
    )
    assert (r.dst_service_namespace, r.dst_service_name) == ("kube-system", "kube-dns")
    assert r.dst_kind == "unknown"  # the ClusterIP: the inventory resolves the Service
    assert r.dst_labels is None or r.dst_labels != r.dst_labels  # None or NaN, never svc labels
    assert (r.verdict, r.is_policy_drop, bool(r.is_reply), r.conn_count) == (
        "allowed",
        False,
        False,
        1,
    )
    assert str(r.time_start) == "2025-03-01 09:00:00.500000"  # +01:00 applied
    packets = read_rows(gadget, _ndjson(tmp_path, [_ip_event()], "b.json"))
    assert (packets[0]["orientation"], packets[0]["reporter"]) == ("udp_port", "unknown")


def test_the_kubenameresolver_pod_owns_the_local_end(tmp_path):
    """A trace_tcp connect of default/test-pod (run=test-pod) on node minikube-docker: the
    local end ``src`` carries no ``k8s`` block, so it is the event's pod."""
    rows = ENGINE.read_flows([_ndjson(tmp_path, [_tcp_event()])]).to_pandas()
    r = rows.iloc[0]
    assert (r.src_kind, r.src_namespace, r.src_pod, json.loads(r.src_labels)) == (
        "pod",
        "default",
        "test-pod",
        {"run": "test-pod"},
    )
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port, r.protocol) == (
        "10.244.0.29",
        40000,
        "10.96.0.1",
        443,
        "TCP",
    )
    assert (r.dst_service_namespace, r.dst_service_name) == ("default", "kubernetes")
    assert (r.observer, r.reporter) == ("minikube-docker", "src")
    assert str(r.time_start) == "2025-03-01 10:00:00"  # timestamp_raw in ns


def test_accept_swaps_the_ends_close_is_not_a_flow(tmp_path):
    """accept: the local ``src`` is the server; close: counted as ``ig_close``, not read."""
    path = _ndjson(tmp_path, [_tcp_event("accept"), _tcp_event("close")])
    rows = read_rows(gadget, path)
    assert [r["line_kind"] for r in rows] == ["flow", "ig_close"]
    a = rows[0]
    assert (a["src_ip"], a["src_port"], a["dst_ip"], a["server_port"]) == (
        "10.96.0.1",
        443,
        "10.244.0.29",
        40000,
    )
    assert json.loads(a["dst_ep"]["e"])["pod_name"] == "test-pod"
    assert (a["reporter"], a["orientation"]) == ("dst", "trace_tcp")
    stats = ENGINE.aggregate([path]).stats
    assert (stats.lines, stats.connections, stats.rejected) == (2, 1, 0)
    assert stats.non_flow == {"ig_close": 1}


def test_connect_with_an_error_and_a_host_network_pod(tmp_path):
    k8s = dict(json.loads(NAME_DOC.read_text())["k8s"], hostnetwork=True)
    path = _ndjson(tmp_path, [_tcp_event(error="ECONNREFUSED"), _tcp_event(k8s=k8s)])
    failed, host = read_rows(gadget, path)
    assert failed["verdict"] == "error"
    assert json.loads(host["src_ep"]["e"]) == {"labels": ["reserved:host"]}
    assert host["verdict"] == "allowed"


@pytest.mark.parametrize(
    ("src_kind", "expected"),
    [
        ("pod", ("pod", "demo", "mypod")),
        ("raw", ("unknown", None, None)),  # the address only
        ("svc", ("unknown", None, None)),  # a Service is no pod
    ],
)
def test_endpoint_kinds(tmp_path, src_kind, expected):
    event = _ip_event()
    event["src"]["k8s"]["kind"] = src_kind
    rows = ENGINE.read_flows([_ndjson(tmp_path, [event])]).to_pandas()
    r = rows.iloc[0]
    got = (r.src_kind, r.src_namespace, r.src_pod)
    assert tuple(None if v != v else v for v in got) == expected


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        # No type, TCP: IG's other rule (SYN without ACK) needs flags these events lack.
        ({"type": None}, "cannot orient"),
        # No type, UDP to a port >= 1024: which end listens is unknown.
        ("udp-high", "cannot orient"),
        ({"type": "listen"}, "unknown type listen"),
        ({"src": {"addr": "pod-a", "port": 1, "proto": "TCP"}}, "invalid IP address"),
        ({"dst": {"addr": "10.0.0.1", "port": 70000, "proto": "TCP"}}, "invalid port"),
        ({"dst": {"addr": "10.0.0.1", "port": 80, "proto": "UDP"}}, "src and dst protocols"),
        ("bad-proto", "unknown protocol"),
        ({"timestamp_raw": "soon"}, "no valid timestamp"),
        ({"dst": {"port": 80, "proto": "TCP"}}, "no src.addr or dst.addr"),
        ("node-kind", "unknown k8s.kind"),
    ],
)
def test_undecidable_or_bad_events_are_counted_rejects(tmp_path, event, reason):
    if event == "udp-high":
        bad = _ip_event()
        bad["dst"]["port"] = 5353
    elif event == "bad-proto":
        bad = _tcp_event()
        bad["src"]["proto"] = bad["dst"]["proto"] = "ICMPX"
    elif event == "node-kind":
        bad = _ip_event()
        bad["dst"]["k8s"]["kind"] = "node"
    else:
        bad = {k: v for k, v in _tcp_event(**event).items() if v is not None}
    path = _ndjson(tmp_path, [_tcp_event(), bad, "not json", ""])
    stats = ENGINE.aggregate([path]).stats
    assert (stats.lines, stats.connections, stats.rejected) == (4, 1, 2)  # a blank line too
    assert any(k.startswith(reason) for k in stats.rejects), stats.rejects
    assert "not valid JSON" in stats.rejects
    with pytest.raises(InputError, match=f"{path}:2"):
        ENGINE.aggregate([path], strict=True)


def test_ipv6_an_array_document_and_sniffing(tmp_path):
    event = _tcp_event(
        src={"addr": "fd00:10:244::5", "port": 41000, "proto_raw": 6, "version": 6},
        dst={"addr": "fd00:10:244::9", "port": 8080, "proto_raw": 6, "version": 6},
    )
    path = write(tmp_path, "array.json", json.dumps([event, _tcp_event()], indent=2))
    assert sniff.is_inspektor_gadget(path.read_text())
    rows = read_rows(gadget, path)
    assert [r["line_kind"] for r in rows] == ["flow", "flow"]
    assert (rows[0]["ip_version"], rows[0]["protocol"], rows[0]["server_port"]) == (6, "TCP", 8080)


def test_a_mix_of_gadget_and_hubble_in_one_run(tmp_path):
    hubble = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
    alone = ENGINE.aggregate([str(hubble)]).stats
    mixed = ENGINE.aggregate([str(hubble), _ndjson(tmp_path, [_tcp_event()])]).stats
    assert mixed.connections == alone.connections + 1
    assert mixed.lines == alone.lines + 1


def test_the_spark_engine_refuses_gadget():
    with pytest.raises(InputError, match="the Spark engine does not read the inspektor_gadget"):
        formats.require_spark([str(IP_DOC)], formats.assign([str(IP_DOC)]))


_SCALAR = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 70000),
    st.sampled_from(["", "10.0.0.1", "::1", "TCP", "udp", "pod", "svc", "raw", "a=b,c", "7"]),
)
_END = st.dictionaries(
    st.sampled_from(["addr", "port", "proto", "proto_raw", "version", "k8s"]),
    st.one_of(_SCALAR, st.dictionaries(st.sampled_from(["kind", "name", "labels"]), _SCALAR)),
    max_size=5,
)
_CHANGES = st.dictionaries(
    st.sampled_from(["type", "error", "timestamp", "timestamp_raw", "src", "dst", "k8s"]),
    st.one_of(_SCALAR, _END),
    max_size=4,
)


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(_CHANGES, min_size=10, max_size=20), junk=st.lists(st.text(max_size=8)))
def test_fuzz_nothing_raises_every_line_is_counted(tmp_path, changes, junk):
    records: list[Any] = [_tcp_event(**c) for c in changes]
    records += [j.replace("\n", " ").replace("\r", " ") or "x" for j in junk]
    stats = ENGINE.aggregate([_ndjson(tmp_path, records)]).stats
    assert stats.lines == len(records)
    assert stats.flow_records + stats.rejected + sum(stats.non_flow.values()) == len(records)


def _inventory() -> dict[str, Any]:
    """mypod of the fragment, a CoreDNS pod behind the kube-dns Service (10.96.0.10:53)."""
    items: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in ("demo", "kube-system")
    ]
    for ns, name, ip, labels in (
        ("demo", "mypod", "10.244.0.12", {"run": "mypod"}),
        ("kube-system", "coredns-1", "10.244.0.3", {"k8s-app": "kube-dns"}),
    ):
        items.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name, "namespace": ns, "labels": labels},
                "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
            }
        )
    items.append(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "kube-dns", "namespace": "kube-system"},
            "spec": {
                "clusterIP": "10.96.0.10",
                "selector": {"k8s-app": "kube-dns"},
                "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}],
            },
        }
    )
    return {"apiVersion": "v1", "kind": "List", "items": items}


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=cwd
    )


def test_pipeline_end_to_end_on_gadget(tmp_path):
    """observations, recommend, shadow, observe and tighten on the kubeipresolver event."""
    log = _ndjson(tmp_path, [_ip_event()])
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(_inventory()))
    obs = _cli("observations", "--flows", log, "--inventory", str(inv), cwd=tmp_path)
    assert obs.returncode == 0, obs.stderr
    assert "demo/pod/mypod {run=mypod}" in obs.stdout
    assert "53/UDP" in obs.stdout
    out = tmp_path / "policies"
    rec = _cli(
        "recommend", "--flows", log, "--inventory", str(inv), "--out", str(out), cwd=tmp_path
    )
    assert rec.returncode == 0, rec.stderr
    text = "".join(p.read_text() for p in sorted(out.rglob("*.yaml")))
    assert "k8s-app: kube-dns" in text
    assert "port: 53" in text
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
