"""Calico flow logs: the documented sample read by hand, the pitfalls, a fuzz test,
and the whole pipeline (observations, recommend, shadow) on Calico input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recommender.flows import formats
from recommender.observe.engines.embedded import EmbeddedEngine
from tests.conftest import ROOT, SAMPLES

DOC = SAMPLES / "calico" / "flowlog-doc-example-no-aggregation.json"
ENGINE = EmbeddedEngine(threads=1)


def _doc() -> dict:
    return json.loads(DOC.read_text())


def _write(tmp_path: Path, records: list, name: str = "flows.log") -> str:
    path = tmp_path / name
    path.write_text("".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "")
    return str(path)


def _ndjson(tmp_path: Path, records: list, name: str = "flows.log") -> str:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_sample_is_sniffed_as_calico():
    assert [f.name for f in formats.assign([str(DOC)])] == ["calico"]


def test_the_documented_record_by_hand():
    """Expected values read from the sample: access -> nginx:80/TCP, allowed, reported by dst."""
    rows = ENGINE.read_flows([str(DOC)]).to_pandas()
    assert len(rows) == 1
    r = rows.iloc[0]
    assert (r.src_ip, r.src_port, r.dst_ip, r.dst_port) == (
        "192.168.47.9",
        42106,
        "192.168.138.79",
        80,
    )
    assert (r.protocol, r.verdict, r.reporter, r.observer) == (
        "TCP",
        "allowed",
        "dst",
        "bz-n8kf-kadm-node-1",
    )
    assert (r.src_namespace, r.dst_namespace) == ("policy-demo", "policy-demo")
    assert (r.src_pod, r.dst_pod) == ("access-6b687c8dcb-zn5s2", "nginx-86c57db685-h6792")
    # pod-template-hash is ephemeral: never a selector label.
    assert json.loads(r.src_labels) == {"app": "access"}
    assert json.loads(r.dst_labels) == {"app": "nginx"}
    assert (r.src_kind, r.dst_kind, bool(r.is_reply)) == ("pod", "pod", False)
    assert r.source_format == "calico_ee"
    assert r.raw_ref == f"{DOC}:1"
    # 1597166083 s = 2020-08-11 17:14:43 UTC; end_time 300 s later.
    assert r.time_start == pd.Timestamp("2020-08-11 17:14:43")
    assert r.time_end == pd.Timestamp("2020-08-11 17:19:43")
    assert list(r.policies) == [
        "calico:ns1/tier1.policy1",
        "calico:policy-demo/default.access-nginx",
    ]


def _aggregated(reporter: str, action: str = "allow") -> dict:
    rec = _doc()
    for k in ("source_ip", "dest_ip", "source_port"):
        rec[k] = None
    rec["source_name"] = rec["dest_name"] = "-"
    rec.update(reporter=reporter, action=action)
    return rec


def test_aggregated_names_are_workloads_by_labels_not_pods(tmp_path):
    rows = ENGINE.read_flows([_ndjson(tmp_path, [_aggregated("dst")])]).to_pandas()
    r = rows.iloc[0]
    assert pd.isna(r.src_pod)
    assert pd.isna(r.dst_pod)
    assert (r.src_workload_kind, r.src_workload_name) == ("Deployment", "access")
    assert (r.dst_workload_kind, r.dst_workload_name) == ("Deployment", "nginx")
    assert json.loads(r.dst_labels) == {"app": "nginx"}


def test_both_reporters_count_one_connection(tmp_path):
    """With IPs the two reports share the connection key; aggregated, the allowed src
    report is a counted non-flow line; a denied src report is kept (no dst twin)."""
    with_ips = [dict(_doc(), reporter="src"), dict(_doc(), reporter="dst")]
    stats = ENGINE.aggregate([_ndjson(tmp_path, with_ips, "a.log")]).stats
    assert (stats.flow_records, stats.connections) == (2, 1)
    aggr = [_aggregated("src"), _aggregated("dst")]
    stats = ENGINE.aggregate([_ndjson(tmp_path, aggr, "b.log")]).stats
    assert (stats.flow_records, stats.connections) == (1, 1)
    assert stats.non_flow == {"calico_src_report": 1}
    denied = ENGINE.aggregate([_ndjson(tmp_path, [_aggregated("src", "deny")], "c.log")])
    assert denied.stats.connections == 1
    assert denied.stats.policy_drops == 1


def test_host_and_network_peers(tmp_path):
    rec = dict(_doc(), source_type="hep", dest_type="net", dest_namespace="-")
    r = ENGINE.read_flows([_ndjson(tmp_path, [rec])]).to_pandas().iloc[0]
    assert (r.src_kind, r.dst_kind) == ("host", "world")


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"reporter": "both"}, "unknown reporter both"),
        ({"action": "maybe"}, "unknown action maybe"),
        ({"proto": "gre"}, "unknown proto gre"),
        ({"start_time": "yesterday"}, "no valid start_time"),
        ({"dest_port": 70000}, "invalid port"),
        ({"dest_type": "pod"}, "unknown dest_type pod"),
        ({"source_labels": {"labels": ["app=bad value!"]}}, "label"),
    ],
)
def test_bad_records_are_rejects_with_file_and_line(tmp_path, change, reason):
    path = _ndjson(tmp_path, [_doc(), dict(_doc(), **change), "not json", ""])
    stats = ENGINE.aggregate([path]).stats
    assert stats.connections == 1
    assert stats.rejected == 2
    assert any(reason in k for k in stats.rejects), stats.rejects
    assert "not valid JSON" in stats.rejects
    with pytest.raises(Exception, match=f"{path}:2"):
        ENGINE.aggregate([path], strict=True)


def test_a_mix_of_calico_and_hubble_in_one_run():
    hubble = SAMPLES / "hubble" / "hubble-otel-testdata" / "basic-sample-10-flows.json"
    alone = ENGINE.aggregate([str(hubble)]).stats
    both = ENGINE.aggregate([str(hubble), str(DOC)]).stats
    assert both.connections == alone.connections + 1
    assert both.lines == alone.lines + 1


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3),
    max_leaves=8,
)


_CHANGES = st.dictionaries(st.sampled_from(sorted(_doc())), _JSONISH, max_size=4)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(_CHANGES, min_size=20, max_size=40), junk=st.text(max_size=20))
def test_fuzz_nothing_raises_every_line_is_counted(tmp_path, changes, junk):
    """Many fuzzed records per run (one query each run keeps it fast)."""
    records = [dict(_doc(), **c) for c in changes] + [junk.replace("\n", " ") or "x"]
    stats = ENGINE.aggregate([_ndjson(tmp_path, records)]).stats
    assert stats.lines == len(records)
    counted = stats.flow_records + stats.rejected + sum(stats.non_flow.values())
    assert counted == len(records)


def test_a_flows_log_of_thousands_of_records_fits_the_default_memory(tmp_path):
    """bench/fuzz.py --target calico: with one JSON call per field (about 40 parses of
    each record) a valid 1,000-line flows.log ran out of DuckDB's default 512 MB
    (OutOfMemoryException, a crash). Each record is now parsed once per value read."""
    records = [dict(_doc(), source_port=40000 + i) for i in range(5000)]
    engine = EmbeddedEngine(memory_limit="512MB")
    stats = engine.aggregate([_ndjson(tmp_path, records)]).stats
    assert (stats.lines, stats.flow_records, stats.rejected) == (5000, 5000, 0)
    assert stats.connections == 5000  # each source port is its own connection


def test_a_reject_quoting_a_newline_stays_one_line(tmp_path):
    """tests/test_fuzz_sample.py found a reject reason quoting a JSON string with a
    newline (``"reporter": "a\\nb"``): the sample and the counted reason are printed
    one per line, so the newline is escaped."""
    path = _ndjson(tmp_path, [_doc(), dict(_doc(), reporter="a\nb")])
    stats = ENGINE.aggregate([path]).stats
    assert stats.rejected == 1
    assert stats.reject_samples == (f"{path}:2: unknown reporter a\\nb",)
    assert stats.rejects == {"unknown reporter a\\nb": 1}
    flows = ENGINE.read_flows([path])
    flows.to_pandas()
    assert flows.stats.reject_samples == (f"{path}:2: unknown reporter a\\nb",)


def test_pipeline_end_to_end_on_calico(tmp_path):
    """observations, recommend and shadow on a Calico log (with the sample's inventory)."""
    log = _ndjson(tmp_path, [_doc(), dict(_doc(), reporter="src")])
    obs = _cli("observations", "--flows", log, "--format", "calico", cwd=tmp_path)
    assert obs.returncode == 0, obs.stderr
    assert "policy-demo/deployment/access {app=access}" in obs.stdout
    assert "80/TCP" in obs.stdout
    assert "(1 observations)" in obs.stdout
    out = tmp_path / "policies"
    inv = tmp_path / "inventory.json"
    inv.write_text(json.dumps(_inventory()))
    rec = _cli(
        "recommend", "--flows", log, "--inventory", str(inv), "--out", str(out), cwd=tmp_path
    )
    assert rec.returncode == 0, rec.stderr
    text = "".join(p.read_text() for p in sorted(out.rglob("*.yaml")))
    assert "app: nginx" in text
    assert "port: 80" in text
    sh = _cli(
        "shadow", "--flows", log, "--inventory", str(inv), "--policies", str(out), cwd=tmp_path
    )
    assert sh.returncode == 0, sh.stdout + sh.stderr


def _pod(name: str, ip: str, app: str, rs: str) -> dict:
    meta: dict[str, Any] = {"name": name, "namespace": "policy-demo", "labels": {"app": app}}
    meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": rs, "controller": True}]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    }


def _inventory() -> dict:
    """The two pods of the sample record (names, IPs and labels from it)."""
    ns = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "policy-demo"}}
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [
            ns,
            _pod("access-6b687c8dcb-zn5s2", "192.168.47.9", "access", "access-6b687c8dcb"),
            _pod("nginx-86c57db685-h6792", "192.168.138.79", "nginx", "nginx-86c57db685"),
        ],
    }


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *args], capture_output=True, text=True, cwd=cwd
    )
