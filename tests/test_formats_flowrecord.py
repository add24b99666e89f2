"""FlowRecord tables (CSV, Parquet): the hand-written sample read by hand, the pitfalls,
a Hubble capture through the table and back, a fuzz test, and the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.errors import InputError
from recommender.flows import flowrecord, formats, parquet
from recommender.model import Inventory, Pod
from recommender.observe.engines.embedded import EmbeddedEngine
from tests.conftest import ROOT, SAMPLES

SHOP = SAMPLES / "flowrecord" / "shop.csv"
HUBBLE = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-400-tcp-flows.json"
ENGINE = EmbeddedEngine(threads=1)
HEADER = "time_start,src_namespace,src_labels,src_ip,src_port,dst_namespace,dst_labels,dst_ip,dst_port,protocol,verdict"  # noqa: E501
GOOD = '2024-05-01T10:00:00Z,shop,"{""app"":""web""}",10.0.1.5,40312,shop,"{""app"":""db""}",10.0.2.9,5432,TCP,allowed'  # noqa: E501


def _csv(tmp_path: Path, lines: list[str], header: str = HEADER, name: str = "t.csv") -> str:
    path = tmp_path / name
    path.write_text("\n".join([header, *lines]) + "\n")
    return str(path)


def test_the_sample_is_sniffed_as_flowrecord():
    assert [f.name for f in formats.assign([str(SHOP)])] == ["flowrecord"]


def test_the_sample_by_hand():
    """Values read off shop.csv: line 4 (the reply) is oriented already, line 7 has an
    empty is_reply and one ephemeral port (52000), so the port rule keeps it a request."""
    rows = ENGINE.read_flows([str(SHOP)]).to_pandas()
    assert list(rows.raw_ref) == [f"{SHOP}:{n}" for n in range(2, 8)]
    first = rows.iloc[0]
    assert (first.src_namespace, first.src_pod, first.dst_pod) == (
        "shop",
        "web-7d4b9c-x2x9q",
        "db-0",
    )
    assert json.loads(first.src_labels) == {"app": "web", "tier": "front"}
    assert (first.src_ip, first.src_port, first.dst_ip, first.dst_port) == (
        "10.0.1.5",
        40312,
        "10.0.2.9",
        5432,
    )
    assert (first.protocol, first.verdict, first.reporter, first.observer) == (
        "TCP",
        "allowed",
        "src",
        "node-a",
    )
    assert first.time_start == pd.Timestamp("2024-05-01 10:00:00")
    assert first.time_end == pd.Timestamp("2024-05-01 10:00:05")
    assert list(rows.is_reply) == [False, False, True, False, False, False]
    world = rows.iloc[3]
    assert (world.dst_kind, world.dst_ip, world.protocol, list(world.dst_names)) == (
        "world",
        "93.184.216.34",
        "TCP",
        ["api.example.com"],
    )
    drop = rows.iloc[4]
    # 10:02 at +02:00 is 08:02 UTC; protocol 6 is TCP; POLICY_DENIED is a policy drop.
    assert drop.time_start == pd.Timestamp("2024-05-01 08:02:00")
    assert (drop.protocol, drop.verdict, bool(drop.is_policy_drop)) == ("TCP", "denied", True)
    assert list(drop.policies) == ["shop/db-ingress"]
    dns = rows.iloc[5]
    # 1714557780 = 2024-05-01T10:03:00Z.
    assert dns.time_start == pd.Timestamp("2024-05-01 10:03:00")
    assert (dns.dst_namespace, dns.dst_port, dns.protocol) == ("kube-system", 53, "UDP")


def test_the_sample_aggregates_by_hand():
    """Both node reports and the reply are one connection: web -> db 5432 once,
    cart -> db denied once, web -> world 443, web -> kube-dns 53/UDP."""
    res = ENGINE.aggregate([str(SHOP)])
    assert res.stats.lines == 7
    assert res.stats.non_flow == {"header": 1}
    assert res.stats.flow_records == 6
    assert res.stats.connections == 4
    assert res.stats.policy_drops == 1
    assert not res.stats.rejects
    obs = res.observations
    edges = sorted(zip(obs.src_workload, obs.dst_workload, obs.port, obs.connections, strict=True))
    assert edges == [
        ("deployment/cart", "pod/db-0", 5432, 1),
        ("deployment/web", "pod/coredns-1", 53, 1),
        ("deployment/web", "pod/db-0", 5432, 1),
        ("deployment/web", "world", 443, 1),
    ]


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        # A quote inside a label value cannot forge a second label (issue 18).
        (GOOD.replace('""web""', '""client\\"",\\""role\\"":\\""admin""'), "invalid label"),
        (GOOD.replace('""web""}', '""web"",""app"":""x""}'), "invalid src_labels"),
        (GOOD.replace('""web""', "1"), "invalid src_labels"),
        (GOOD.replace("2024-05-01T10:00:00Z", "10000-01-01T00:00:00Z"), "no valid time_start"),
        (GOOD.replace("2024-05-01T10:00:00Z", "-99999999999999"), "no valid time_start"),
        (GOOD.replace(",5432,", ",65536,"), "invalid dst_port"),
        (GOOD.replace(",TCP,", ",TCPX,"), "unknown protocol"),
        (GOOD.replace(",allowed", ",maybe"), "unknown verdict"),
        (GOOD.replace("10.0.1.5", "10.0.1.5; DROP"), "invalid src_ip"),
        (GOOD + ",extra", "12 fields, the header names 11"),
        (GOOD.replace('"{""app"":""web""}"', '"{""app"":""web""}'), "not a CSV record"),
    ],
)
def test_a_bad_record_is_one_counted_reject_and_the_rest_is_read(tmp_path, line, reason):
    path = _csv(tmp_path, [GOOD] * 50 + [line] + [GOOD] * 50)
    res = ENGINE.aggregate([path])
    assert res.stats.flow_records == 100
    assert sum(res.stats.rejects.values()) == 1
    sample = res.stats.reject_samples[0]
    assert reason in str(sample)
    assert f"{path}:52" in str(sample)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (HEADER.replace("verdict", "colour"), "the header names colour"),
        (HEADER.replace("time_start", "time"), "not a FlowRecord column"),
        (HEADER.replace("verdict", "protocol"), "names a column twice"),
    ],
)
def test_a_bad_header_rejects_every_line_with_its_reason(tmp_path, header, reason):
    forced = EmbeddedEngine(threads=1)
    forced.flow_format = "flowrecord"
    res = forced.aggregate([_csv(tmp_path, [GOOD] * 3, header=header)])
    assert res.stats.flow_records == 0
    assert sum(res.stats.rejects.values()) == 3
    assert reason in str(res.stats.reject_samples[0])


def test_crlf_line_ends_and_a_byte_order_mark_are_read(tmp_path):
    path = tmp_path / "win.csv"
    path.write_bytes(("\ufeff" + HEADER + "\r\n" + GOOD + "\r\n").encode())
    assert formats.assign([str(path)])[0].name == "flowrecord"
    res = ENGINE.aggregate([str(path)])
    assert res.stats.connections == 1
    assert not res.stats.rejects


def test_an_empty_is_reply_orients_by_the_ephemeral_port(tmp_path):
    """The exporter could not tell: the server's port (5432) is the destination of the
    request, so a record logged server -> client is swapped, never read as a request to
    port 40312."""
    header = HEADER + ",is_reply"
    swapped = '2024-05-01T10:00:00Z,shop,"{""app"":""db""}",10.0.2.9,5432,shop,"{""app"":""web""}",10.0.1.5,40312,TCP,allowed,'  # noqa: E501
    rows = ENGINE.read_flows([_csv(tmp_path, [swapped], header=header)]).to_pandas()
    r = rows.iloc[0]
    assert (r.src_ip, r.dst_ip, bool(r.is_reply)) == ("10.0.1.5", "10.0.2.9", True)
    res = ENGINE.aggregate([_csv(tmp_path, [swapped], header=header, name="u.csv")])
    assert res.stats.connections == 0
    assert res.stats.replies == 1


def test_ip_only_ends_are_attributed_through_the_inventory_by_ip_and_time(tmp_path):
    """A table without namespaces (addresses only) gets its pods from the inventory; the
    IP 10.0.0.5 was pod "old"'s until "new" was created with it at 12:00."""
    old = Pod(
        "shop", "old", labels={"app": "old"}, ips=("10.0.0.5",), created="2024-05-01T08:00:00Z"
    )
    new = Pod(
        "shop", "new", labels={"app": "new"}, ips=("10.0.0.5",), created="2024-05-01T12:00:00Z"
    )
    client = Pod("shop", "client", labels={"app": "client"}, ips=("10.0.0.9",))
    inv = Inventory(pods=(old, new, client))
    header = "time_start,src_ip,src_port,dst_ip,dst_port,protocol"
    lines = [
        "2024-05-01T10:00:00Z,10.0.0.9,40000,10.0.0.5,8080,TCP",
        "2024-05-01T13:00:00Z,10.0.0.9,40001,10.0.0.5,8080,TCP",
    ]
    obs = ENGINE.aggregate([_csv(tmp_path, lines, header=header)], inv).observations
    assert sorted(obs.dst_labels) == ['{"app":"new"}', '{"app":"old"}']
    assert set(obs.src_labels) == {'{"app":"client"}'}


def _as_table(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for col in ("dst_names", "policies"):
        out[col] = out[col].map(lambda x: json.dumps(list(x)))
    for col in ("src_port", "dst_port", "icmp_type", "event_type", "conn_count", "ip_version"):
        out[col] = out[col].astype("Int64")
    return out


def _coarse(obs: pd.DataFrame) -> dict:
    key = ["src_namespace", "dst_namespace", "port", "protocol"]
    return (
        obs.fillna({"src_namespace": "-", "dst_namespace": "-"})
        .groupby(key)["connections"]
        .sum()
        .to_dict()
    )


def test_a_hubble_capture_through_the_table_and_back(tmp_path):
    """netpol's own FlowRecord table of a real capture, saved as CSV and as Parquet, reads
    back to the same lines, connections, replies and namespace-to-namespace ports.

    Known losses of the table (not of the reader): a cluster_infra end keeps only its
    address (unknown without an inventory), and a reply carries no server port."""
    direct = ENGINE.aggregate([str(HUBBLE)])
    flows = ENGINE.read_flows([str(HUBBLE)]).to_pandas()
    csv_path, pq_path = tmp_path / "t.csv", tmp_path / "t.parquet"
    _as_table(flows).to_csv(csv_path, index=False)
    flows.to_parquet(pq_path)
    for path in (csv_path, pq_path):
        back = ENGINE.aggregate([str(path)])
        s, d = back.stats, direct.stats
        assert (s.flow_records, s.connections, s.replies, s.policy_drops) == (
            d.flow_records,
            d.connections,
            d.replies,
            d.policy_drops,
        )
        assert not s.rejects
        assert _coarse(back.observations) == _coarse(direct.observations)


def test_parquet_with_typed_columns_by_hand(tmp_path):
    table = pa.table(
        {
            "time_start": pa.array([pd.Timestamp("2024-05-01 10:00:00")], pa.timestamp("us")),
            "src_namespace": ["shop"],
            "src_labels": pa.array([[("app", "web")]], pa.map_(pa.string(), pa.string())),
            "src_ip": ["10.0.1.5"],
            "src_port": pa.array([40312], pa.int32()),
            "dst_namespace": ["shop"],
            "dst_labels": ['{"app":"db"}'],
            "dst_ip": ["10.0.2.9"],
            "dst_port": pa.array([5432.0], pa.float64()),
            "protocol": ["TCP"],
            "is_reply": [False],
            "policies": pa.array([["shop/allow-web"]], pa.list_(pa.string())),
        }
    )
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    rows = ENGINE.read_flows([str(path)]).to_pandas()
    r = rows.iloc[0]
    assert json.loads(r.src_labels) == {"app": "web"}
    assert r.dst_port == 5432
    assert list(r.policies) == ["shop/allow-web"]
    assert r.raw_ref == f"{path}:1"
    assert r.time_start == pd.Timestamp("2024-05-01 10:00:00")


def test_a_parquet_table_with_a_foreign_column_is_refused(tmp_path):
    path = tmp_path / "x.parquet"
    pq.write_table(
        pa.table(
            {
                "time_start": ["2024-05-01T10:00:00Z"],
                "protocol": ["TCP"],
                "src_ip": ["10.0.0.1"],
                "dst_ip": ["10.0.0.2"],
                "colour": ["red"],
            }
        ),
        path,
    )
    with pytest.raises(InputError, match="colour is not a FlowRecord column"):
        ENGINE.aggregate([str(path)])


_FIELD = st.one_of(
    st.text(alphabet='",{}:\\ab=01.-/\r\x00é[];', max_size=12),
    st.sampled_from(["", "TCP", "65536", "-1", '"', '""', "{}", "[]", "1e999", "NaN", "true"]),
)
_LINES = st.lists(st.lists(_FIELD, max_size=14).map(",".join), min_size=1, max_size=40)


def _packets(con, texts: list[str]) -> list[tuple]:
    """The reader's rows for a header and ``texts`` (in-process: no file, no engine)."""
    lines = [HEADER + ",is_reply,dst_names", *texts]
    con.execute("DROP TABLE IF EXISTS lines")
    con.execute(
        "CREATE TABLE lines (file_id INTEGER, line_no BIGINT, text VARCHAR, reject VARCHAR)"
    )
    con.executemany("INSERT INTO lines VALUES (0, ?, ?, NULL)", list(enumerate(lines, 1)))
    sql = flowrecord.oriented_packets_sql("lines", ["f.csv"])
    return con.execute(
        f"SELECT line_no, line_kind, reject_detail, time_start, protocol FROM ({sql})"
    ).fetchall()


@settings(max_examples=30, deadline=None)
@given(texts=_LINES)
def test_fuzz_every_line_is_one_flow_or_one_counted_reject(texts):
    """Any line is exactly one row: a flow with a time and a protocol, or a reject with its
    reason; nothing raises (the SQL has no failing cast) and no line is lost."""
    con = duckdb.connect()
    rows = _packets(con, [t.replace("\n", " ") for t in texts])
    assert [r[0] for r in rows] == list(range(1, len(texts) + 2))
    for _, kind, detail, ts, proto in rows[1:]:
        assert kind in ("flow", "reject", "blank")
        assert (kind == "reject") == (detail is not None)
        if kind == "flow":
            assert ts is not None
            assert proto is not None


def test_the_spark_engine_refuses_a_table(tmp_path):
    assigned = formats.assign([str(SHOP)])
    with pytest.raises(InputError, match="the Spark engine does not read the flowrecord format"):
        formats.require_spark([str(SHOP)], assigned)
    with pytest.raises(InputError, match="does not read FlowRecord Parquet tables"):
        parquet.check_columns("t.parquet", ["time_start", "protocol", "src_ip", "dst_ip"])


def _pod(ns: str, name: str, ip: str, labels: dict, rs: str | None) -> dict:
    meta: dict = {"name": name, "namespace": ns, "labels": labels}
    if rs:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": rs, "controller": True}]
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "status": status}


def _inventory() -> dict:
    """The pods of shop.csv (names, IPs and labels from it)."""
    nss = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}}
        for n in ("shop", "kube-system")
    ]
    web = {"app": "web", "tier": "front"}
    pods = [
        _pod("shop", "web-7d4b9c-x2x9q", "10.0.1.5", web, "web-7d4b9c"),
        _pod("shop", "cart-5f6c7d-x8k2p", "10.0.1.8", {"app": "cart"}, "cart-5f6c7d"),
        _pod("shop", "db-0", "10.0.2.9", {"app": "db"}, None),
        _pod("kube-system", "coredns-1", "10.96.0.10", {"k8s-app": "kube-dns"}, None),
    ]
    return {"apiVersion": "v1", "kind": "List", "items": nss + pods}


def _netpol(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True
    )


def test_the_pipeline_reads_a_table(tmp_path):
    out = tmp_path / "obs.json"
    run = _netpol(
        "observations", "--flows", str(SHOP), "--format", "flowrecord", "--json", str(out)
    )
    assert run.returncode == 0, run.stderr
    assert len(json.loads(out.read_text())["observations"]) == 4
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(_inventory()))
    rec = tmp_path / "rec"
    run = _netpol("recommend", "--flows", str(SHOP), "--inventory", str(inv), "--out", str(rec))
    assert run.returncode == 0, run.stderr
    text = "".join(p.read_text() for p in sorted(rec.rglob("*.yaml")))
    assert "port: 5432" in text
    assert "app: db" in text
    shadow = _netpol(
        "shadow", "--flows", str(SHOP), "--inventory", str(inv), "--policies", str(rec)
    )
    assert shadow.returncode == 0, shadow.stdout + shadow.stderr
