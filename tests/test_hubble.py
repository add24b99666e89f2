"""Hubble reader: every real sample parses, and each normalization rule holds."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from recommender.errors import InputError
from recommender.labels import decode_labels
from recommender.model import FLOW_COLUMNS
from recommender.observe.factory import get_engine
from tests.conftest import FIXTURES, SAMPLES

HUBBLE = SAMPLES / "hubble"
ENGINE = get_engine("embedded")

# ---------------------------------------------------------------------------
# Helpers shared with test_aggregate / test_resolve.
# ---------------------------------------------------------------------------

POD_A: dict[str, Any] = {
    "identity": 1001,
    "namespace": "shop",
    "pod_name": "web-7d4d858f75-j76f7",
    "labels": [
        "k8s:app=web",
        "k8s:pod-template-hash=7d4d858f75",
        "k8s:io.kubernetes.pod.namespace=shop",
        "k8s:io.cilium.k8s.policy.serviceaccount=web",
        "k8s:io.cilium.k8s.namespace.labels.team=a",
    ],
    "workloads": [{"name": "web", "kind": "Deployment"}],
}
POD_B: dict[str, Any] = {
    "identity": 1002,
    "namespace": "shop",
    "pod_name": "db-0",
    "labels": [
        "k8s:app=db",
        "k8s:statefulset.kubernetes.io/pod-name=db-0",
        "k8s:io.kubernetes.pod.namespace=shop",
    ],
    "workloads": [{"name": "db", "kind": "StatefulSet"}],
}


def make_flow(
    src=None,
    dst=None,
    *,
    sip="10.0.0.1",
    dip="10.0.0.2",
    sport=40000,
    dport=5432,
    proto="TCP",
    time="2026-01-01T00:00:00.000000001Z",
    verdict="FORWARDED",
    wrap=True,
    **extra,
):
    """A Hubble jsonpb line (dict) with sensible defaults; ``extra`` goes into the Flow."""
    l4 = {proto: {"source_port": sport, "destination_port": dport}}
    if proto.startswith("ICMP"):
        l4 = {proto: {"type": dport}}
    flow = {
        "time": time,
        "verdict": verdict,
        "IP": {"source": sip, "destination": dip, "ipVersion": "IPv4"},
        "l4": l4,
        "source": POD_A if src is None else src,
        "destination": POD_B if dst is None else dst,
        "node_name": "node-1",
        "Type": "L3_L4",
        **extra,
    }
    flow = {k: v for k, v in flow.items() if v is not None}
    return {"flow": flow, "node_name": "node-1", "time": time} if wrap else flow


def write_lines(path: Path, records, *, gz=False) -> str:
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records)
    if gz:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return str(path)


def flows_of(paths, **kw):
    table = ENGINE.read_flows(paths if isinstance(paths, list) else [paths], **kw)
    return table.to_pandas(), table.stats


# ---------------------------------------------------------------------------
# Every real sample parses: pinned contents.
# ---------------------------------------------------------------------------

#: file -> (lines, connections, reply records, connections seen only as replies)
SAMPLE_COUNTS = {
    "cilium-1.20-kind-lab/flows-cache-from-poc2.ndjson": (3, 3, 0, 0),
    "cilium-1.20-kind-lab/flows-pos-egress-named.ndjson": (4, 4, 0, 0),
    "cilium-1.20-kind-lab/flows-pos-egress.ndjson": (4, 4, 0, 0),
    "derived/legacy-json-bare-flow-from-basic-sample-10.json": (10, 5, 5, 0),
    "docs-examples/cilium-docs-exporter-fieldmask.ndjson": (2, 2, 0, 0),
    "docs-examples/tke-exporter-cilium-1.19.1.ndjson": (3, 2, 1, 1),
    "docs-examples/tke-exporter-cilium-1.19.5-pretty-doc.ndjson": (1, 1, 0, 0),
    "hubble-otel-testdata/basic-sample-10-flows.json": (10, 5, 5, 0),
    "hubble-otel-testdata/basic-sample-330-dns-flows.json": (330, 67, 165, 0),
    "hubble-otel-testdata/basic-sample-348-http-flows.json": (348, 39, 173, 0),
    "hubble-otel-testdata/basic-sample-400-icmpv4-flows.json": (18, 4, 4, 0),
    "hubble-otel-testdata/basic-sample-400-l7-redirected-flows.json": (400, 400, 0, 0),
    "hubble-otel-testdata/basic-sample-400-tcp-flows.json": (400, 57, 136, 0),
    "hubble-otel-testdata/basic-sample-400-udp-flows.json": (400, 111, 148, 0),
    "hubble-otel-testdata/basic-sample-5-dns-flows.json": (5, 1, 2, 0),
    "hubble-otel-testdata/basic-sample-5-http-flows.json": (5, 3, 2, 1),
}


_CACHE: dict = {}


def sample_result(name):
    """Aggregate one sample once per test session (engine calls cost ~0.5 s)."""
    if name not in _CACHE:
        _CACHE[name] = ENGINE.aggregate([str(HUBBLE / name)])
    return _CACHE[name]


def test_every_sample_file_is_pinned():
    found = {str(p.relative_to(HUBBLE)) for p in HUBBLE.glob("*/*") if p.is_file()}
    assert found == set(SAMPLE_COUNTS)


@pytest.mark.parametrize("name", sorted(SAMPLE_COUNTS), ids=lambda n: n.split("/")[-1])
def test_sample_parses_without_rejects(name):
    path = HUBBLE / name
    lines, conns, replies, reply_only = SAMPLE_COUNTS[name]
    result = sample_result(name)
    s = result.stats
    assert s.lines == lines == len(path.read_text().splitlines())
    assert s.flow_records == lines
    assert s.rejected == 0
    assert not s.non_flow
    assert (s.connections, s.replies, s.reply_only) == (conns, replies, reply_only)
    assert result.observations["connections"].sum() == conns


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in SAMPLE_COUNTS
        if "basic-sample-10" not in n
        and "legacy" not in n
        and "icmp" not in n
        and "fieldmask" not in n
        and "400-tcp" not in n
        and "400-udp" not in n
    ],
)
def test_reply_count_matches_hubble_is_reply(name):
    """Where Hubble sets is_reply on every line, replies are exactly those lines."""
    raw = [json.loads(line)["flow"] for line in (HUBBLE / name).read_text().splitlines()]
    assert all("is_reply" in f for f in raw)
    assert sample_result(name).stats.replies == sum(f["is_reply"] for f in raw)


def _edges(name):
    obs = sample_result(name).observations
    return {
        (
            r.src_workload,
            r.dst_workload,
            None if r.port is None or r.port != r.port else int(r.port),
            r.protocol,
            int(r.connections),
        )
        for r in obs.itertuples()
    }


def test_edges_cilium_120_pos_egress():
    assert _edges("cilium-1.20-kind-lab/flows-pos-egress.ndjson") == {
        ("pod/pos", "deployment/shop", 80, "TCP", 1),
        ("pod/pos", "deployment/coredns", 53, "UDP", 2),
        ("pod/pos", "world", 443, "TCP", 1),
    }


def test_edges_clustermesh_audit():
    obs = sample_result("cilium-1.20-kind-lab/flows-cache-from-poc2.ndjson")
    row = obs.observations.iloc[0]
    assert (row.src_cluster, row.dst_cluster) == ("poc2", "poc1")
    assert row.verdicts["audit"] == 3
    assert row.verdicts["allowed"] == 0
    assert decode_labels(row.dst_labels) == {
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/name": "cache",
    }


def test_edges_legacy_equal_jsonpb():
    """The legacy bare shape gives the same edges as the wrapped one it came from."""
    legacy = _edges("derived/legacy-json-bare-flow-from-basic-sample-10.json")
    assert legacy == _edges("hubble-otel-testdata/basic-sample-10-flows.json")
    assert ("deployment/prometheus", "deployment/reviews-v1", 15090, "TCP", 1) in legacy
    frame, _ = flows_of(str(HUBBLE / "derived/legacy-json-bare-flow-from-basic-sample-10.json"))
    assert set(frame["source_format"]) == {"hubble_legacy_json"}


def test_edges_tke_reply_and_world():
    name = "docs-examples/tke-exporter-cilium-1.19.1.ndjson"
    assert _edges(name) == {
        ("node/10.10.21.241", "world", 9988, "TCP", 1),
        ("node/10.10.21.241", "world", 9922, "TCP", 1),
    }
    frame, _ = flows_of(str(HUBBLE / name))
    reply = frame.iloc[0]  # kube-apiserver -> csi pod, is_reply: the ends swap
    assert reply["is_reply"]
    assert reply["src_kind"] == "pod"
    assert reply["dst_kind"] == "cluster_infra"
    assert reply["dst_port"] is None or reply["dst_port"] != reply["dst_port"]  # no port


def test_edges_fieldmask_policy_drop_and_empty_endpoints():
    obs = sample_result("docs-examples/cilium-docs-exporter-fieldmask.ndjson")
    rows = {r.protocol: r for r in obs.observations.itertuples()}
    assert rows["TCP"].verdicts["policy_denied"] == 1
    assert rows["TCP"].dst_workload == "deployment/deathstar"
    assert rows["ICMPv6"].src_kind == "unknown"
    assert rows["ICMPv6"].verdicts["policy_denied"] == 0
    assert obs.stats.unknown_peers == 1
    assert obs.stats.unknown_reasons == {"no-identity": 2}


def test_edges_icmp_health():
    obs = sample_result("hubble-otel-testdata/basic-sample-400-icmpv4-flows.json")
    got = sorted(
        (r.src_workload, r.src_ip, r.dst_workload, r.dst_ip, r.protocol)
        for r in obs.observations.itertuples()
    )
    assert got == [
        ("health", "10.244.0.160", "host", "10.244.1.29", "ICMPv4"),
        ("host", "10.244.0.148", "health", "10.244.1.204", "ICMPv4"),
        ("host", "10.244.1.29", "health", "10.244.0.160", "ICMPv4"),
        ("node/kind-control-plane", "10.244.0.148", "health", "10.244.0.160", "ICMPv4"),
    ]
    assert obs.observations["port"].isna().all()  # ICMP has no port


def test_l7_dns_sample_edge():
    assert _edges("hubble-otel-testdata/basic-sample-330-dns-flows.json") == {
        ("pod/node-local-dns-r99x7", "deployment/kube-dns", 53, "TCP", 67)
    }


def test_read_flows_columns_and_order():
    name = str(HUBBLE / "hubble-otel-testdata/basic-sample-400-tcp-flows.json")
    frame, stats = flows_of(name)
    assert list(frame.columns) == list(FLOW_COLUMNS)
    assert list(frame["raw_ref"]) == [f"{name}:{i}" for i in range(1, 401)]
    assert stats.connections == int(frame["conn_count"].sum()) == 57
    replies = frame[frame["is_reply"] == True]  # noqa: E712
    assert replies["dst_port"].isna().all()
    assert len(replies) == 136


# ---------------------------------------------------------------------------
# Normalization rules on synthetic lines.
# ---------------------------------------------------------------------------


def test_labels_are_stable_and_prefix_stripped(tmp_path):
    frame, _ = flows_of(write_lines(tmp_path / "f.json", [make_flow()]))
    row = frame.iloc[0]
    assert decode_labels(row["src_labels"]) == {"app": "web"}
    assert decode_labels(row["dst_labels"]) == {"app": "db"}
    assert row["src_service_account"] == "web"
    assert (row["src_workload_kind"], row["src_workload_name"]) == ("Deployment", "web")


def test_namespace_from_pseudo_label_when_absent(tmp_path):
    remote = {"identity": 5, "labels": ["k8s:app=api", "k8s:io.kubernetes.pod.namespace=prod"]}
    frame, _ = flows_of(write_lines(tmp_path / "f.json", [make_flow(dst=remote)]))
    assert frame.iloc[0]["dst_namespace"] == "prod"
    assert frame.iloc[0]["dst_kind"] == "pod"


def test_pod_name_wins_over_world_identity(tmp_path):
    l7 = {"identity": 2, "namespace": "shop", "pod_name": "db-0", "labels": ["reserved:world"]}
    frame, _ = flows_of(write_lines(tmp_path / "f.json", [make_flow(dst=l7)]))
    assert frame.iloc[0]["dst_kind"] == "pod"
    assert frame.iloc[0]["dst_pod"] == "db-0"


PEER_CASES = [
    ("host", ["reserved:host"], 1, "host"),
    ("remote-node", ["reserved:remote-node"], 6, "host"),
    ("apiserver", ["reserved:kube-apiserver", "reserved:world"], 16777217, "cluster_infra"),
    ("world", ["reserved:world"], 2, "world"),
    ("cidr", ["cidr:1.2.3.4/32", "reserved:world"], 16777219, "world"),
    ("health", ["reserved:health"], 4, "cluster_infra"),
    ("init", ["reserved:init"], 5, "unknown"),
    ("empty", [], None, "unknown"),
    ("masked-world", [], 2, "world"),
    ("labels-only", ["k8s:app=x", "k8s:io.kubernetes.pod.namespace=n"], 300, "pod"),
]


def test_peer_kinds(tmp_path):
    lines = [
        make_flow(dst={"labels": labels} | ({"identity": ident} if ident else {}), sport=40000 + i)
        for i, (_, labels, ident, _) in enumerate(PEER_CASES)
    ]
    frame, _ = flows_of(write_lines(tmp_path / "f.json", lines))
    got = dict(zip([c[0] for c in PEER_CASES], frame["dst_kind"], strict=True))
    assert got == {name: kind for name, _, _, kind in PEER_CASES}


VERDICT_CASES = [
    ("FORWARDED", None, "allowed", False),
    ("REDIRECTED", None, "allowed", False),
    ("AUDIT", None, "audit", False),
    ("ERROR", None, "error", False),
    ("DROPPED", "POLICY_DENIED", "denied", True),
    ("DROPPED", "POLICY_DENY", "denied", True),
    ("DROPPED", "AUTH_REQUIRED", "denied", True),
    ("DROPPED", "CT_MISSING_TCP_ACK_FLAG", "denied", False),
    (None, None, "unknown", False),
]


def test_verdict_mapping(tmp_path):
    lines = [
        make_flow(verdict=v, drop_reason_desc=r, sport=40000 + i)
        for i, (v, r, _, _) in enumerate(VERDICT_CASES)
    ]
    frame, stats = flows_of(write_lines(tmp_path / "f.json", lines))
    assert list(frame["verdict"]) == [c[2] for c in VERDICT_CASES]
    assert [bool(x) for x in frame["is_policy_drop"]] == [c[3] for c in VERDICT_CASES]
    assert stats.policy_drops == 3


def test_reply_swaps_ends_and_drops_port(tmp_path):
    line = make_flow(
        sip="10.0.0.2", dip="10.0.0.1", sport=5432, dport=40000, src=POD_B, dst=POD_A, is_reply=True
    )
    frame, stats = flows_of(write_lines(tmp_path / "f.json", [line]))
    row = frame.iloc[0]
    assert (row["src_ip"], row["dst_ip"], row["src_port"]) == ("10.0.0.1", "10.0.0.2", 40000)
    assert row["dst_port"] != row["dst_port"] or row["dst_port"] is None
    assert row["src_pod"] == POD_A["pod_name"]
    assert stats.replies == 1


ORIENTATION_CASES: list[tuple[str, dict[str, Any], int, int, bool | None]] = [
    ("legacy-reply", {"reply": True}, 5432, 40000, True),
    (
        "syn-ack",
        {
            "l4": {
                "TCP": {
                    "source_port": 80,
                    "destination_port": 33000,
                    "flags": {"SYN": True, "ACK": True},
                }
            }
        },
        80,
        33000,
        True,
    ),
    (
        "syn",
        {"l4": {"TCP": {"source_port": 33001, "destination_port": 80, "flags": {"SYN": True}}}},
        33001,
        80,
        False,
    ),
    ("ports-reply", {}, 15020, 42044, True),
    ("ports-request", {}, 58698, 15090, False),
    ("ambiguous", {}, 1000, 2000, None),
    ("echo-request", {"proto": "ICMPv4"}, 0, 8, False),
    ("echo-reply", {"proto": "ICMPv4"}, 0, 0, True),
]


def test_orientation_without_is_reply(tmp_path):
    lines = [make_flow(sport=sp, dport=dp, **extra) for _, extra, sp, dp, _ in ORIENTATION_CASES]
    frame, stats = flows_of(write_lines(tmp_path / "f.json", lines))
    got = [None if v is None or v != v else bool(v) for v in frame["is_reply"]]
    assert dict(zip([c[0] for c in ORIENTATION_CASES], got, strict=True)) == {
        c[0]: c[4] for c in ORIENTATION_CASES
    }
    assert stats.unknown_orientation == 1
    assert stats.inferred_orientation == 7


def test_non_flow_lines_counted_and_lost_events_warned():
    stats = ENGINE.aggregate([str(FIXTURES / "hubble" / "exporter-mixed.ndjson")]).stats
    assert stats.non_flow == {
        "agent_event": 1,
        "blank": 1,
        "debug_event": 1,
        "lost_events": 2,
        "node_status": 1,
    }
    assert stats.lost_events == 12
    assert stats.rejected == 0
    assert any("12 lost events" in w for w in stats.warnings())
    assert stats.flow_records == 4
    assert stats.connections == 2


def test_envelopes_are_unwrapped(tmp_path):
    inner = json.dumps(make_flow())
    lines = [f"2026-01-01T00:00:00.1Z stdout F {inner}", json.dumps({"log": inner + "\n"})]
    frame, stats = flows_of(write_lines(tmp_path / "f.log", lines))
    assert len(frame) == 2
    assert stats.rejected == 0
    assert set(frame["dst_pod"]) == {"db-0"}


def test_gzip_and_glob_and_stdin(tmp_path, monkeypatch):
    write_lines(tmp_path / "a.json.gz", [make_flow()], gz=True)
    write_lines(tmp_path / "b.json", [make_flow(sport=40001)])
    frame, _ = flows_of(str(tmp_path / "*.json*"))
    assert list(frame["raw_ref"]) == [f"{tmp_path}/a.json.gz:1", f"{tmp_path}/b.json:1"]
    data = (json.dumps(make_flow()) + "\n").encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    frame, _ = flows_of("-")
    assert list(frame["raw_ref"]) == ["-:1"]


def test_bad_lines_are_counted_located_and_never_fatal(tmp_path):
    path = tmp_path / "bad.json"
    good = json.dumps(make_flow())
    path.write_bytes(
        "\n".join(
            [
                good,
                "{not json",
                '["array"]',
                b"\xff\xfe".decode("latin-1"),
                json.dumps(make_flow(verdict="MAYBE")),
                json.dumps(make_flow(time="yesterday")),
                json.dumps({"hello": 1}),
                good,
            ]
        ).encode("latin-1")
        + b"\n"
    )
    frame, stats = flows_of(str(path))
    assert len(frame) == 2
    assert stats.rejects == {
        "not valid JSON": 1,
        "not a JSON object": 1,
        "not UTF-8 text": 1,
        "unknown verdict": 1,
        "missing or invalid time": 1,
        "JSON object is not a Hubble flow or event": 1,
    }
    assert stats.reject_samples[0] == f"{path}:2: not valid JSON"
    assert stats.reject_samples[-1].startswith(f"{path}:6: ")
    agg = ENGINE.aggregate([str(path)]).stats
    assert agg.rejects == stats.rejects
    assert agg.reject_samples == stats.reject_samples


def test_truncated_gzip_keeps_lines_read_and_rejects_the_tail(tmp_path):
    data = gzip.compress(
        "".join(json.dumps(make_flow(sport=40000 + i)) + "\n" for i in range(200)).encode()
    )
    path = tmp_path / "cut.json.gz"
    path.write_bytes(data[: len(data) // 2])
    stats = ENGINE.aggregate([str(path)]).stats
    assert stats.rejects == {"truncated gzip stream (file ends before the end-of-stream marker)": 1}
    assert 0 < stats.flow_records < 200
    assert stats.reject_samples[0].startswith(f"{path}:{stats.lines}: truncated gzip")


def test_strict_stops_at_first_reject(tmp_path):
    path = write_lines(tmp_path / "f.json", [make_flow(), "oops", "{also bad"])
    with pytest.raises(InputError) as err:
        ENGINE.aggregate([path], strict=True)
    assert (err.value.path, err.value.line, err.value.reason) == (path, 2, "not valid JSON")
    with pytest.raises(InputError, match="not valid JSON"):
        flows_of(path, strict=True)


def test_missing_file_and_empty_glob(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        ENGINE.aggregate([str(tmp_path / "nope.json")])
    with pytest.raises(InputError, match="no file matches"):
        ENGINE.aggregate([str(tmp_path / "*.json")])


_KEYS = [
    "app",
    "app.kubernetes.io/name",
    "pod-template-hash",
    "job-name",
    "job-names",
    "controller-revision-hash",
    "statefulset.kubernetes.io/pod-name",
    "kubernetes.io/os",
    "io.kubernetes.pod.namespace",
    "io.cilium.k8s.policy.cluster",
    "tier",
    "failure-domain.beta.kubernetes.io/zone",
    "topology.kubernetes.io/zone",
    "a.b/c-d_e",
]


def test_sql_label_filter_equals_python_twin():
    """The SQL label normalization and ``labels.stable_labels`` agree (one definition)."""
    import duckdb
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from recommender.flows import hubble_sql as h
    from recommender.labels import encode_labels, stable_labels

    con = duckdb.connect()
    sql = (
        f"SELECT {h.stable_labels_json_sql(h.joined_labels_sql('e'))} "
        "FROM (SELECT {'labels': ?::VARCHAR[]} AS e)"
    )
    value = st.text(alphabet="abcXYZ019-_.", max_size=6)
    extra = st.lists(st.sampled_from(["reserved:host", "cidr:1.2.3.4/32", "container:x=y"]))

    @settings(max_examples=150, deadline=None)
    @given(st.dictionaries(st.sampled_from(_KEYS), value), extra)
    def check(labels, other):
        raw = sorted([f"k8s:{k}={v}" for k, v in labels.items()] + other)
        got = con.execute(sql, [raw]).fetchone()[0]
        assert got == encode_labels(stable_labels(labels))

    check()


# ---------------------------------------------------------------------------
# Line splitting (string views) and the background reader.
# ---------------------------------------------------------------------------


def test_line_views_equal_python_split():
    """Arrow string views over the block give exactly Python's lines (CRLF, short, long, bad)."""
    from recommender.flows.sources import _strings

    lines = [b"", b"a", b"\r", b"x" * 12, b"y" * 13, "é€".encode(), b'{"flow": {}}']
    lines += [b"\xff\xfe", b"z"]
    data = b"".join(line + (b"\r\n" if i % 2 else b"\n") for i, line in enumerate(lines))
    texts, rejects = _strings(data + b"partial", len(data))
    texts.validate(full=True)
    expected = [line.removesuffix(b"\r") if i % 2 == 0 else line for i, line in enumerate(lines)]
    assert texts.to_pylist()[:7] == [e.decode() for e in expected[:7]]
    assert texts.to_pylist()[7:] == ["", "z"]
    assert rejects.to_pylist() == [None] * 7 + ["not UTF-8 text (byte 1)", None]


def test_prefetched_keeps_order_and_reraises():
    from recommender.flows.sources import prefetched

    def items():
        yield from range(5)
        raise InputError("x.json", "boom")

    got: list[int] = []

    def consume():
        got.extend(prefetched(items(), depth=2))

    with pytest.raises(InputError, match="boom"):
        consume()
    assert got == [0, 1, 2, 3, 4], "every item before the error arrives, in order"
    gen = prefetched(items(), depth=2)
    assert [next(gen) for _ in range(5)] == [0, 1, 2, 3, 4]
    with pytest.raises(InputError, match="boom"):
        next(gen)


def test_prefetched_stops_producer_when_consumer_leaves():
    import threading

    from recommender.flows.sources import prefetched

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    gen: Any = prefetched(endless(), depth=1)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()
    assert not any(t.name == "netpol-line-reader" for t in threading.enumerate())
    assert len(produced) <= 6, "the producer runs at most depth (+1 in hand) ahead"
